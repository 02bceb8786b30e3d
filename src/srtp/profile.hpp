#pragma once
// The SRTP protection profiles WebRTC negotiates in DTLS's use_srtp extension, with their RFC ids (RFC 5764
// section 4.1.2, RFC 7714 section 14.2) and master key and salt lengths. DTLS chooses one; SRTP uses it.
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace kaiwa::srtp {

enum class Profile : uint16_t {
  kNone = 0,
  kAes128CmSha1_80 = 0x0001,
  kAeadAes128Gcm = 0x0007,
  kAeadAes256Gcm = 0x0008,
};

// OpenSSL's name of the profile ("SRTP_AEAD_AES_256_GCM"); empty for kNone or an unknown id.
constexpr std::string_view name(Profile p) {
  switch (p) {
    case Profile::kAes128CmSha1_80:
      return "SRTP_AES128_CM_SHA1_80";
    case Profile::kAeadAes128Gcm:
      return "SRTP_AEAD_AES_128_GCM";
    case Profile::kAeadAes256Gcm:
      return "SRTP_AEAD_AES_256_GCM";
    case Profile::kNone:
      break;
  }
  return "";
}
constexpr size_t keyLength(Profile p) { return p == Profile::kAeadAes256Gcm ? 32 : name(p).empty() ? 0 : 16; }
constexpr size_t saltLength(Profile p) { return p == Profile::kAes128CmSha1_80 ? 14 : name(p).empty() ? 0 : 12; }

}  // namespace kaiwa::srtp

#pragma once
// SRTP and SRTCP (RFC 3711, RFC 7714 AEAD-GCM) for one direction of one media transport, on Debian's libsrtp2:
// an outbound session protects what kaiwa sends with its key, an inbound one unprotects what the peer sends with
// the peer's key (dtls::SrtpKeys `local` and `remote`). In place, no allocation per packet once a stream (SSRC) is
// known. Why libsrtp2 and not OpenSSL's EVP directly: with the GCM profiles Chromium picks when kaiwa is the DTLS
// server, libsrtp2 costs 1.0-1.3 µs per 1200-byte packet here (bench/srtp_bench.cpp) against ~0.6 µs for bare
// AES-GCM (`openssl speed`), a difference that the kernel's UDP path (~4 µs per packet) dwarfs; and libsrtp2 brings
// the replay windows, the rollover counters and SRTCP's index that a hand-written layer would have to get right.
// (AES_CM_128_HMAC_SHA1_80 costs ~4.7 µs: Debian builds libsrtp2 on NSS, whose HMAC is slow.)
//
// Every call runs on the owner's thread; sessions are independent (libsrtp2's global state is initialised once).
// Bad packets are values: kAuthFailed (forged or corrupt), kReplay (seen already or too old), kBadPacket.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

#include "srtp/profile.hpp"

struct srtp_ctx_t_;

namespace kaiwa::srtp {

enum class Direction : uint8_t { kInbound, kOutbound };

enum class Result : uint8_t {
  kOk,
  kAuthFailed,  // the tag does not verify
  kReplay,      // a packet already received, or older than the replay window
  kBadPacket,   // too short, or no room for the tag
  kError,       // anything else libsrtp2 refuses
};

// What protection adds at most (the tag; no MKI): a buffer for protect() needs this much room after the packet.
inline constexpr size_t kMaxTrailer = 16 + 128;  // SRTP_MAX_TRAILER_LEN (tag + MKI) of libsrtp2 2.5

class Session {
 public:
  // `keySalt`: the master key followed by the master salt, keyLength(profile) + saltLength(profile) bytes.
  // `replayWindow`: packets of the inbound replay window (64..32768; libsrtp2's default is 128, a video burst
  // reordered by a retransmission needs more). nullopt for a wrong key length or profile.
  static std::optional<Session> make(Profile profile, std::span<const uint8_t> keySalt, Direction direction,
                                     unsigned replayWindow = 1024);
  Session(Session&& other) noexcept;
  Session& operator=(Session&& other) noexcept;
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;
  ~Session();

  // Protects the RTP packet in buffer[0, size) in place: size grows by the tag. The buffer must start at a 4-byte
  // boundary and have at least size + kMaxTrailer bytes.
  Result protectRtp(std::span<uint8_t> buffer, size_t& size);
  Result protectRtcp(std::span<uint8_t> buffer, size_t& size);
  // Unprotects in place: size shrinks to the plain packet's. The buffer must start at a 4-byte boundary.
  Result unprotectRtp(std::span<uint8_t> buffer, size_t& size);
  Result unprotectRtcp(std::span<uint8_t> buffer, size_t& size);

  Profile profile() const { return profile_; }
  Direction direction() const { return direction_; }

 private:
  Session(srtp_ctx_t_* ctx, Profile profile, Direction direction)
      : ctx_(ctx), profile_(profile), direction_(direction) {}
  srtp_ctx_t_* ctx_ = nullptr;
  Profile profile_ = Profile::kNone;
  Direction direction_ = Direction::kInbound;
};

}  // namespace kaiwa::srtp

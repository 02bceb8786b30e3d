#pragma once
// The DTLS certificate of a WebRTC endpoint: a fresh self-signed ECDSA P-256 certificate per process (small, so the
// handshake's Certificate message fits one 1200-byte datagram; WebRTC peers authenticate it by the fingerprint in
// the SDP, RFC 8827 section 6.5, not by a chain). Its SHA-256 fingerprint goes into kaiwa's SDP.
#include <optional>
#include <string>
#include <string_view>

struct x509_st;
struct evp_pkey_st;

namespace kaiwa::dtls {

class Certificate {
 public:
  // A new key pair and certificate (CN "kaiwa", valid from a day ago for 30 days, random serial). nullopt if
  // OpenSSL fails.
  static std::optional<Certificate> generate();
  Certificate(Certificate&& other) noexcept;
  Certificate& operator=(Certificate&& other) noexcept;
  Certificate(const Certificate&) = delete;
  Certificate& operator=(const Certificate&) = delete;
  ~Certificate();

  // "sha-256 AB:CD:…", as `a=fingerprint:` carries it.
  const std::string& fingerprint() const { return fingerprint_; }
  x509_st* x509() const { return x509_; }
  evp_pkey_st* key() const { return key_; }

 private:
  Certificate(x509_st* x509, evp_pkey_st* key);
  x509_st* x509_ = nullptr;
  evp_pkey_st* key_ = nullptr;
  std::string fingerprint_;
};

// The fingerprint of `cert` with the SDP hash function `algorithm` ("sha-256", …): upper-case hex pairs joined by
// ':'. nullopt for an unknown function.
std::optional<std::string> fingerprintOf(x509_st* cert, std::string_view algorithm);

}  // namespace kaiwa::dtls

#pragma once
// DTLS 1.2 for WebRTC media transports (RFC 5764 DTLS-SRTP, RFC 8827 fingerprints), over datagrams the caller
// receives and sends: sans-I/O like tls::Session, but datagram-shaped. Each datagram fed in is one received UDP
// payload; each datagram out is one to send. Records are sized for a 1200-byte path MTU and OpenSSL is told that MTU
// directly (a BIO that does not answer MTU queries makes OpenSSL fall back to 256-byte fragments, whose retransmits
// change boundaries); each record OpenSSL writes leaves as its own datagram.
//
// kaiwa is the DTLS server towards browsers (its answer says `a=setup:passive`): that is what makes Chromium choose
// an AEAD GCM SRTP profile (docs/sfu.md). The client role exists for kaiwa's own load generator and for tests.
//
// The peer's certificate is checked against the fingerprint from its SDP once the handshake is done: any
// certificate is accepted during the handshake (WebRTC certificates are self-signed), and a mismatch fails the
// session before any key is handed out.
//
// Time: OpenSSL keeps the retransmission timer on its own clock; nextTimeout() says when to call onTimeout(). The
// first retransmission comes after 100 ms, doubling up to 4 s (RFC 6347 suggests 1 s; media setup wants faster).
// Every call runs on the owner's thread. Nothing here throws on peer bytes.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "srtp/profile.hpp"

struct ssl_ctx_st;

namespace kaiwa::dtls {

class Certificate;

enum class Role : uint8_t { kServer, kClient };

using SrtpProfile = srtp::Profile;

// The SRTP master keys of a finished handshake, from the exporter "EXTRACTOR-dtls_srtp" (RFC 5764 section 4.2).
// `local` protects what this side sends, `remote` unprotects what it receives; each is the key followed by the salt.
struct SrtpKeys {
  SrtpProfile profile = SrtpProfile::kNone;
  std::vector<uint8_t> local;
  std::vector<uint8_t> remote;
};

// One SSL_CTX per role and certificate, shared by the sessions made from it (SSL_CTX is safe to share across
// threads for SSL_new once configured).
class Context {
 public:
  // `profiles`: offered (client) or accepted (server) SRTP profiles, most preferred first.
  static std::optional<Context> make(const Certificate& certificate, Role role,
                                     std::span<const SrtpProfile> profiles = kDefaultProfiles);
  Context(Context&& other) noexcept;
  Context& operator=(Context&& other) noexcept;
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;
  ~Context();

  Role role() const { return role_; }
  ssl_ctx_st* native() const { return ctx_; }

  static constexpr SrtpProfile kDefaultProfiles[] = {SrtpProfile::kAeadAes256Gcm, SrtpProfile::kAeadAes128Gcm,
                                                     SrtpProfile::kAes128CmSha1_80};

 private:
  Context(ssl_ctx_st* ctx, Role role) : ctx_(ctx), role_(role) {}
  ssl_ctx_st* ctx_ = nullptr;
  Role role_ = Role::kServer;
};

enum class Status : uint8_t {
  kHandshaking,  // waiting for the peer (datagrams to send may be in output())
  kConnected,    // handshake done and the peer's certificate matches its fingerprint: keys are ready
  kClosed,       // the peer sent close_notify
  kFailed,       // a fatal alert, a bad handshake, a fingerprint mismatch: the transport ends
};

class Session {
 public:
  static constexpr size_t kMtu = 1200;  // the largest datagram this session writes

  // `peerFingerprint`: the peer's SDP `a=fingerprint` value, e.g. "sha-256 AB:CD:…" (sha-1, sha-224, sha-256,
  // sha-384, sha-512; hex digits in either case). nullopt if OpenSSL cannot make a session or the fingerprint
  // does not parse.
  static std::optional<Session> make(const Context& context, std::string_view peerFingerprint);
  Session(Session&& other) noexcept;
  Session& operator=(Session&& other) noexcept;
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;
  ~Session();

  // Starts the handshake (the client's first flight goes to output(); a server waits for the ClientHello).
  Status start();
  // One received datagram (DTLS records: first byte 20–63, RFC 7983). Plaintext application data it carried
  // (SCTP, once connected) is appended to `plain` if given, else dropped.
  Status receive(std::span<const uint8_t> datagram, std::vector<uint8_t>* plain = nullptr);
  // The same, with each application data record handed over on its own (an SCTP packet is one record, and a
  // datagram may carry several).
  Status receive(std::span<const uint8_t> datagram, const std::function<void(std::span<const uint8_t>)>& onRecord);
  // Application data as one record in one datagram (SCTP packets fit one MTU). False unless connected, or if it is
  // larger than maxPayload().
  bool send(std::span<const uint8_t> plain);
  // The most application data one datagram carries with the negotiated cipher (0 unless connected): what SCTP's
  // MTU must be at most.
  size_t maxPayload() const;
  // Sends close_notify (a released session only ends).
  void close();
  // Lets go of OpenSSL's state once connected (~57 KB: its handshake, read and write buffers and the `SSL`), for a
  // transport with nothing more to say over DTLS: its keys stay readable, and it stays connected, but it reads,
  // writes and retransmits nothing from then on (a close_notify from the peer goes unnoticed). Only safe once the peer
  // has shown it holds the keys, i.e. has the last flight and will not ask for it again.
  void release();
  bool released() const;

  // When onTimeout() must run for a retransmission (nullopt: no timer running).
  std::optional<std::chrono::microseconds> nextTimeout() const;
  // Retransmits the last flight if its timer expired (OpenSSL's clock); kFailed after too many.
  Status onTimeout();

  Status status() const;
  // The keys, once connected (else profile kNone).
  SrtpKeys srtpKeys() const;

  // Datagrams to send, in order; the caller sends and clears them (or swaps the vector out).
  std::vector<std::vector<uint8_t>>& output();

  // Why the session failed, for a log line ("fingerprint mismatch", "handshake failed: …").
  const std::string& error() const;

  struct Impl;  // (session.cpp; named here for the BIO's callbacks there)

 private:
  explicit Session(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// True when the first byte says DTLS (RFC 7983: 20..63).
inline bool isDtls(std::span<const uint8_t> datagram) {
  return !datagram.empty() && datagram[0] >= 20 && datagram[0] <= 63;
}

}  // namespace kaiwa::dtls

#pragma once
// SRTP and SRTCP (RFC 3711 AES_CM_128_HMAC_SHA1_80, RFC 7714 AEAD-GCM) for one direction of one media transport, on
// OpenSSL's EVP: an outbound session protects what kaiwa sends with its key, an inbound one unprotects what the peer
// sends with the peer's key (dtls::SrtpKeys `local` and `remote`). In place, no allocation per packet once a stream
// (SSRC) is known.
//
// Why EVP and not Debian's libsrtp2 (which kaiwa used until 2026-12, and which the unit tests keep as the reference
// that every packet must agree with): Debian builds libsrtp2 on NSS, whose imported keys cost ~5.4 kB each and whose
// stream contexts ~8.6 kB, ~30 kB per transport in all, most of what a viewer's transport held once its DTLS state is
// let go (docs/sfu.md, bench/README.md); here a transport's four key schedules and two HMAC states are ~4 kB. It is
// also faster (bench/srtp_bench.cpp: GCM and, more so, HMAC-SHA1 without NSS's slow HMAC). What a hand-written
// layer has to get right and is tested for against libsrtp2: the key derivation, the index estimate across the
// roll-over, the replay windows, SRTCP's index and E flag, constant-time tag comparison.
//
// Every call runs on the owner's thread; sessions are independent. Bad packets are values: kAuthFailed (forged or
// corrupt), kReplay (seen already or too old), kBadPacket (too short, not RTP, unencrypted SRTCP).
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "srtp/profile.hpp"

namespace kaiwa::srtp {

enum class Direction : uint8_t { kInbound, kOutbound };

enum class Result : uint8_t {
  kOk,
  kAuthFailed,  // the tag does not verify
  kReplay,      // a packet already received, or older than the replay window
  kBadPacket,   // too short, or no room for the tag
  kError,       // anything else: a wrong direction, too many SSRCs, an exhausted SRTCP index
};

// What protection adds at most (SRTCP with GCM: a 16-byte tag and the 4-byte index; no MKI), with a margin: a buffer
// for protect() needs this much room after the packet.
inline constexpr size_t kMaxTrailer = 32;

class Session {
 public:
  // `keySalt`: the master key followed by the master salt, keyLength(profile) + saltLength(profile) bytes.
  // `replayWindow`: packets of the inbound RTP replay window (64..32767, rounded up to a multiple of 64; libsrtp2's
  // default is 128, a video burst reordered by a retransmission needs more); SRTCP's is 128. nullopt for a wrong key
  // length or profile. An inbound session follows at most 256 SSRCs, an outbound one 4096 (past that: kError).
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
  struct Keys;
  struct Stream;
  Session(Profile profile, Direction direction);
  Stream* stream(uint32_t ssrc, bool create);

  std::unique_ptr<Keys> rtp_, rtcp_;
  std::vector<Stream> streams_;
  size_t last_ = 0;  // the stream found last: most packets in a row are of one SSRC
  uint64_t window_ = 0;
  Profile profile_ = Profile::kNone;
  Direction direction_ = Direction::kInbound;
};

}  // namespace kaiwa::srtp

#pragma once
// One WebRTC transport of the SFU — one peer connection of one client, all its media bundled on one 5-tuple — as a
// sans-I/O state machine: ICE-lite (ice::LiteAgent) answers the client's checks and picks the path, DTLS
// (dtls::Session, kaiwa the server) makes the SRTP keys, SRTP (srtp::Session) protects and unprotects in place.
// Datagrams and `now` in; datagrams out, unprotected RTP/RTCP up, and the transport's end, through TransportIo.
//
// What is dropped, and counted (Counters), never passed on: DTLS from an address no valid check came from (nobody
// can start a handshake by spoofing a client's address), media before DTLS finished, media whose SRTP tag does not
// verify or that replays, datagrams that are none of STUN, DTLS, RTP, RTCP.
//
// Lifetime: `kConnecting` until DTLS finishes, `kConnected`, then `kClosed` for good (ICE failed or consent
// expired, DTLS failed or closed, a certificate that is not the SDP's). TransportIo::onClosed comes once.
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "common/address.hpp"
#include "common/clock.hpp"
#include "dtls/session.hpp"
#include "ice/lite_agent.hpp"
#include "srtp/session.hpp"

namespace kaiwa::sfu {

using common::Address;

// What a transport asks of the I/O around it. Called from inside receive(), tick() and the send calls.
class TransportIo {
 public:
  virtual ~TransportIo() = default;
  virtual void sendTo(const Address& to, std::span<const uint8_t> datagram) = 0;
  // A valid ICE check came from `from`: its datagrams belong to this transport (ice::Demux::bind).
  virtual void onValidAddress(const Address& from) = 0;
  // DTLS is done and SRTP keyed: media flows.
  virtual void onConnected() = 0;
  // An RTP or RTCP packet, unprotected, in the buffer the datagram came in (the receiver may rewrite it in place
  // and forward it).
  virtual void onRtp(std::span<uint8_t> packet) = 0;
  virtual void onRtcp(std::span<uint8_t> packet) = 0;
  // One DTLS application data record (content type 23) after the handshake: an SCTP packet of the data channels
  // (RFC 8261). Unchecked bytes from the client.
  virtual void onApplicationData(std::span<const uint8_t> /*record*/) {}
  // The transport ended; `why` is for a log line. Nothing is sent or received after it.
  virtual void onClosed(std::string_view why) = 0;
};

struct TransportConfig {
  ice::Credentials local;         // kaiwa's ufrag/pwd for this transport (its SDP)
  ice::Credentials remote;        // the client's, from its SDP
  std::string remoteFingerprint;  // the client's a=fingerprint ("sha-256 AB:…")
  ice::LiteAgentOptions ice;
};

struct TransportCounters {
  uint64_t stunIn = 0, dtlsIn = 0, rtpIn = 0, rtcpIn = 0;
  uint64_t checksRefused = 0;    // Binding requests answered with an error
  uint64_t dtlsFromUnknown = 0;  // DTLS from an address without a valid check
  uint64_t mediaBeforeDtls = 0;  // RTP/RTCP before the keys existed
  uint64_t srtpAuthFailed = 0, srtpReplayed = 0, srtpOther = 0;
  uint64_t other = 0;                              // none of STUN, DTLS, RTP, RTCP
  uint64_t rtpOut = 0, rtcpOut = 0;                // protected and sent
  uint64_t applicationIn = 0, applicationOut = 0;  // DTLS application data records (SCTP packets)
  uint64_t applicationSendFailed = 0;              // not connected, or larger than one record can carry
  uint64_t dtlsAfterRelease = 0;                   // DTLS once releaseDtlsOnceKeyed() let the state go (dropped)
};

enum class TransportState : uint8_t { kConnecting, kConnected, kClosed };

class Transport {
 public:
  // nullopt if the DTLS session cannot be made (the fingerprint does not parse).
  static std::optional<Transport> make(const dtls::Context& dtls, TransportConfig config, TimePoint now,
                                       TransportIo& io);
  Transport(Transport&&) noexcept = default;
  Transport& operator=(Transport&&) noexcept = default;

  // A datagram from `from` that the demultiplexer routed here; unprotected in place when it is media.
  void receive(std::span<uint8_t> datagram, const Address& from, TimePoint now);

  // Protects buffer[0, size) in place and sends it to the selected path. The buffer starts at a 4-byte boundary and
  // has srtp::kMaxTrailer bytes of room after `size`. False (nothing sent) unless connected.
  bool sendRtp(std::span<uint8_t> buffer, size_t size);
  bool sendRtcp(std::span<uint8_t> buffer, size_t size);
  // Sends one DTLS application data record (an SCTP packet) to the selected path. False (nothing sent) unless
  // connected, or when it is larger than maxApplicationPayload().
  bool sendApplicationData(std::span<const uint8_t> plain);
  // The most one record carries with the negotiated cipher: the SCTP path MTU (0 unless connected).
  size_t maxApplicationPayload() const { return dtls_.maxPayload(); }

  // Runs ICE's consent and connect deadlines and DTLS's retransmission timer.
  void tick(TimePoint now);
  // When tick() must run next.
  TimePoint nextDeadline() const;

  // For a transport that will never carry application data (no SCTP: a subscribe connection, WHIP, WHEP): the DTLS
  // state (~57 KB of OpenSSL's) is let go at the first media the client protected with its keys, since a client
  // that has keys has had kaiwa's last flight. Later DTLS from the client is dropped and counted; the transport's
  // end then comes from ICE consent or from signaling, not from a close_notify.
  void releaseDtlsOnceKeyed() { releaseDtls_ = true; }
  bool dtlsReleased() const { return dtls_.released(); }
  // ICE restart: new local credentials (and the client's new ones); media continues on the current path meanwhile.
  void restartIce(ice::Credentials local, ice::Credentials remote, TimePoint now);

  TransportState state() const { return state_; }
  const ice::LiteAgent& ice() const { return ice_; }
  const TransportCounters& counters() const { return counters_; }
  srtp::Profile srtpProfile() const { return srtpIn_ ? srtpIn_->profile() : srtp::Profile::kNone; }

 private:
  Transport(TransportConfig config, dtls::Session dtls, TimePoint now, TransportIo& io);
  void onStun(std::span<const uint8_t> datagram, const Address& from, TimePoint now);
  void onDtls(std::span<const uint8_t> datagram, const Address& from, TimePoint now);
  void onMedia(std::span<uint8_t> datagram, bool rtcp);
  void flushDtls(const Address& fallback, TimePoint now);
  bool sendMedia(std::span<uint8_t> buffer, size_t size, bool rtcp);
  void close(std::string_view why);

  TransportIo* io_;
  ice::LiteAgent ice_;
  dtls::Session dtls_;
  std::optional<srtp::Session> srtpIn_, srtpOut_;
  TransportCounters counters_;
  TimePoint dtlsDue_ = TimePoint::max();  // DTLS's retransmission timer, as our clock sees it
  TransportState state_ = TransportState::kConnecting;
  bool releaseDtls_ = false;
};

}  // namespace kaiwa::sfu

#include "sfu/transport.hpp"

#include <array>
#include <chrono>
#include <vector>

#include "rtp/packet.hpp"
#include "stun/message.hpp"

namespace kaiwa::sfu {

namespace {
// A 1200-byte datagram holds at most a few records of application data; more is not a browser's.
constexpr size_t kMaxRecordsPerDatagram = 16;
}  // namespace

std::optional<Transport> Transport::make(const dtls::Context& dtls, TransportConfig config, TimePoint now,
                                         TransportIo& io) {
  auto session = dtls::Session::make(dtls, config.remoteFingerprint);
  if (!session) return std::nullopt;
  session->start();  // (a server: waits for the ClientHello)
  return Transport(std::move(config), std::move(*session), now, io);
}

Transport::Transport(TransportConfig config, dtls::Session dtls, TimePoint now, TransportIo& io)
    : io_(&io), ice_(std::move(config.local), now, config.ice), dtls_(std::move(dtls)) {
  ice_.setRemote(std::move(config.remote));
}

void Transport::receive(std::span<uint8_t> datagram, const Address& from, TimePoint now) {
  if (state_ == TransportState::kClosed) return;
  switch (rtp::classify(datagram)) {
    case rtp::DatagramKind::kStun:
      ++counters_.stunIn;
      onStun(datagram, from, now);
      return;
    case rtp::DatagramKind::kDtls:
      ++counters_.dtlsIn;
      onDtls(datagram, from, now);
      return;
    case rtp::DatagramKind::kRtp:
      ++counters_.rtpIn;
      onMedia(datagram, false);
      return;
    case rtp::DatagramKind::kRtcp:
      ++counters_.rtcpIn;
      onMedia(datagram, true);
      return;
    case rtp::DatagramKind::kOther:
      break;
  }
  ++counters_.other;
}

void Transport::onStun(std::span<const uint8_t> datagram, const Address& from, TimePoint now) {
  auto message = stun::Message::parse(datagram);
  if (!message) {
    ++counters_.other;
    return;
  }
  std::array<uint8_t, 128> response{};
  ice::CheckResult r = ice_.onBindingRequest(*message, from, now, response);
  if (r.responseSize > 0) io_->sendTo(from, std::span(response).first(r.responseSize));
  switch (r.outcome) {
    case ice::Outcome::kValid:
    case ice::Outcome::kSelected:
      io_->onValidAddress(from);
      break;
    case ice::Outcome::kNotBinding:
      break;  // a response or an indication: nothing for a lite agent to do
    default:
      ++counters_.checksRefused;
      break;
  }
}

void Transport::onDtls(std::span<const uint8_t> datagram, const Address& from, TimePoint now) {
  bool validated = false;
  for (const ice::Path& p : ice_.paths()) validated |= p.remote == from;
  if (!validated) {
    ++counters_.dtlsFromUnknown;
    return;
  }
  if (dtls_.released()) {
    ++counters_.dtlsAfterRelease;
    return;
  }
  bool wasConnected = dtls_.status() == dtls::Status::kConnected;
  // Records are collected first and handed up after the handshake's bookkeeping below, so the listener sees them
  // on a connected transport (the browser's first SCTP packet may share a datagram with its last flight).
  std::vector<std::vector<uint8_t>> records;
  dtls::Status status = dtls_.receive(datagram, [&](std::span<const uint8_t> r) {
    if (records.size() < kMaxRecordsPerDatagram) records.emplace_back(r.begin(), r.end());
  });
  flushDtls(from, now);
  if (status == dtls::Status::kConnected && !wasConnected) {
    dtls::SrtpKeys keys = dtls_.srtpKeys();
    srtpIn_ = srtp::Session::make(keys.profile, keys.remote, srtp::Direction::kInbound);
    srtpOut_ = srtp::Session::make(keys.profile, keys.local, srtp::Direction::kOutbound);
    if (!srtpIn_ || !srtpOut_) {
      close("SRTP setup failed");
      return;
    }
    state_ = TransportState::kConnected;
    io_->onConnected();
  } else if (status == dtls::Status::kFailed) {
    close(dtls_.error());
  } else if (status == dtls::Status::kClosed) {
    close("DTLS closed by the peer");
  }
  if (state_ != TransportState::kConnected) return;
  for (const auto& r : records) {
    ++counters_.applicationIn;
    io_->onApplicationData(r);
    if (state_ != TransportState::kConnected) return;
  }
}

bool Transport::sendApplicationData(std::span<const uint8_t> plain) {
  auto to = ice_.selected();
  if (state_ != TransportState::kConnected || !to || !dtls_.send(plain)) {
    ++counters_.applicationSendFailed;
    return false;
  }
  for (const auto& d : dtls_.output()) io_->sendTo(*to, d);
  dtls_.output().clear();
  ++counters_.applicationOut;
  return true;
}

void Transport::flushDtls(const Address& fallback, TimePoint now) {
  Address to = ice_.selected().value_or(fallback);
  for (const auto& d : dtls_.output()) io_->sendTo(to, d);
  dtls_.output().clear();
  auto timeout = dtls_.nextTimeout();
  dtlsDue_ = timeout ? now + std::chrono::duration_cast<Clock::duration>(*timeout) : TimePoint::max();
}

void Transport::onMedia(std::span<uint8_t> datagram, bool rtcp) {
  if (state_ != TransportState::kConnected) {
    ++counters_.mediaBeforeDtls;
    return;
  }
  size_t size = datagram.size();
  srtp::Result r = rtcp ? srtpIn_->unprotectRtcp(datagram, size) : srtpIn_->unprotectRtp(datagram, size);
  switch (r) {
    case srtp::Result::kOk:
      if (releaseDtls_ && !dtls_.released()) {
        dtls_.release();
        dtlsDue_ = TimePoint::max();
      }
      if (rtcp)
        io_->onRtcp(datagram.first(size));
      else
        io_->onRtp(datagram.first(size));
      return;
    case srtp::Result::kAuthFailed:
      ++counters_.srtpAuthFailed;
      return;
    case srtp::Result::kReplay:
      ++counters_.srtpReplayed;
      return;
    default:
      ++counters_.srtpOther;
      return;
  }
}

bool Transport::sendRtp(std::span<uint8_t> buffer, size_t size) { return sendMedia(buffer, size, false); }
bool Transport::sendRtcp(std::span<uint8_t> buffer, size_t size) { return sendMedia(buffer, size, true); }

bool Transport::sendMedia(std::span<uint8_t> buffer, size_t size, bool rtcp) {
  if (state_ != TransportState::kConnected) return false;
  auto to = ice_.selected();
  if (!to) return false;
  srtp::Result r = rtcp ? srtpOut_->protectRtcp(buffer, size) : srtpOut_->protectRtp(buffer, size);
  if (r != srtp::Result::kOk) return false;
  io_->sendTo(*to, buffer.first(size));
  ++(rtcp ? counters_.rtcpOut : counters_.rtpOut);
  return true;
}

void Transport::tick(TimePoint now) {
  if (state_ == TransportState::kClosed) return;
  ice::State before = ice_.state();
  if (ice_.tick(now) == ice::State::kFailed) {
    close(before == ice::State::kChecking ? "ICE did not connect" : "ICE consent expired");
    return;
  }
  if (now >= dtlsDue_) {
    dtls::Status status = dtls_.onTimeout();
    if (status == dtls::Status::kFailed) {
      close(dtls_.error());
      return;
    }
    // DTLS runs only after a valid check, so there is a path to send the retransmission on.
    if (!ice_.paths().empty()) flushDtls(ice_.paths().back().remote, now);
  }
}

TimePoint Transport::nextDeadline() const {
  if (state_ == TransportState::kClosed) return TimePoint::max();
  return std::min(ice_.nextDeadline(), dtlsDue_);
}

void Transport::restartIce(ice::Credentials local, ice::Credentials remote, TimePoint now) {
  if (state_ == TransportState::kClosed) return;
  ice_.restart(std::move(local), std::move(remote), now);
}

void Transport::close(std::string_view why) {
  if (state_ == TransportState::kClosed) return;
  state_ = TransportState::kClosed;
  dtlsDue_ = TimePoint::max();
  io_->onClosed(why);
}

}  // namespace kaiwa::sfu

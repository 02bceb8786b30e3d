// The SFU's transport end to end in memory, against a client made of kaiwa's own pieces in the browser's role (ICE
// checks built as Chromium builds them, dtls::Session as the DTLS client, srtp::Session): the check, the handshake,
// SRTP both ways; what is dropped and counted; consent expiry on a fake clock; a certificate that is not the SDP's.
#include "sfu/transport.hpp"

#include <gtest/gtest.h>

#include <array>
#include <cstring>
#include <string>
#include <vector>

#include "dtls/certificate.hpp"

namespace kaiwa::sfu {
namespace {

using namespace std::chrono_literals;

const Address kClient = *Address::parse("127.0.0.1:50000");
const Address kOther = *Address::parse("127.0.0.1:50001");
const TimePoint kT0 = TimePoint{} + 100s;

struct Recorder : TransportIo {
  std::vector<std::pair<Address, std::vector<uint8_t>>> sent;
  std::vector<Address> valid;
  std::vector<std::vector<uint8_t>> rtp, rtcp;
  int connected = 0;
  std::vector<std::string> closed;

  void sendTo(const Address& to, std::span<const uint8_t> d) override {
    sent.emplace_back(to, std::vector(d.begin(), d.end()));
  }
  void onValidAddress(const Address& from) override { valid.push_back(from); }
  void onConnected() override { ++connected; }
  void onRtp(std::span<uint8_t> p) override { rtp.emplace_back(p.begin(), p.end()); }
  void onRtcp(std::span<uint8_t> p) override { rtcp.emplace_back(p.begin(), p.end()); }
  void onClosed(std::string_view why) override { closed.emplace_back(why); }
};

struct alignas(4) Buffer {
  std::array<uint8_t, 1500> bytes{};
  size_t size = 0;
  std::span<uint8_t> span() { return std::span(bytes).first(size); }
};

Buffer rtpPacket(uint16_t seq, size_t payload = 200) {
  Buffer b;
  b.bytes[0] = 0x80;
  b.bytes[1] = 96;
  b.bytes[2] = uint8_t(seq >> 8);
  b.bytes[3] = uint8_t(seq);
  b.bytes[11] = 0x42;
  for (size_t i = 0; i < payload; ++i) b.bytes[12 + i] = uint8_t(i + seq);
  b.size = 12 + payload;
  return b;
}

// The browser's side, from kaiwa's parts.
struct Browser {
  dtls::Certificate cert = *dtls::Certificate::generate();
  dtls::Context ctx = *dtls::Context::make(cert, dtls::Role::kClient);
  std::optional<dtls::Session> dtls;
  std::optional<srtp::Session> in, out;
  uint8_t txid = 0;

  std::vector<uint8_t> check(bool nominate, const std::string& key = "kaiwa-password-0123456789") {
    std::vector<uint8_t> buf(256);
    stun::TransactionId id{};
    id.fill(++txid);
    stun::Builder b(buf, stun::Method::kBinding, stun::Class::kRequest, id);
    b.text(stun::attr::kUsername, "kaiwaU:browU").u32(stun::attr::kPriority, 0x7e0000ff);
    std::array<uint8_t, 8> tie{1, 2, 3, 4, 5, 6, 7, 8};
    b.attribute(stun::attr::kIceControlling, tie);
    if (nominate) b.attribute(stun::attr::kUseCandidate, {});
    b.messageIntegrity(stun::asBytes(key)).fingerprint();
    buf.resize(b.size());
    return buf;
  }
};

struct Fixture {
  dtls::Certificate serverCert = *dtls::Certificate::generate();
  dtls::Context serverCtx = *dtls::Context::make(serverCert, dtls::Role::kServer);
  Browser browser;
  Recorder io;
  std::optional<Transport> transport;

  explicit Fixture(std::optional<std::string> fingerprint = std::nullopt) {
    TransportConfig config{{"kaiwaU", "kaiwa-password-0123456789"},
                           {"browU", "browser-password-0123456789"},
                           fingerprint.value_or(browser.cert.fingerprint()),
                           {}};
    transport = Transport::make(serverCtx, config, kT0, io);
    browser.dtls = dtls::Session::make(browser.ctx, serverCert.fingerprint());
  }

  void deliver(std::vector<uint8_t> d, const Address& from = kClient, TimePoint now = kT0) {
    transport->receive(d, from, now);
  }

  // Runs the DTLS handshake: the browser's flights in, the transport's out (to the client's address).
  void handshake(const Address& from = kClient) {
    browser.dtls->start();
    for (int round = 0; round < 10; ++round) {
      auto flights = std::move(browser.dtls->output());
      browser.dtls->output().clear();
      for (auto& d : flights) deliver(d, from);
      auto replies = std::move(io.sent);
      io.sent.clear();
      for (auto& [to, d] : replies) {
        EXPECT_EQ(to, kClient);
        browser.dtls->receive(d);
      }
      if (flights.empty() && replies.empty()) break;
    }
    if (browser.dtls->status() == dtls::Status::kConnected) {
      auto keys = browser.dtls->srtpKeys();
      browser.in = srtp::Session::make(keys.profile, keys.remote, srtp::Direction::kInbound);
      browser.out = srtp::Session::make(keys.profile, keys.local, srtp::Direction::kOutbound);
    }
  }

  void connect() {
    deliver(browser.check(true));
    io.sent.clear();
    handshake();
  }
};

TEST(SfuTransport, ConnectsAndCarriesSrtpBothWays) {
  Fixture f;
  f.deliver(f.browser.check(true));
  ASSERT_EQ(f.io.sent.size(), 1u);  // the check's success response, to the client
  auto response = stun::Message::parse(f.io.sent[0].second);
  ASSERT_TRUE(response && response->is(stun::Method::kBinding, stun::Class::kSuccess));
  EXPECT_EQ(f.io.valid, std::vector<Address>{kClient});
  f.io.sent.clear();
  f.handshake();
  ASSERT_EQ(f.io.connected, 1) << (f.io.closed.empty() ? "" : f.io.closed[0]);
  EXPECT_EQ(f.transport->state(), TransportState::kConnected);
  EXPECT_EQ(f.transport->srtpProfile(), srtp::Profile::kAeadAes256Gcm);

  // Browser → kaiwa: unprotected in place and handed up.
  Buffer plain = rtpPacket(1000), p = plain;
  ASSERT_EQ(f.browser.out->protectRtp(p.bytes, p.size), srtp::Result::kOk);
  f.transport->receive(p.span(), kClient, kT0);
  ASSERT_EQ(f.io.rtp.size(), 1u);
  EXPECT_EQ(f.io.rtp[0], std::vector<uint8_t>(plain.span().begin(), plain.span().end()));
  // kaiwa → browser, to the selected path.
  Buffer fwd = rtpPacket(7);
  ASSERT_TRUE(f.transport->sendRtp(fwd.bytes, fwd.size));
  ASSERT_EQ(f.io.sent.size(), 1u);
  EXPECT_EQ(f.io.sent[0].first, kClient);
  Buffer back;
  back.size = f.io.sent[0].second.size();
  std::memcpy(back.bytes.data(), f.io.sent[0].second.data(), back.size);
  ASSERT_EQ(f.browser.in->unprotectRtp(back.bytes, back.size), srtp::Result::kOk);
  EXPECT_EQ(back.size, rtpPacket(7).size);
  // RTCP (a receiver report) both ways.
  Buffer rr;
  rr.bytes = {0x80, 201, 0, 1, 0, 0, 0, 9};
  rr.size = 8;
  Buffer rr2 = rr;
  ASSERT_EQ(f.browser.out->protectRtcp(rr2.bytes, rr2.size), srtp::Result::kOk);
  f.transport->receive(rr2.span(), kClient, kT0);
  ASSERT_EQ(f.io.rtcp.size(), 1u);
  EXPECT_EQ(f.io.rtcp[0].size(), 8u);
  EXPECT_TRUE(f.transport->sendRtcp(rr.bytes, rr.size));
  EXPECT_EQ(f.transport->counters().rtpOut, 1u);
  EXPECT_EQ(f.transport->counters().rtcpOut, 1u);
}

// A transport without SCTP lets its DTLS state go at the client's first protected packet, not before (the client may
// still need kaiwa's last flight until it has keys), and carries media both ways afterwards; a close_notify then goes
// unnoticed (dropped and counted), where a transport that keeps DTLS ends on it.
TEST(SfuTransport, ADtlsStateReleasedOnceTheClientHasKeysLeavesMediaFlowing) {
  for (bool release : {true, false}) {
    SCOPED_TRACE(release ? "released" : "kept");
    Fixture f;
    if (release) f.transport->releaseDtlsOnceKeyed();
    f.connect();
    ASSERT_EQ(f.io.connected, 1);
    EXPECT_FALSE(f.transport->dtlsReleased());  // connected, but no sign yet that the client has the keys
    Buffer p = rtpPacket(1);
    ASSERT_EQ(f.browser.out->protectRtp(p.bytes, p.size), srtp::Result::kOk);
    f.transport->receive(p.span(), kClient, kT0);
    ASSERT_EQ(f.io.rtp.size(), 1u);
    EXPECT_EQ(f.transport->dtlsReleased(), release);
    EXPECT_LT(f.transport->nextDeadline(), TimePoint::max());  // ICE consent still runs

    Buffer q = rtpPacket(2);
    ASSERT_EQ(f.browser.out->protectRtp(q.bytes, q.size), srtp::Result::kOk);
    f.transport->receive(q.span(), kClient, kT0);
    EXPECT_EQ(f.io.rtp.size(), 2u);
    Buffer fwd = rtpPacket(9);
    f.io.sent.clear();
    ASSERT_TRUE(f.transport->sendRtp(fwd.bytes, fwd.size));
    ASSERT_EQ(f.io.sent.size(), 1u);
    Buffer back;
    back.size = f.io.sent[0].second.size();
    std::memcpy(back.bytes.data(), f.io.sent[0].second.data(), back.size);
    EXPECT_EQ(f.browser.in->unprotectRtp(back.bytes, back.size), srtp::Result::kOk);

    f.browser.dtls->close();
    auto bye = std::move(f.browser.dtls->output());
    ASSERT_FALSE(bye.empty());
    for (auto& d : bye) f.deliver(d);
    if (release) {
      EXPECT_EQ(f.transport->state(), TransportState::kConnected);
      EXPECT_EQ(f.transport->counters().dtlsAfterRelease, bye.size());
      EXPECT_TRUE(f.io.closed.empty());
    } else {
      EXPECT_EQ(f.transport->state(), TransportState::kClosed);
      EXPECT_EQ(f.transport->counters().dtlsAfterRelease, 0u);
    }
  }
}

TEST(SfuTransport, DtlsFromAnAddressWithoutAValidCheckIsDropped) {
  Fixture f;
  f.deliver(f.browser.check(true));
  f.io.sent.clear();
  f.browser.dtls->start();
  for (auto& d : f.browser.dtls->output()) f.deliver(d, kOther);
  EXPECT_TRUE(f.io.sent.empty());  // no handshake started for a spoofed source
  EXPECT_GE(f.transport->counters().dtlsFromUnknown, 1u);
  EXPECT_EQ(f.transport->state(), TransportState::kConnecting);
}

TEST(SfuTransport, MediaBeforeTheKeysAndForgedMediaAreDroppedAndCounted) {
  Fixture f;
  f.deliver(f.browser.check(true));
  Buffer early = rtpPacket(1);
  f.transport->receive(early.span(), kClient, kT0);
  EXPECT_EQ(f.transport->counters().mediaBeforeDtls, 1u);
  EXPECT_FALSE(f.transport->sendRtp(early.bytes, early.size));
  f.io.sent.clear();
  f.handshake();
  ASSERT_EQ(f.io.connected, 1);
  Buffer p = rtpPacket(2);
  ASSERT_EQ(f.browser.out->protectRtp(p.bytes, p.size), srtp::Result::kOk);
  Buffer replay = p, forged = p;
  forged.bytes[30] ^= 0xFF;
  f.transport->receive(forged.span(), kClient, kT0);
  f.transport->receive(p.span(), kClient, kT0);
  f.transport->receive(replay.span(), kClient, kT0);
  std::vector<uint8_t> junk(50, 0xFF);  // first byte 255: nothing WebRTC sends
  f.deliver(junk);
  EXPECT_EQ(f.io.rtp.size(), 1u);
  EXPECT_EQ(f.transport->counters().srtpAuthFailed, 1u);
  EXPECT_EQ(f.transport->counters().srtpReplayed, 1u);
  EXPECT_EQ(f.transport->counters().other, 1u);
}

TEST(SfuTransport, ARefusedCheckTeachesNothing) {
  Fixture f;
  f.deliver(f.browser.check(true, "a-guessed-password"));
  EXPECT_TRUE(f.io.valid.empty());
  EXPECT_EQ(f.transport->counters().checksRefused, 1u);
  ASSERT_EQ(f.io.sent.size(), 1u);  // a 401
  EXPECT_EQ(stun::Message::parse(f.io.sent[0].second)->errorCode(), 401);
}

TEST(SfuTransport, EndsOnceWhenConsentExpires) {
  Fixture f;
  f.connect();
  ASSERT_EQ(f.io.connected, 1);
  f.deliver(f.browser.check(false), kClient, kT0 + 20s);  // consent refreshed
  f.transport->tick(kT0 + 49s);
  EXPECT_TRUE(f.io.closed.empty());
  EXPECT_LE(f.transport->nextDeadline(), kT0 + 50s);
  f.transport->tick(kT0 + 50s);
  ASSERT_EQ(f.io.closed, std::vector<std::string>{"ICE consent expired"});
  EXPECT_EQ(f.transport->state(), TransportState::kClosed);
  f.transport->tick(kT0 + 60s);
  Buffer p = rtpPacket(3);
  EXPECT_FALSE(f.transport->sendRtp(p.bytes, p.size));
  f.deliver(f.browser.check(true), kClient, kT0 + 61s);
  EXPECT_EQ(f.io.closed.size(), 1u);
}

TEST(SfuTransport, AClientThatNeverConnectsIsGivenUp) {
  Fixture f;
  f.transport->tick(kT0 + 29s);
  EXPECT_TRUE(f.io.closed.empty());
  f.transport->tick(kT0 + 30s);
  EXPECT_EQ(f.io.closed, std::vector<std::string>{"ICE did not connect"});
}

TEST(SfuTransport, ACertificateThatIsNotTheSdpsEndsTheTransport) {
  auto stranger = dtls::Certificate::generate();
  Fixture f(stranger->fingerprint());
  f.connect();
  EXPECT_EQ(f.io.connected, 0);
  EXPECT_EQ(f.io.closed, std::vector<std::string>{"fingerprint mismatch"});
  EXPECT_EQ(f.transport->state(), TransportState::kClosed);
}

}  // namespace
}  // namespace kaiwa::sfu

// The SFU's RTCP of its own and its recovery from loss (src/sfu/router.hpp) on hand-built packets and a fake clock:
// NACKs towards the publisher for what it lost (due, retried, bounded, stopped by the packet), the publisher's RTX
// unwrapped and forwarded once, Sender Reports towards subscribers in their own timeline, Receiver Reports towards
// publishers, and what subscribers' reports say.
#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include "common/bytes.hpp"
#include "rtp/receive_statistics.hpp"
#include "rtp/rtcp.hpp"
#include "sfu/router.hpp"

namespace kaiwa::sfu {
namespace {

using namespace std::chrono_literals;
namespace rtcp = rtp::rtcp;

const TimePoint kT0 = TimePoint{} + 100s;
constexpr TransportId kPub = 1, kSubA = 2;
constexpr uint32_t kVideoSsrc = 0xa1b2c3d4, kRtxSsrc = 0x0badf00d, kSubSsrc = 0x5000;
constexpr uint32_t kFeedbackSsrc = 77;

// An RTP packet whose payload is `payload` bytes of `fill`.
std::vector<uint8_t> rtpPacket(uint8_t pt, uint16_t seq, uint32_t ts, uint32_t ssrc, size_t payload = 20,
                               uint8_t fill = 0xab) {
  std::vector<uint8_t> p(12);
  p[0] = 0x80;
  p[1] = pt;
  common::put16(&p[2], seq);
  common::put32(&p[4], ts);
  common::put32(&p[8], ssrc);
  p.insert(p.end(), payload, fill);
  return p;
}

// The RTX packet (RFC 4588) of rtpPacket(96, osn, ts, kVideoSsrc, 20, fill).
std::vector<uint8_t> rtxPacket(uint16_t rtxSeq, uint16_t osn, uint32_t ts, uint8_t fill) {
  auto p = rtpPacket(97, rtxSeq, ts, kRtxSsrc, 0);
  p.push_back(uint8_t(osn >> 8));
  p.push_back(uint8_t(osn));
  p.insert(p.end(), 20, fill);
  return p;
}

struct Io : RouterIo {
  std::vector<TransportId> ready;
  std::vector<std::pair<TransportId, std::vector<uint8_t>>> rtcp;
  void onReady(TransportId s) override { ready.push_back(s); }
  void sendRtcp(TransportId to, std::span<const uint8_t> p) override {
    rtcp.emplace_back(to, std::vector(p.begin(), p.end()));
  }
  // Every block of type `type` sent to `to`, as (the whole datagram, the block's bytes).
  std::vector<std::vector<uint8_t>> blocks(TransportId to, rtcp::PacketType type, uint8_t fmt = 0xFF) const {
    std::vector<std::vector<uint8_t>> out;
    for (const auto& [dest, bytes] : rtcp) {
      if (dest != to) continue;
      rtcp::CompoundReader reader(bytes);
      while (auto b = reader.next()) {
        if (rtcp::PacketType(b->type) == type && (fmt == 0xFF || b->count == fmt))
          out.emplace_back(b->bytes.begin(), b->bytes.end());
      }
    }
    return out;
  }
  // The sequence numbers of every NACK sent to the publisher, in order.
  std::vector<uint16_t> nacked() const {
    std::vector<uint16_t> out;
    for (const auto& bytes : blocks(kPub, rtcp::PacketType::kRtpFeedback, rtcp::kFmtNack)) {
      rtcp::CompoundReader reader(bytes);
      auto nack = rtcp::Nack::parse(*reader.next());
      EXPECT_TRUE(nack);
      EXPECT_EQ(nack->header().senderSsrc, kFeedbackSsrc);
      EXPECT_EQ(nack->header().mediaSsrc, kVideoSsrc);
      nack->forEachSequenceNumber([&](uint16_t s) { out.push_back(s); });
    }
    return out;
  }
  size_t plis() const { return blocks(kPub, rtcp::PacketType::kPayloadFeedback, rtcp::kFmtPli).size(); }
};

std::vector<std::vector<uint8_t>> drain(Router& r, TransportId sub) {
  std::vector<std::vector<uint8_t>> out;
  r.drain(sub, [&](std::span<uint8_t> slot, size_t n) { out.emplace_back(slot.begin(), slot.begin() + ptrdiff_t(n)); });
  return out;
}

rtcp::Block only(const std::vector<uint8_t>& bytes) {
  rtcp::CompoundReader reader(bytes);
  return *reader.next();
}

struct Room {
  Io io;
  Router router{io};
  TrackId video = 0;
  explicit Room(bool reducedSize = true, bool nack = true) {
    router.setUnixTimeOfClockEpoch({});
    router.addPublisher(kPub, {.midExtensionId = 4, .feedbackSsrc = kFeedbackSsrc, .reducedSize = reducedSize});
    TrackConfig t{.kind = MediaKind::kVideo, .mid = "1", .ssrc = kVideoSsrc, .rtxSsrc = kRtxSsrc};
    t.nack = nack;
    t.rtxPayloadTypes.set(97, 96);
    video = *router.addTrack(kPub, t);
    router.addSubscriber(kSubA);
    SubscriptionConfig c{.ssrc = kSubSsrc, .initialSequence = 1000, .initialTimestamp = 5000};
    c.payloadTypes.set(96, 100);
    EXPECT_TRUE(router.subscribe(kSubA, video, c, kT0));
    io.rtcp.clear();  // the new subscription's PLI
  }
  void send(uint16_t seq, TimePoint at, uint32_t ts = 0) {
    router.onPublisherRtp(kPub, rtpPacket(96, seq, ts, kVideoSsrc), at);
  }
};

TEST(RouterNack, AGapIsNackedAfterTheReorderDelayAndRetriedUntilItArrives) {
  Room room;
  for (uint16_t seq : {10, 11, 13, 14}) room.send(seq, kT0);
  EXPECT_EQ(room.router.nextDeadline(), kT0 + 10ms);  // the generator's reorder delay
  room.router.tick(kT0 + 5ms);
  EXPECT_TRUE(room.io.nacked().empty());
  room.router.tick(kT0 + 10ms);
  EXPECT_EQ(room.io.nacked(), std::vector<uint16_t>{12});
  // Reduced-size RTCP was negotiated: the NACK goes alone.
  ASSERT_EQ(room.io.rtcp.size(), 1u);
  EXPECT_EQ(rtcp::PacketType(only(room.io.rtcp[0].second).type), rtcp::PacketType::kRtpFeedback);
  // Retried after the retry interval (the default RTT, 100 ms), not before.
  room.router.tick(kT0 + 50ms);
  EXPECT_EQ(room.io.nacked().size(), 1u);
  room.router.tick(kT0 + 110ms);
  EXPECT_EQ(room.io.nacked(), (std::vector<uint16_t>{12, 12}));
  // The packet arrives: no more NACKs for it.
  room.send(12, kT0 + 150ms);
  for (int i = 0; i < 20; ++i) room.router.tick(kT0 + 200ms + i * 100ms);
  EXPECT_EQ(room.io.nacked().size(), 2u);
  EXPECT_EQ(room.router.counters().nacksSent, 2u);
  EXPECT_EQ(room.router.counters().nackRequested, 2u);
  EXPECT_EQ(room.io.plis(), 0u);
}

TEST(RouterNack, RetriesAreBoundedThenAKeyframeIsAskedFor) {
  Room room;
  for (uint16_t seq : {10, 12}) room.send(seq, kT0);
  for (int i = 0; i < 40; ++i) room.router.tick(kT0 + 10ms + i * 100ms);
  // rtp::NackConfig's ten tries, then given up: the decoders need a keyframe.
  EXPECT_EQ(room.io.nacked(), std::vector<uint16_t>(10, 11));
  EXPECT_EQ(room.io.plis(), 1u);
  EXPECT_EQ(room.router.counters().nacksSent, 10u);
}

TEST(RouterNack, WithoutReducedSizeTheNackFollowsAReceiverReportAndCname) {
  Room room(false);
  for (uint16_t seq : {10, 11, 13}) room.send(seq, kT0);
  room.router.tick(kT0 + 10ms);
  const auto& sent = room.io.rtcp.back().second;
  EXPECT_EQ(rtcp::checkCompound(sent, false), rtcp::CompoundCheck::kValid);
  EXPECT_EQ(room.io.nacked(), std::vector<uint16_t>{12});
  ASSERT_EQ(room.io.blocks(kPub, rtcp::PacketType::kSdes).size(), 1u);
}

TEST(RouterNack, NotNegotiatedNoNack) {
  Room room(true, false);
  for (uint16_t seq : {10, 11, 13}) room.send(seq, kT0);
  for (int i = 0; i < 10; ++i) room.router.tick(kT0 + i * 50ms);
  EXPECT_TRUE(room.io.nacked().empty());
}

TEST(RouterRtx, ThePublishersRtxRestoresTheLostPacketAndIsForwardedOnce) {
  Room room;
  room.router.onPublisherRtp(kPub, rtpPacket(96, 10, 900, kVideoSsrc, 20, 0x10), kT0);
  room.router.onPublisherRtp(kPub, rtpPacket(96, 11, 900, kVideoSsrc, 20, 0x11), kT0);
  room.router.onPublisherRtp(kPub, rtpPacket(96, 13, 1800, kVideoSsrc, 20, 0x13), kT0);
  ASSERT_EQ(drain(room.router, kSubA).size(), 3u);
  room.router.tick(kT0 + 10ms);
  ASSERT_EQ(room.io.nacked(), std::vector<uint16_t>{12});
  // The publisher answers with RTX: the original comes back, mapped like any packet of the track.
  room.router.onPublisherRtp(kPub, rtxPacket(500, 12, 1800, 0x12), kT0 + 40ms);
  auto out = drain(room.router, kSubA);
  ASSERT_EQ(out.size(), 1u);
  const auto p = rtp::Packet::parse(out[0]);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->ssrc(), kSubSsrc);
  EXPECT_EQ(p->sequenceNumber(), 1002);  // 10 was the subscriber's 1000
  EXPECT_EQ(p->payloadType(), 100);
  EXPECT_EQ(p->timestamp(), 5000u + 900);
  EXPECT_EQ(p->payload().size(), 20u);
  EXPECT_EQ(p->payload()[0], 0x12);
  EXPECT_EQ(room.router.counters().rtxUnwrapped, 1u);
  EXPECT_EQ(room.router.counters().rtxRecovered, 1u);
  // A second copy (the retry crossed the first answer) and a retransmission of a packet that arrived are dropped.
  room.router.onPublisherRtp(kPub, rtxPacket(501, 12, 1800, 0x12), kT0 + 50ms);
  room.router.onPublisherRtp(kPub, rtxPacket(502, 11, 900, 0x11), kT0 + 50ms);
  EXPECT_TRUE(drain(room.router, kSubA).empty());
  EXPECT_EQ(room.router.counters().rtxUnwrapped, 3u);
  EXPECT_EQ(room.router.counters().rtxRecovered, 1u);
  EXPECT_EQ(room.router.counters().publisherRtx, 2u);
  // The hole is filled: no more NACKs, and the receive statistics count no loss.
  for (int i = 0; i < 10; ++i) room.router.tick(kT0 + 200ms + i * 100ms);
  EXPECT_EQ(room.io.nacked().size(), 1u);
  // The restored packet is held for the subscribers' own NACKs.
  std::vector<uint8_t> nack(64);
  const uint16_t lost[] = {1002};
  nack.resize(*rtcp::writeNack(nack, {9, kSubSsrc}, lost));
  room.router.onSubscriberRtcp(kSubA, nack, kT0 + 2s);
  out = drain(room.router, kSubA);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(rtp::Packet::parse(out[0])->payload()[0], 0x12);
}

TEST(RouterRtx, PaddingProbesAndMalformedRtxAreDroppedAndCounted) {
  Room room;
  room.send(10, kT0);
  room.router.onPublisherRtp(kPub, rtpPacket(97, 1, 0, kRtxSsrc, 0), kT0);  // no payload: a probe
  room.router.onPublisherRtp(kPub, rtpPacket(97, 2, 0, kRtxSsrc, 1), kT0);  // shorter than the OSN
  room.router.onPublisherRtp(kPub, rtpPacket(99, 3, 0, kRtxSsrc, 4), kT0);  // an RTX type without apt
  drain(room.router, kSubA);
  room.router.onPublisherRtp(kPub, rtpPacket(99, 3, 0, kRtxSsrc, 4), kT0);
  EXPECT_TRUE(drain(room.router, kSubA).empty());
  EXPECT_EQ(room.router.counters().publisherRtx, 3u);
  EXPECT_EQ(room.router.counters().badRtp, 1u);
  EXPECT_EQ(room.router.counters().rtxUnwrapped, 0u);
}

std::vector<uint8_t> senderReport(uint32_t ssrc, uint64_t ntp, uint32_t rtpTs) {
  std::vector<uint8_t> b(64);
  b.resize(*rtcp::writeSenderReport(b, ssrc, {.ntpTimestamp = ntp, .rtpTimestamp = rtpTs}, {}));
  return b;
}

TEST(RouterReports, SenderReportsGoToSubscribersInTheirOwnTimelineOnceThePublisherSentOne) {
  Room room;
  // Publisher timestamps from 90000; the subscriber's start at 5000.
  for (uint16_t i = 0; i < 10; ++i) room.send(uint16_t(10 + i), kT0 + i * 33ms, 90000 + i * 3000u);
  // The first reports are due half an interval after the first packet; the RR goes, no SR: no mapping yet.
  EXPECT_EQ(room.router.nextDeadline(), kT0 + Router::kReportInterval / 2);
  room.router.tick(kT0 + 500ms);
  EXPECT_EQ(room.io.blocks(kPub, rtcp::PacketType::kReceiverReport).size(), 1u);
  EXPECT_TRUE(room.io.blocks(kSubA, rtcp::PacketType::kSenderReport).empty());
  const TimePoint srAt = kT0 + 1250ms;
  room.router.onPublisherRtcp(kPub, senderReport(kVideoSsrc, 0x1111222233334444ULL, 123456), srAt);
  const TimePoint at = kT0 + 1500ms;
  room.router.tick(at);
  const auto srs = room.io.blocks(kSubA, rtcp::PacketType::kSenderReport);
  ASSERT_EQ(srs.size(), 1u);
  const auto sr = rtcp::SenderReport::parse(only(srs[0]));
  ASSERT_TRUE(sr);
  EXPECT_EQ(sr->ssrc, kSubSsrc);
  EXPECT_EQ(sr->info.ntpTimestamp, rtp::toNtp(at, {}));
  // 250 ms after the publisher's SR its clock read 123456 + 22500; the subscriber's offset is 5000 - 90000.
  EXPECT_EQ(sr->info.rtpTimestamp, 123456u + 22500u + 5000u - 90000u);
  EXPECT_EQ(sr->info.packetCount, 10u);
  EXPECT_EQ(sr->info.octetCount, 200u);
  EXPECT_EQ(sr->reports.size(), 0u);
  // With its CNAME, in a valid compound packet.
  for (const auto& [to, bytes] : room.io.rtcp) {
    if (to == kSubA) {
      EXPECT_EQ(rtcp::checkCompound(bytes, false), rtcp::CompoundCheck::kValid);
    }
  }
  EXPECT_EQ(room.io.blocks(kSubA, rtcp::PacketType::kSdes).size(), 1u);
  EXPECT_EQ(room.router.counters().senderReportsSent, 1u);
  // The next one a report interval later, not before.
  room.router.tick(at + 500ms);
  EXPECT_EQ(room.io.blocks(kSubA, rtcp::PacketType::kSenderReport).size(), 1u);
  EXPECT_EQ(room.router.nextDeadline(), at + Router::kReportInterval);
}

TEST(RouterReports, ReceiverReportsToThePublisherSayLossJitterAndEchoItsSr) {
  Room room;
  for (uint16_t seq : {10, 11, 12, 14, 15, 16, 17, 18, 19, 20}) room.send(seq, kT0, 3000);  // 13 lost, for good
  room.router.onPublisherRtcp(kPub, senderReport(kVideoSsrc, 0x1111222233334444ULL, 0), kT0 + 100ms);
  room.router.tick(kT0 + 600ms);
  const auto rrs = room.io.blocks(kPub, rtcp::PacketType::kReceiverReport);
  ASSERT_FALSE(rrs.empty());
  const auto rr = rtcp::ReceiverReport::parse(only(rrs.back()));
  ASSERT_TRUE(rr);
  EXPECT_EQ(rr->ssrc, kFeedbackSsrc);
  ASSERT_EQ(rr->reports.size(), 1u);
  const auto b = rr->reports[0];
  EXPECT_EQ(b.ssrc, kVideoSsrc);
  EXPECT_EQ(b.extendedHighestSequence, 20u);
  EXPECT_EQ(b.cumulativeLost, 1);
  EXPECT_EQ(b.fractionLost, 256 / 10);  // one of 11..20
  EXPECT_EQ(b.lastSenderReport, 0x22223333u);
  EXPECT_EQ(b.delaySinceLastSenderReport, 32768u);  // half a second
  EXPECT_EQ(room.router.counters().receiverReportsSent, 1u);
  EXPECT_EQ(rtcp::checkCompound(room.io.rtcp.back().second, false), rtcp::CompoundCheck::kValid);
  // A malformed SR is counted.
  auto bad = senderReport(kVideoSsrc, 1, 2);
  bad.resize(12);
  bad[3] = 2;
  room.router.onPublisherRtcp(kPub, bad, kT0 + 700ms);
  EXPECT_EQ(room.router.counters().badRtcp, 1u);
}

TEST(RouterReports, ASubscribersReportGivesLossJitterAndRoundTripTime) {
  Room room;
  room.send(10, kT0);
  // The subscriber echoes an SR kaiwa sent at kT0 + 1 s, held it 0.5 s, and the report arrives 125 ms after that.
  const uint32_t lsr = rtp::ntpMiddle(rtp::toNtp(kT0 + 1s, {}));
  const rtcp::ReportBlock block{.ssrc = kSubSsrc,
                                .fractionLost = 26,
                                .cumulativeLost = 40,
                                .extendedHighestSequence = 1000,
                                .jitter = 321,
                                .lastSenderReport = lsr,
                                .delaySinceLastSenderReport = 32768};
  std::vector<uint8_t> rr(64);
  rr.resize(*rtcp::writeReceiverReport(rr, 0x9999, std::span<const rtcp::ReportBlock>(&block, 1)));
  room.router.onSubscriberRtcp(kSubA, rr, kT0 + 1625ms);
  const auto stats = room.router.subscriptionStats(kSubA, room.video);
  ASSERT_TRUE(stats);
  EXPECT_TRUE(stats->reported);
  EXPECT_EQ(stats->fractionLost, 26);
  EXPECT_EQ(stats->cumulativeLost, 40);
  EXPECT_EQ(stats->jitter, 321u);
  EXPECT_EQ(stats->rtt, Millis(125));
  EXPECT_EQ(stats->packetsSent, 1u);
  EXPECT_EQ(room.router.lossySubscriptions(13), 1u);
  EXPECT_EQ(room.router.lossySubscriptions(27), 0u);
  EXPECT_EQ(room.router.counters().receiverReportsIn, 1u);
}

}  // namespace
}  // namespace kaiwa::sfu

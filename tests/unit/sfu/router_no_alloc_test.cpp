// Forwarding allocates nothing per packet once publishers, tracks and subscriptions exist: the RTP fan-out with its
// rewrites, queueing and draining, PLI through the throttle, and NACK answered with RTX; RTCP of its own, NACKs to the
// publisher and its RTX unwrapped.
#include <gtest/gtest.h>

#include <array>
#include <string>
#include <vector>

#include "alloc_counter.hpp"
#include "common/bytes.hpp"
#include "rtp/rtcp.hpp"
#include "rtp/transport_feedback.hpp"
#include "sfu/router.hpp"

namespace kaiwa::sfu {
namespace {

struct NullIo : RouterIo {
  size_t ready = 0, rtcp = 0;
  void onReady(TransportId) override { ++ready; }
  void sendRtcp(TransportId, std::span<const uint8_t>) override { ++rtcp; }
};

TEST(RouterHotPath, AllocatesNothing) {
  NullIo io;
  Router router(io);
  const TimePoint t0 = TimePoint{} + std::chrono::seconds(100);
  router.addPublisher(1, {.midExtensionId = 4});
  const TrackId video = *router.addTrack(1, {.kind = MediaKind::kVideo, .mid = "1", .ssrc = 0x1234});
  for (TransportId sub = 2; sub < 5; ++sub) {
    router.addSubscriber(sub, {.queuePackets = 64});
    SubscriptionConfig c{.ssrc = 0x5000 + sub, .rtxSsrc = 0x6000 + sub, .rtxPayloadType = 97};
    c.payloadTypes.set(96, 96);
    ASSERT_TRUE(router.subscribe(sub, video, c, t0));
  }
  std::vector<uint8_t> packet(1200, 0xab);
  packet[0] = 0x80;
  packet[1] = 96;
  common::put32(&packet[8], 0x1234);
  std::array<uint8_t, 64> nack{}, pli{};
  const uint16_t lost[] = {3, 5};
  const size_t nackSize = *rtp::rtcp::writeNack(nack, {9, 0x5002}, lost);
  const size_t pliSize = *rtp::rtcp::writePli(pli, {9, 0x5003});

  counting = true;
  size_t drained = 0;
  for (uint16_t i = 0; i < 2000; ++i) {
    common::put16(&packet[2], i);
    common::put32(&packet[4], i * 3000u);
    const TimePoint now = t0 + std::chrono::milliseconds(i);
    router.onPublisherRtp(1, packet, now);
    if (i % 50 == 0) {
      router.onSubscriberRtcp(2, std::span<const uint8_t>(nack.data(), nackSize), now);
      router.onSubscriberRtcp(3, std::span<const uint8_t>(pli.data(), pliSize), now);
      router.tick(now);
    }
    for (TransportId sub = 2; sub < 5; ++sub) drained += router.drain(sub, [](std::span<uint8_t>, size_t) {});
  }
  counting = false;
  EXPECT_EQ(allocations.load(), 0u);
  EXPECT_GE(drained, 6000u);
  EXPECT_GT(io.rtcp, 0u);
  EXPECT_GT(router.counters().nackRetransmitted, 0u);
}

// The loss-recovery and report paths: a publisher's packet lost every 50, NACKed upstream by the generator, restored
// from RTX; its SRs read; RRs to it and SRs to the subscribers sent from tick(); the subscribers' RRs read.
TEST(RouterHotPath, RtcpAndRtxAllocateNothing) {
  NullIo io;
  Router router(io);
  const TimePoint t0 = TimePoint{} + std::chrono::seconds(100);
  router.addPublisher(1, {.midExtensionId = 4});
  TrackConfig t{.kind = MediaKind::kVideo, .mid = "1", .ssrc = 0x1234, .rtxSsrc = 0x4321};
  t.nack = true;
  t.rtxPayloadTypes.set(97, 96);
  const TrackId video = *router.addTrack(1, t);
  for (TransportId sub = 2; sub < 5; ++sub) {
    router.addSubscriber(sub, {.queuePackets = 64});
    SubscriptionConfig c{.ssrc = 0x5000 + sub, .rtxSsrc = 0x6000 + sub, .rtxPayloadType = 97};
    c.payloadTypes.set(96, 96);
    ASSERT_TRUE(router.subscribe(sub, video, c, t0));
  }
  std::vector<uint8_t> packet(1200, 0xab), rtx(1202, 0xab);
  packet[0] = rtx[0] = 0x80;
  packet[1] = 96;
  rtx[1] = 97;
  common::put32(&packet[8], 0x1234);
  common::put32(&rtx[8], 0x4321);
  std::array<uint8_t, 64> sr{}, rr{};
  const size_t srSize = *rtp::rtcp::writeSenderReport(sr, 0x1234, {.ntpTimestamp = 1ULL << 40}, {});
  const rtp::rtcp::ReportBlock block{.ssrc = 0x5002, .fractionLost = 3, .lastSenderReport = 1};
  const size_t rrSize = *rtp::rtcp::writeReceiverReport(rr, 9, std::span<const rtp::rtcp::ReportBlock>(&block, 1));

  counting = true;
  uint16_t rtxSeq = 0;
  for (uint16_t i = 0; i < 4000; ++i) {
    const TimePoint now = t0 + std::chrono::milliseconds(i * 2);
    common::put32(&packet[4], i * 3000u);
    if (i % 50 != 25) {
      common::put16(&packet[2], i);
      router.onPublisherRtp(1, packet, now);
    }
    if (i % 50 == 45) {  // the publisher answers the NACK for i - 20
      common::put16(&rtx[2], rtxSeq++);
      common::put16(&rtx[12], uint16_t(i - 20));
      router.onPublisherRtp(1, rtx, now);
    }
    if (i % 10 == 0) router.tick(now);
    if (i % 250 == 0) {
      router.onPublisherRtcp(1, std::span<const uint8_t>(sr.data(), srSize), now);
      router.onSubscriberRtcp(2, std::span<const uint8_t>(rr.data(), rrSize), now);
    }
    for (TransportId sub = 2; sub < 5; ++sub) router.drain(sub, [](std::span<uint8_t>, size_t) {});
  }
  counting = false;
  EXPECT_EQ(allocations.load(), 0u);
  EXPECT_GT(router.counters().nacksSent, 50u);
  EXPECT_GT(router.counters().rtxRecovered, 50u);
  EXPECT_GT(router.counters().senderReportsSent, 10u);
  EXPECT_GT(router.counters().receiverReportsSent, 5u);
  EXPECT_GT(router.counters().receiverReportsIn, 0u);
}

// Overflow: a subscriber drained only every 40 packets, with audio and video, on a pool of the worker's kind shared
// with one that keeps up: video dropped, audio taking the places of queued video, keyframes asked after the drain.
TEST(RouterHotPath, OverflowAllocatesNothing) {
  NullIo io;
  SendPool pool(64);
  Router router(io, pool);
  const TimePoint t0 = TimePoint{} + std::chrono::seconds(100);
  router.addPublisher(1, {.midExtensionId = 4});
  const TrackId video = *router.addTrack(1, {.kind = MediaKind::kVideo, .mid = "1", .ssrc = 0x1234});
  const TrackId audio = *router.addTrack(1, {.kind = MediaKind::kAudio, .mid = "0", .ssrc = 0x4444});
  for (TransportId sub = 2; sub < 4; ++sub) {
    router.addSubscriber(sub, {.queuePackets = 16});
    SubscriptionConfig v{.ssrc = 0x5000 + sub};
    v.payloadTypes.set(96, 96);
    ASSERT_TRUE(router.subscribe(sub, video, v, t0));
    SubscriptionConfig a{.ssrc = 0x7000 + sub};
    a.payloadTypes.set(111, 111);
    ASSERT_TRUE(router.subscribe(sub, audio, a, t0));
  }
  std::vector<uint8_t> packet(1200, 0xab), sound(160, 0xab);
  packet[0] = sound[0] = 0x80;
  packet[1] = 96;
  sound[1] = 111;
  common::put32(&packet[8], 0x1234);
  common::put32(&sound[8], 0x4444);

  counting = true;
  size_t drained = 0;
  for (uint16_t i = 0; i < 4000; ++i) {
    const TimePoint now = t0 + std::chrono::milliseconds(i * 5);
    common::put16(&packet[2], i);
    common::put32(&packet[4], i * 3000u);
    router.onPublisherRtp(1, packet, now);
    if (i % 3 == 0) {
      common::put16(&sound[2], i);
      router.onPublisherRtp(1, sound, now);
    }
    drained += router.drain(2, [](std::span<uint8_t>, size_t) {});
    if (i % 40 == 39) drained += router.drain(3, [](std::span<uint8_t>, size_t) {});
    if (i % 4 == 0) router.tick(now);
  }
  counting = false;
  EXPECT_EQ(allocations.load(), 0u);
  EXPECT_GT(drained, 4000u);
  EXPECT_GT(router.counters().queueFull, 1000u);
  EXPECT_EQ(router.counters().audioDropped, 0u);
  EXPECT_GT(router.keyframeStats(video)->sent, 10u);
}

}  // namespace
}  // namespace kaiwa::sfu

namespace kaiwa::sfu {
namespace {

// Simulcast with bandwidth estimation: three VP8 layers, a subscriber that negotiated transport-cc (its numbers
// stamped as packets leave, its feedback to the estimator), the selector's switches, padding, and transport-cc
// feedback to the publisher — nothing allocates once the subscription exists.
TEST(RouterHotPath, SimulcastWithEstimationAllocatesNothing) {
  NullIo io;
  Router router(io);
  const TimePoint t0 = TimePoint{} + std::chrono::seconds(100);
  router.addPublisher(1, {.midExtensionId = 4, .transportCcExtensionId = 3});
  std::vector<TrackConfig> layers;
  for (uint32_t l = 0; l < 3; ++l) {
    TrackConfig c{.kind = MediaKind::kVideo, .mid = "1", .rid = std::string(1, "qhf"[l]), .ssrc = 0x1000 * (l + 1)};
    c.retransmission = {.maxPackets = 128, .maxBytes = 128 * 1500};
    c.vp8 = true;
    layers.push_back(c);
  }
  const TrackId group = *router.addSimulcastTrack(1, layers);
  router.addSubscriber(2, {.queuePackets = 256});
  SubscriptionConfig c{.ssrc = 0x5002, .rtxSsrc = 0x6002, .rtxPayloadType = 97};
  c.payloadTypes.set(96, 96);
  c.extensions.set(3, 5);
  c.transportCcExtensionId = 5;
  ASSERT_TRUE(router.subscribe(2, group, c, t0));

  // 12-byte header, the transport-wide number (one-byte form, id 3), a VP8 descriptor with picture id, TL0PICIDX, TID.
  std::vector<uint8_t> packet(300, 0xab);
  packet[0] = 0x90;
  packet[1] = 96;
  const uint8_t head[] = {0xBE, 0xDE, 0,    1, 3 << 4 | 1, 0,    0,    0,    0x90, 0xE0, 0x80, 0,
                          0,    0x20, 0x00, 0, 0,          0x9d, 0x01, 0x2a, 0x80, 0x02, 0xe0, 0x01};
  std::copy(std::begin(head), std::end(head), packet.begin() + 12);
  std::array<uint8_t, 1280> feedback{};
  std::array<uint16_t, 3> seq{};
  uint16_t transport = 0, sent = 0;
  counting = true;
  size_t drained = 0;
  for (int i = 0; i < 3000; ++i) {
    const TimePoint now = t0 + std::chrono::milliseconds(i * 5);
    const int l = i % 3;
    const bool keyframe = i % 300 < 3;
    common::put16(&packet[2], seq[size_t(l)]++);
    common::put32(&packet[4], uint32_t(i / 3) * 1500u);
    common::put32(&packet[8], 0x1000u * uint32_t(l + 1));
    common::put16(&packet[17], transport++);
    packet[22] = uint8_t(0x80 | (i / 3 >> 8 & 0x7F));
    packet[23] = uint8_t(i / 3);
    packet[26] = keyframe ? 0x00 : 0x01;
    router.onPublisherRtp(1, packet, now);
    if (i % 4 == 0) router.tick(now);
    drained += router.drain(2, now, [](std::span<uint8_t>, size_t) {});
    if (i % 20 == 19) {
      // The subscriber's feedback: everything kaiwa numbered since the last one arrived.
      rtp::rtcp::TransportFeedbackBuilder b({9, 0x5002}, 0);
      const int64_t micros = std::chrono::duration_cast<std::chrono::microseconds>(now.time_since_epoch()).count();
      for (; uint16_t(sent - router.bandwidth(2)->stats.sent) != 0 && b.add(sent, micros); ++sent) {
      }
      if (const auto n = b.write(feedback))
        router.onSubscriberRtcp(2, std::span<const uint8_t>(feedback.data(), *n), now);
    }
  }
  counting = false;
  EXPECT_EQ(allocations.load(), 0u);
  EXPECT_GT(drained, 500u);
  EXPECT_GT(router.counters().transportFeedbackIn, 0u);
  EXPECT_GT(router.counters().transportFeedbackSent, 0u);
}

}  // namespace
}  // namespace kaiwa::sfu

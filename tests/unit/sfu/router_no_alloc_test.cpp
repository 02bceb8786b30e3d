// Forwarding allocates nothing per packet once publishers, tracks and subscriptions exist: the RTP fan-out with its
// rewrites, queueing and draining, PLI through the throttle, and NACK answered with RTX.
#include <gtest/gtest.h>

#include <array>
#include <vector>

#include "alloc_counter.hpp"
#include "common/bytes.hpp"
#include "rtp/rtcp.hpp"
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

}  // namespace
}  // namespace kaiwa::sfu

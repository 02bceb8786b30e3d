// The per-packet paths of the rtp module allocate nothing: parse and rewrite, the RTCP walk and builders, the NACK
// generator, the retransmission buffer and the keyframe throttle, once constructed.
#include <gtest/gtest.h>

#include <array>

#include "alloc_counter.hpp"
#include "rtp/keyframe_throttle.hpp"
#include "rtp/nack_generator.hpp"
#include "rtp/packet.hpp"
#include "rtp/retransmission_buffer.hpp"
#include "rtp/rtcp.hpp"
#include "vectors.hpp"

namespace kaiwa::rtp {
namespace {

using namespace std::chrono_literals;

TEST(RtpHotPath, AllocatesNothing) {
  auto bytes = test::kChromiumVideo;
  bytes.resize(1200, 0xab);  // a full-size packet: same header, a longer payload
  ExtensionIdMap map;
  map.set(10, 12);
  map.set(12, 10);
  NackGenerator nack;
  RetransmissionBuffer buffer;
  KeyframeRequestThrottle throttle;
  std::array<uint16_t, 64> lost{};
  std::array<uint8_t, 1500> out{};
  TimePoint now{std::chrono::seconds(1)};

  counting = true;
  size_t seen = 0;
  for (uint16_t i = 0; i < 3000; ++i) {
    auto m = MutablePacket::parse(bytes);
    ASSERT_TRUE(m);
    m->setSequenceNumber(i);
    m->setSsrc(0x1234);
    m->remapExtensionIds(map);
    seen += parseRid(*m->view().extension(i % 2 ? 10 : 12)).has_value();
    if (i % 50 != 7) nack.onPacket(i, now, false);  // 2 % loss
    buffer.store(i, m->bytes());
    now += 1ms;
    const size_t n = nack.collect(now, lost);
    if (n > 0) {
      auto len = rtcp::writeNack(out, {1, 0x1234}, std::span<const uint16_t>(lost.data(), n));
      ASSERT_TRUE(len);
      rtcp::CompoundReader r(std::span<const uint8_t>(out.data(), *len));
      while (auto b = r.next()) {
        if (auto parsed = rtcp::Nack::parse(*b)) {
          parsed->forEachSequenceNumber([&](uint16_t seq) { seen += buffer.find(seq).has_value(); });
        }
      }
    }
    (void)throttle.request(now);
    (void)throttle.poll(now);
  }
  counting = false;
  EXPECT_EQ(allocations.load(), 0u);
  EXPECT_GT(seen, 3000u);
  EXPECT_GT(nack.stats().requested, 0u);
}

}  // namespace
}  // namespace kaiwa::rtp

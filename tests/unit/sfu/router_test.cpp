// The SFU's forwarding (src/sfu/router.hpp) on hand-built packets and a fake clock: the rewrites a subscriber sees,
// SSRC learning by MID, keyframe requests through the throttle, a slow subscriber that does not hold back the
// others, NACK answered with the original or RTX, and what is dropped and counted.
#include "sfu/router.hpp"

#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include "common/bytes.hpp"
#include "rtp/rtcp.hpp"

namespace kaiwa::sfu {
namespace {

using namespace std::chrono_literals;

const TimePoint kT0 = TimePoint{} + 100s;
constexpr TransportId kPub = 1, kSubA = 2, kSubB = 3;
constexpr uint32_t kVideoSsrc = 0xa1b2c3d4, kAudioSsrc = 0x11223344;
constexpr uint8_t kMidId = 4;

struct Ext {
  uint8_t id;
  std::string value;
};

// An RTP packet with one-byte header extensions and `payload` bytes of 0xab.
std::vector<uint8_t> rtpPacket(uint8_t pt, uint16_t seq, uint32_t ts, uint32_t ssrc, std::vector<Ext> exts = {},
                               size_t payload = 20) {
  std::vector<uint8_t> p(12);
  p[0] = exts.empty() ? 0x80 : 0x90;
  p[1] = pt;
  common::put16(&p[2], seq);
  common::put32(&p[4], ts);
  common::put32(&p[8], ssrc);
  if (!exts.empty()) {
    std::vector<uint8_t> block;
    for (const Ext& e : exts) {
      block.push_back(uint8_t(e.id << 4 | (e.value.size() - 1)));
      block.insert(block.end(), e.value.begin(), e.value.end());
    }
    while (block.size() % 4 != 0) block.push_back(0);
    p.push_back(0xBE);
    p.push_back(0xDE);
    p.push_back(uint8_t(block.size() / 4 >> 8));
    p.push_back(uint8_t(block.size() / 4));
    p.insert(p.end(), block.begin(), block.end());
  }
  p.insert(p.end(), payload, 0xab);
  return p;
}

struct Io : RouterIo {
  std::vector<TransportId> ready;
  std::vector<std::pair<TransportId, std::vector<uint8_t>>> rtcp;
  void onReady(TransportId s) override { ready.push_back(s); }
  void sendRtcp(TransportId to, std::span<const uint8_t> p) override {
    rtcp.emplace_back(to, std::vector(p.begin(), p.end()));
  }
  // The media SSRCs of the PLIs sent.
  std::vector<uint32_t> plis() const {
    std::vector<uint32_t> out;
    for (const auto& [to, bytes] : rtcp) {
      rtp::rtcp::CompoundReader reader(bytes);
      while (auto b = reader.next()) {
        if (auto pli = rtp::rtcp::Pli::parse(*b)) out.push_back(pli->header.mediaSsrc);
      }
    }
    return out;
  }
};

std::vector<std::vector<uint8_t>> drain(Router& r, TransportId sub) {
  std::vector<std::vector<uint8_t>> out;
  r.drain(sub, [&](std::span<uint8_t> slot, size_t n) {
    EXPECT_EQ(reinterpret_cast<uintptr_t>(slot.data()) % 16, 0u);
    EXPECT_GE(slot.size(), n + 144);
    out.emplace_back(slot.begin(), slot.begin() + ptrdiff_t(n));
  });
  return out;
}

rtp::Packet view(const std::vector<uint8_t>& bytes) {
  auto p = rtp::Packet::parse(bytes);
  EXPECT_TRUE(p);
  return *p;
}

SubscriptionConfig videoSub(uint32_t ssrc, uint16_t seq0 = 1000, uint32_t ts0 = 5000) {
  SubscriptionConfig c;
  c.ssrc = ssrc;
  c.payloadTypes.set(96, 100);
  c.extensions.set(kMidId, 5);
  c.initialSequence = seq0;
  c.initialTimestamp = ts0;
  return c;
}

struct Room {
  Io io;
  Router router{io};
  TrackId video = 0;
  TrackId audio = 0;
  explicit Room(SubscriberConfig subConfig = {}) {
    router.addPublisher(kPub, {.midExtensionId = kMidId, .ridExtensionId = 10, .feedbackSsrc = 1});
    video = *router.addTrack(kPub, {.kind = MediaKind::kVideo, .mid = "1", .ssrc = kVideoSsrc, .rtxSsrc = 0x0badf00d});
    audio = *router.addTrack(kPub, {.kind = MediaKind::kAudio, .mid = "0", .ssrc = kAudioSsrc, .clockRate = 48000});
    router.addSubscriber(kSubA, subConfig);
    router.addSubscriber(kSubB, subConfig);
  }
};

TEST(Router, RewritesSsrcSequenceTimestampPayloadTypeAndExtensionIds) {
  Room room;
  ASSERT_TRUE(room.router.subscribe(kSubA, room.video, videoSub(0x5000), kT0));
  // Across the publisher's sequence number wrap.
  const uint16_t seqs[] = {65534, 65535, 0};
  for (int i = 0; i < 3; ++i) {
    const auto in = rtpPacket(96, seqs[i], 3000 + 3000 * uint32_t(i), kVideoSsrc, {{kMidId, "1"}});
    room.router.onPublisherRtp(kPub, in, kT0);
  }
  const auto out = drain(room.router, kSubA);
  ASSERT_EQ(out.size(), 3u);
  for (int i = 0; i < 3; ++i) {
    const auto p = view(out[i]);
    EXPECT_EQ(p.ssrc(), 0x5000u);
    EXPECT_EQ(p.sequenceNumber(), 1000 + i);
    EXPECT_EQ(p.timestamp(), 5000u + 3000u * uint32_t(i));
    EXPECT_EQ(p.payloadType(), 100);
    EXPECT_FALSE(p.extension(kMidId));
    ASSERT_TRUE(p.extension(5));
    EXPECT_EQ(rtp::parseMid(*p.extension(5)), "1");
    EXPECT_EQ(p.payload().size(), 20u);
  }
  EXPECT_EQ(room.router.counters().forwarded, 3u);
  EXPECT_EQ(room.io.ready, std::vector<TransportId>{kSubA});  // once: the queue was empty only before the first
}

TEST(Router, EachSubscriberHasItsOwnSsrcAndNumbering) {
  Room room;
  ASSERT_TRUE(room.router.subscribe(kSubA, room.video, videoSub(0x5000, 10, 0), kT0));
  ASSERT_TRUE(room.router.subscribe(kSubB, room.video, videoSub(0x6000, 40000, 77), kT0));
  room.router.onPublisherRtp(kPub, rtpPacket(96, 500, 9000, kVideoSsrc), kT0);
  room.router.onPublisherRtp(kPub, rtpPacket(96, 501, 12000, kVideoSsrc), kT0);
  const auto a = drain(room.router, kSubA);
  const auto b = drain(room.router, kSubB);
  ASSERT_EQ(a.size(), 2u);
  ASSERT_EQ(b.size(), 2u);
  EXPECT_EQ(view(a[1]).ssrc(), 0x5000u);
  EXPECT_EQ(view(a[1]).sequenceNumber(), 11);
  EXPECT_EQ(view(a[1]).timestamp(), 3000u);
  EXPECT_EQ(view(b[1]).ssrc(), 0x6000u);
  EXPECT_EQ(view(b[1]).sequenceNumber(), 40001);
  EXPECT_EQ(view(b[1]).timestamp(), 3077u);
}

TEST(Router, AudioAndVideoGoToTheirSubscriptionsOnly) {
  Room room;
  SubscriptionConfig audio;
  audio.ssrc = 0x7000;
  audio.payloadTypes.set(111, 109);
  ASSERT_TRUE(room.router.subscribe(kSubA, room.audio, audio, kT0));
  room.router.onPublisherRtp(kPub, rtpPacket(96, 1, 1, kVideoSsrc), kT0);
  room.router.onPublisherRtp(kPub, rtpPacket(111, 1, 960, kAudioSsrc), kT0);
  const auto a = drain(room.router, kSubA);
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(view(a[0]).ssrc(), 0x7000u);
  EXPECT_EQ(view(a[0]).payloadType(), 109);
  EXPECT_TRUE(room.io.plis().empty());  // no keyframe for audio
}

TEST(Router, DropsAndCountsWhatItCannotForward) {
  Room room;
  ASSERT_TRUE(room.router.subscribe(kSubA, room.video, videoSub(0x5000), kT0));
  room.router.onPublisherRtp(kPub, rtpPacket(98, 1, 1, kVideoSsrc), kT0);  // a type A did not negotiate
  room.router.onPublisherRtp(kPub, rtpPacket(96, 1, 1, 0xdead), kT0);      // nobody's SSRC
  room.router.onPublisherRtp(kPub, rtpPacket(97, 1, 1, 0x0badf00d), kT0);  // the publisher's RTX
  const std::vector<uint8_t> garbage{0x80, 0x60, 0x00};
  room.router.onPublisherRtp(kPub, garbage, kT0);
  room.router.onPublisherRtp(99, rtpPacket(96, 1, 1, kVideoSsrc), kT0);  // not a publisher
  EXPECT_EQ(room.router.queued(kSubA), 0u);
  const auto& c = room.router.counters();
  EXPECT_EQ(c.unmappedPayloadType, 1u);
  EXPECT_EQ(c.unknownSsrc, 1u);
  EXPECT_EQ(c.publisherRtx, 1u);
  EXPECT_EQ(c.badRtp, 2u);
  EXPECT_EQ(c.forwarded, 0u);
  EXPECT_EQ(c.rtpIn, 5u);
}

TEST(Router, LearnsAnSsrcFromTheMidOfAMediaPayloadType) {
  Io io;
  Router router(io);
  router.addPublisher(kPub, {.midExtensionId = kMidId});
  TrackConfig config{.kind = MediaKind::kVideo, .mid = "1"};
  config.payloadTypes.set(96);
  const TrackId video = *router.addTrack(kPub, config);
  router.addSubscriber(kSubA);
  ASSERT_TRUE(router.subscribe(kSubA, video, videoSub(0x5000), kT0));
  EXPECT_TRUE(io.plis().empty());  // nothing to ask before the SSRC is known
  // The RTX stream carries the same MID; its payload type is not the track's.
  router.onPublisherRtp(kPub, rtpPacket(97, 1, 1, 0x0badf00d, {{kMidId, "1"}}), kT0);
  router.onPublisherRtp(kPub, rtpPacket(96, 7, 1, 0x1234, {{kMidId, "2"}}), kT0);  // another mid
  EXPECT_EQ(router.counters().unknownSsrc, 2u);
  router.onPublisherRtp(kPub, rtpPacket(96, 8, 1, 0x4321, {{kMidId, "1"}}), kT0);
  router.onPublisherRtp(kPub, rtpPacket(96, 9, 1, 0x4321), kT0);  // later packets need no MID
  EXPECT_EQ(drain(router, kSubA).size(), 2u);
  // A keyframe request now names the learned SSRC.
  router.onSubscriberRtcp(
      kSubA,
      [] {
        std::vector<uint8_t> b(12);
        b.resize(*rtp::rtcp::writePli(b, {9, 0x5000}));
        return b;
      }(),
      kT0 + 1s);
  EXPECT_EQ(io.plis(), std::vector<uint32_t>{0x4321});
}

std::vector<uint8_t> pli(uint32_t mediaSsrc) {
  std::vector<uint8_t> b(12);
  b.resize(*rtp::rtcp::writePli(b, {9, mediaSsrc}));
  return b;
}

TEST(Router, ANewSubscriberAsksThePublisherForAKeyframeThroughTheThrottle) {
  Room room;
  ASSERT_TRUE(room.router.subscribe(kSubA, room.video, videoSub(0x5000), kT0));
  ASSERT_EQ(room.io.plis(), std::vector<uint32_t>{kVideoSsrc});
  EXPECT_EQ(room.io.rtcp[0].first, kPub);
  // A second subscriber 30 ms later: held back only until 100 ms after the first request, not the whole 500 ms.
  ASSERT_TRUE(room.router.subscribe(kSubB, room.video, videoSub(0x6000), kT0 + 30ms));
  EXPECT_EQ(room.io.plis().size(), 1u);
  EXPECT_EQ(room.router.nextDeadline(), kT0 + 100ms);
  room.router.tick(kT0 + 99ms);
  EXPECT_EQ(room.io.plis().size(), 1u);
  room.router.tick(kT0 + 100ms);
  EXPECT_EQ(room.io.plis().size(), 2u);
  EXPECT_EQ(room.router.nextDeadline(), TimePoint::max());
  EXPECT_EQ(room.router.counters().keyframeRequestsSent, 2u);
}

// A subscriber's PLI just went out (its 500 ms window runs); a new subscription 100 ms later does not wait for the
// window to end: its request goes at once (the first frame then comes within a round trip and an encode).
TEST(Router, ANewSubscriberDoesNotWaitBehindAnotherSubscribersRequest) {
  Room room;
  ASSERT_TRUE(room.router.subscribe(kSubA, room.video, videoSub(0x5000), kT0));
  room.io.rtcp.clear();
  const TimePoint t = kT0 + 10s;
  room.router.onSubscriberRtcp(kSubA, pli(0x5000), t);
  ASSERT_EQ(room.io.plis().size(), 1u);
  room.router.onSubscriberRtcp(kSubA, pli(0x5000), t + 50ms);  // A again: held for the whole window
  EXPECT_EQ(room.router.nextDeadline(), t + 500ms);
  ASSERT_TRUE(room.router.subscribe(kSubB, room.video, videoSub(0x6000), t + 100ms));
  EXPECT_EQ(room.io.plis().size(), 2u);
  // The keyframe it asks for serves A's held request too.
  EXPECT_EQ(room.router.nextDeadline(), TimePoint::max());
}

TEST(Router, PliAndFirFromSubscribersAreThrottledToTheirTrack) {
  Room room;
  ASSERT_TRUE(room.router.subscribe(kSubA, room.video, videoSub(0x5000), kT0));
  ASSERT_TRUE(room.router.subscribe(kSubB, room.video, videoSub(0x6000), kT0));
  room.io.rtcp.clear();
  const TimePoint t = kT0 + 10s;
  room.router.onSubscriberRtcp(kSubA, pli(0x5000), t);
  EXPECT_EQ(room.io.plis(), std::vector<uint32_t>{kVideoSsrc});
  // B's FIR 200 ms later waits for the window; A naming B's SSRC is not A's track.
  std::vector<uint8_t> fir(20);
  const rtp::rtcp::Fir::Entry entry{0x6000, 1};
  fir.resize(*rtp::rtcp::writeFir(fir, 9, std::span(&entry, 1)));
  room.router.onSubscriberRtcp(kSubB, fir, t + 200ms);
  room.router.onSubscriberRtcp(kSubA, pli(0x6000), t + 200ms);
  EXPECT_EQ(room.router.counters().unknownFeedbackSsrc, 1u);
  EXPECT_EQ(room.io.plis().size(), 1u);
  room.router.tick(t + 500ms);
  EXPECT_EQ(room.io.plis().size(), 2u);
  // One at the first subscribe (the second one's, held back, is answered by the next one sent), two here.
  EXPECT_EQ(room.router.keyframeStats(room.video)->sent, 3u);
  const std::vector<uint8_t> garbage{0x81, 0xce, 0x00, 0x09};
  room.router.onSubscriberRtcp(kSubA, garbage, t + 1s);
  EXPECT_EQ(room.router.counters().badRtcp, 1u);
}

TEST(Router, ASlowSubscriberDoesNotHoldBackTheOthers) {
  Room room(SubscriberConfig{.queuePackets = 8});
  ASSERT_TRUE(room.router.subscribe(kSubA, room.video, videoSub(0x5000, 0), kT0));
  ASSERT_TRUE(room.router.subscribe(kSubB, room.video, videoSub(0x6000, 0), kT0 + 200ms));
  ASSERT_EQ(room.router.keyframeStats(room.video)->sent, 2u);
  // A is never drained; B is drained after every packet, like a socket that keeps up.
  std::vector<uint16_t> bSeqs;
  for (uint16_t i = 0; i < 100; ++i) {
    room.router.onPublisherRtp(kPub, rtpPacket(96, uint16_t(i + 20), i * 3000u, kVideoSsrc), kT0 + 1s + i * 10ms);
    for (const auto& p : drain(room.router, kSubB)) bSeqs.push_back(view(p).sequenceNumber());
    room.router.tick(kT0 + 1s + i * 10ms);
  }
  ASSERT_EQ(bSeqs.size(), 100u);
  for (uint16_t i = 0; i < 100; ++i) EXPECT_EQ(bSeqs[i], i);
  EXPECT_EQ(room.router.queued(kSubA), 8u);
  EXPECT_EQ(room.router.counters().queueFull, 92u);
  EXPECT_EQ(room.router.counters().forwarded, 108u);
  // No keyframe while A's queue is stuck: it would be dropped like the rest.
  EXPECT_EQ(room.router.keyframeStats(room.video)->sent, 2u);
  // When A catches up it gets the oldest 8, then the next packet with its true number: the gap is a real loss.
  const auto a = drain(room.router, kSubA);
  ASSERT_EQ(a.size(), 8u);
  EXPECT_EQ(view(a[7]).sequenceNumber(), 7);
  room.router.onPublisherRtp(kPub, rtpPacket(96, 120, 300000, kVideoSsrc), kT0 + 2s);
  EXPECT_EQ(view(drain(room.router, kSubA).at(0)).sequenceNumber(), 100);
}

SubscriptionConfig audioSub(uint32_t ssrc) {
  SubscriptionConfig c;
  c.ssrc = ssrc;
  c.payloadTypes.set(111, 111);
  return c;
}

// A subscriber's queue is full of video when audio comes: its newest video packets give their places up, the audio
// is queued, the order of what stays is kept, and another subscriber gets everything.
TEST(Router, AudioIsKeptWhileVideoIsDropped) {
  Room room(SubscriberConfig{.queuePackets = 8});
  for (TransportId s : {kSubA, kSubB}) {
    ASSERT_TRUE(room.router.subscribe(s, room.video, videoSub(0x5000 + s, 0), kT0));
    ASSERT_TRUE(room.router.subscribe(s, room.audio, audioSub(0x7000 + s), kT0));
  }
  const TimePoint t = kT0 + 1s;
  size_t bVideo = 0, bAudio = 0;
  auto drainB = [&] {
    for (const auto& p : drain(room.router, kSubB)) ++(view(p).payloadType() == 111 ? bAudio : bVideo);
  };
  for (uint16_t i = 0; i < 12; ++i) {
    room.router.onPublisherRtp(kPub, rtpPacket(96, uint16_t(100 + i), i * 3000u, kVideoSsrc), t);
    drainB();
  }
  for (uint16_t i = 0; i < 5; ++i) {
    room.router.onPublisherRtp(kPub, rtpPacket(111, uint16_t(500 + i), i * 960u, kAudioSsrc), t);
    drainB();
  }
  EXPECT_EQ(bVideo, 12u);
  EXPECT_EQ(bAudio, 5u);
  // A: 8 video queued, 4 more dropped, then each audio packet took the newest video packet's place.
  EXPECT_EQ(room.router.counters().queueFull, 4u + 5u);
  EXPECT_EQ(room.router.counters().audioDropped, 0u);
  const auto a = drain(room.router, kSubA);
  ASSERT_EQ(a.size(), 8u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(view(a[i]).payloadType(), 100);
    EXPECT_EQ(view(a[i]).sequenceNumber(), i);
  }
  for (size_t i = 3; i < 8; ++i) {
    EXPECT_EQ(view(a[i]).payloadType(), 111);
    EXPECT_EQ(view(a[i]).sequenceNumber(), uint16_t(view(a[3]).sequenceNumber() + (i - 3)));
  }
  // A queue of nothing but audio has no video to give up: then audio is dropped, and counted apart (one for A, one
  // for B, neither drained now).
  for (uint16_t i = 0; i < 9; ++i) {
    room.router.onPublisherRtp(kPub, rtpPacket(111, uint16_t(600 + i), i * 960u, kAudioSsrc), t + 100ms);
  }
  EXPECT_EQ(room.router.queued(kSubA), 8u);
  EXPECT_EQ(room.router.counters().audioDropped, 2u);
}

// The subscription that lost video asks for a keyframe once its queue drained (at the next tick, throttled), not
// while it is stuck; a subscriber that lost nothing asks for none.
TEST(Router, AKeyframeIsAskedForAfterTheDropOnceTheQueueDrained) {
  Room room(SubscriberConfig{.queuePackets = 4});
  ASSERT_TRUE(room.router.subscribe(kSubA, room.video, videoSub(0x5000, 0), kT0));
  ASSERT_TRUE(room.router.subscribe(kSubB, room.video, videoSub(0x6000, 0), kT0 + 200ms));
  room.io.rtcp.clear();
  const TimePoint t = kT0 + 5s;
  for (uint16_t i = 0; i < 6; ++i) {
    room.router.onPublisherRtp(kPub, rtpPacket(96, uint16_t(100 + i), i * 3000u, kVideoSsrc), t);
    drain(room.router, kSubB);
  }
  EXPECT_EQ(room.router.counters().queueFull, 2u);
  room.router.tick(t + 20ms);
  EXPECT_TRUE(room.io.plis().empty());
  EXPECT_GT(room.router.nextDeadline(), t + 20ms);
  EXPECT_EQ(drain(room.router, kSubA).size(), 4u);
  EXPECT_LE(room.router.nextDeadline(), t + 20ms);  // due now
  room.router.tick(t + 40ms);
  EXPECT_EQ(room.io.plis(), std::vector<uint32_t>{kVideoSsrc});
  room.router.tick(t + 60ms);
  EXPECT_EQ(room.io.plis().size(), 1u);
  EXPECT_EQ(room.router.keyframeStats(room.video)->sent, 3u);
}

// The worker's pool is shared: video leaves its last sixteenth to audio, so one subscriber's video burst neither
// starves another's audio nor takes what it has queued.
TEST(Router, ThePoolKeepsRoomForAudio) {
  Io io;
  SendPool pool(32);
  Router router(io, pool);
  router.addPublisher(kPub, {.midExtensionId = kMidId});
  const TrackId video = *router.addTrack(kPub, {.kind = MediaKind::kVideo, .mid = "1", .ssrc = kVideoSsrc});
  const TrackId audio =
      *router.addTrack(kPub, {.kind = MediaKind::kAudio, .mid = "0", .ssrc = kAudioSsrc, .clockRate = 48000});
  router.addSubscriber(kSubA, {.queuePackets = 64});
  router.addSubscriber(kSubB, {.queuePackets = 64});
  ASSERT_TRUE(router.subscribe(kSubA, video, videoSub(0x5000, 0), kT0));
  ASSERT_TRUE(router.subscribe(kSubB, audio, audioSub(0x7000), kT0));
  for (uint16_t i = 0; i < 40; ++i) router.onPublisherRtp(kPub, rtpPacket(96, i, 0, kVideoSsrc), kT0);
  EXPECT_EQ(router.queued(kSubA), 30u);  // 32 less the 2 kept for audio
  EXPECT_EQ(router.counters().queueFull, 10u);
  for (uint16_t i = 0; i < 4; ++i) router.onPublisherRtp(kPub, rtpPacket(111, i, 0, kAudioSsrc), kT0);
  EXPECT_EQ(router.queued(kSubB), 2u);  // two from the reserve, then none: B has no video to give up
  EXPECT_EQ(router.counters().audioDropped, 2u);
  EXPECT_EQ(router.queued(kSubA), 30u);  // A's video is not taken for B
  EXPECT_EQ(pool.available(), 0u);
  EXPECT_EQ(drain(router, kSubA).size(), 30u);
  EXPECT_EQ(pool.available(), 30u);
  router.removeTransport(kSubB);  // a subscriber that goes gives its buffers back
  EXPECT_EQ(pool.available(), 32u);
  EXPECT_EQ(pool.peak(), 32u);
}

std::vector<uint8_t> nack(uint32_t mediaSsrc, std::vector<uint16_t> seqs) {
  std::vector<uint8_t> b(64);
  b.resize(*rtp::rtcp::writeNack(b, {9, mediaSsrc}, seqs));
  return b;
}

TEST(Router, NackIsAnsweredWithTheOriginalWithoutRtx) {
  Room room;
  ASSERT_TRUE(room.router.subscribe(kSubA, room.video, videoSub(0x5000, 200, 0), kT0));
  for (uint16_t i = 0; i < 5; ++i) room.router.onPublisherRtp(kPub, rtpPacket(96, 60000 + i, 90u * i, kVideoSsrc), kT0);
  drain(room.router, kSubA);
  room.router.onSubscriberRtcp(kSubA, nack(0x5000, {202, 204, 900}), kT0 + 50ms);
  const auto out = drain(room.router, kSubA);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(view(out[0]).sequenceNumber(), 202);
  EXPECT_EQ(view(out[0]).timestamp(), 180u);
  EXPECT_EQ(view(out[0]).ssrc(), 0x5000u);
  EXPECT_EQ(view(out[0]).payloadType(), 100);
  EXPECT_EQ(view(out[1]).sequenceNumber(), 204);
  EXPECT_EQ(room.router.counters().nackRetransmitted, 2u);
  EXPECT_EQ(room.router.counters().nackMissed, 1u);
}

TEST(Router, NackIsAnsweredWithRtxWhenNegotiated) {
  Room room;
  auto config = videoSub(0x5000, 200, 0);
  config.rtxSsrc = 0x5001;
  config.rtxPayloadType = 101;
  config.initialSequence = 200;
  ASSERT_TRUE(room.router.subscribe(kSubA, room.video, config, kT0));
  for (uint16_t i = 0; i < 3; ++i) room.router.onPublisherRtp(kPub, rtpPacket(96, 7 + i, 90u * i, kVideoSsrc), kT0);
  drain(room.router, kSubA);
  room.router.onSubscriberRtcp(kSubA, nack(0x5000, {201}), kT0 + 50ms);
  const auto out = drain(room.router, kSubA);
  ASSERT_EQ(out.size(), 1u);
  const auto p = view(out[0]);
  EXPECT_EQ(p.ssrc(), 0x5001u);
  EXPECT_EQ(p.payloadType(), 101);
  EXPECT_EQ(p.sequenceNumber(), 200);  // the RTX stream's own numbering
  const auto rtx = rtp::parseRtx(p);
  ASSERT_TRUE(rtx);
  EXPECT_EQ(rtx->originalSequence, 201);
  EXPECT_EQ(rtx->payload.size(), 20u);
}

TEST(Router, SwitchingToANewPublisherKeepsTheSubscribersNumberingContinuous) {
  Room room;
  ASSERT_TRUE(room.router.subscribe(kSubA, room.video, videoSub(0x5000, 100, 1000), kT0));
  room.router.onPublisherRtp(kPub, rtpPacket(96, 10, 50000, kVideoSsrc), kT0);
  room.router.onPublisherRtp(kPub, rtpPacket(96, 11, 53000, kVideoSsrc), kT0 + 33ms);
  constexpr TransportId kPub2 = 9;
  room.router.addPublisher(kPub2, {});
  const TrackId video2 = *room.router.addTrack(kPub2, {.kind = MediaKind::kVideo, .mid = "0", .ssrc = 0x77});
  EXPECT_FALSE(room.router.switchTrack(kSubA, room.video, room.audio, kT0));  // not the same kind
  room.io.rtcp.clear();
  ASSERT_TRUE(room.router.switchTrack(kSubA, room.video, video2, kT0 + 1s));
  EXPECT_EQ(room.io.plis(), std::vector<uint32_t>{0x77});
  room.router.removeTransport(kPub);
  room.router.onPublisherRtp(kPub2, rtpPacket(96, 40000, 7, 0x77), kT0 + 1033ms);
  room.router.onPublisherRtp(kPub2, rtpPacket(96, 40001, 3007, 0x77), kT0 + 1066ms);
  const auto out = drain(room.router, kSubA);
  ASSERT_EQ(out.size(), 4u);
  EXPECT_EQ(view(out[2]).ssrc(), 0x5000u);
  EXPECT_EQ(view(out[2]).sequenceNumber(), 102);
  EXPECT_EQ(view(out[3]).sequenceNumber(), 103);
  // 1000 ms after the last packet at 90 kHz.
  EXPECT_EQ(view(out[2]).timestamp(), 1000u + 3000u + 90000u);
  EXPECT_EQ(view(out[3]).timestamp(), 1000u + 3000u + 93000u);
  // And its feedback now reaches the new publisher.
  room.router.onSubscriberRtcp(kSubA, pli(0x5000), kT0 + 5s);
  EXPECT_EQ(room.io.plis().back(), 0x77u);
}

TEST(Router, RemovingTransportsEndsTheirSubscriptions) {
  Room room;
  ASSERT_TRUE(room.router.subscribe(kSubA, room.video, videoSub(0x5000), kT0));
  EXPECT_FALSE(room.router.subscribe(kSubA, room.video, videoSub(0x5002), kT0));  // already subscribed
  EXPECT_FALSE(room.router.subscribe(kSubA, room.audio, videoSub(0x5000), kT0));  // SSRC taken
  ASSERT_TRUE(room.router.subscribe(kSubB, room.video, videoSub(0x6000), kT0));
  room.router.removeTransport(kSubA);
  room.router.onPublisherRtp(kPub, rtpPacket(96, 1, 1, kVideoSsrc), kT0);
  EXPECT_EQ(room.router.counters().forwarded, 1u);
  EXPECT_EQ(drain(room.router, kSubA).size(), 0u);
  room.router.removeTransport(kPub);
  room.router.onPublisherRtp(kPub, rtpPacket(96, 2, 1, kVideoSsrc), kT0);
  EXPECT_EQ(room.router.counters().badRtp, 1u);  // no longer a publisher
  EXPECT_FALSE(room.router.keyframeStats(room.video));
}

}  // namespace
}  // namespace kaiwa::sfu

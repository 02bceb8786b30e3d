// The router feeding the room's active speaker detector (src/sfu/router.hpp, "Active speaker") on hand-built packets
// and a fake clock: RFC 6464 audio levels read in both header extension forms (RFC 8285), malformed elements ignored
// and counted, tracks that are no speakers, and speakers leaving with their tracks.
#include <gtest/gtest.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/bytes.hpp"
#include "sfu/router.hpp"

namespace kaiwa::sfu {
namespace {

using namespace std::chrono_literals;

const TimePoint kT0 = TimePoint{} + 100s;
constexpr TransportId kAlice = 1, kBob = 2;
constexpr uint32_t kAliceSsrc = 0x11111111, kBobSsrc = 0x22222222;
constexpr uint8_t kLevelId = 1, kOpus = 111;

enum class Form { kOneByte, kTwoByte };

// An audio packet whose extension block holds one element: `id` with `value`, in the given form. A one-byte element
// of 0 bytes cannot be written (its length field counts from 1), so such a value makes a two-byte element.
std::vector<uint8_t> audioPacket(uint32_t ssrc, uint16_t seq, Form form, uint8_t id, std::vector<uint8_t> value) {
  std::vector<uint8_t> p(12);
  p[0] = 0x90;
  p[1] = kOpus;
  common::put16(&p[2], seq);
  common::put32(&p[4], uint32_t(seq) * 960);
  common::put32(&p[8], ssrc);
  std::vector<uint8_t> block;
  if (form == Form::kOneByte) {
    block.push_back(uint8_t(id << 4 | (value.size() - 1)));
  } else {
    block.push_back(id);
    block.push_back(uint8_t(value.size()));
  }
  block.insert(block.end(), value.begin(), value.end());
  while (block.size() % 4 != 0) block.push_back(0);
  const uint16_t profile = form == Form::kOneByte ? 0xBEDE : 0x1000;
  p.push_back(uint8_t(profile >> 8));
  p.push_back(uint8_t(profile));
  p.push_back(0);
  p.push_back(uint8_t(block.size() / 4));
  p.insert(p.end(), block.begin(), block.end());
  p.insert(p.end(), 40, 0xab);
  return p;
}

// The level byte of RFC 6464: V in the top bit, the level in -dBov below.
uint8_t levelByte(bool voice, uint8_t level) { return uint8_t((voice ? 0x80 : 0) | level); }

struct NoIo : RouterIo {
  void onReady(TransportId) override {}
  void sendRtcp(TransportId, std::span<const uint8_t>) override {}
};

class RouterSpeakerTest : public ::testing::Test {
 protected:
  void publish(TransportId who, uint32_t ssrc, uint8_t levelId) {
    router.addPublisher(who, {});
    TrackConfig t;
    t.kind = MediaKind::kAudio;
    t.ssrc = ssrc;
    t.clockRate = 48000;
    t.audioLevelExtensionId = levelId;
    tracks[who] = *router.addTrack(who, t);
  }

  // `ms` of 20 ms packets from each publisher (each with its own level byte and form), the detector ticked every
  // 100 ms as the service's timer does; the changes it reported, in order.
  std::vector<TransportId> run(std::chrono::milliseconds ms, std::optional<uint8_t> alice, std::optional<uint8_t> bob,
                               Form aliceForm = Form::kOneByte, Form bobForm = Form::kTwoByte) {
    std::vector<TransportId> changes;
    for (auto end = now + ms; now < end;) {
      now += 20ms;
      ++seq;
      if (alice) router.onPublisherRtp(kAlice, audioPacket(kAliceSsrc, seq, aliceForm, kLevelId, {*alice}), now);
      if (bob) router.onPublisherRtp(kBob, audioPacket(kBobSsrc, seq, bobForm, kLevelId, {*bob}), now);
      if ((now - kT0) % 100ms == 0ms) {
        if (auto c = router.tickSpeakers(now)) changes.push_back(*c);
      }
    }
    return changes;
  }

  NoIo io;
  Router router{io};
  std::map<TransportId, TrackId> tracks;
  TimePoint now = kT0;
  uint16_t seq = 0;
};

const uint8_t kTalking = levelByte(true, 25);  // loud, and the sender's VAD says voice
const uint8_t kSilent = levelByte(false, 127);

TEST_F(RouterSpeakerTest, LevelsInEitherFormPickTheSpeakerAndHandOver) {
  publish(kAlice, kAliceSsrc, kLevelId);
  publish(kBob, kBobSsrc, kLevelId);
  EXPECT_EQ(router.speakers().size(), 2u);
  // Alice (one-byte form) talks, Bob (two-byte form) is silent: the first talker of a silent room is taken at once.
  EXPECT_EQ(run(1s, kTalking, kSilent), (std::vector<TransportId>{kAlice}));
  EXPECT_EQ(router.activeSpeaker(), kAlice);
  EXPECT_EQ(router.counters().audioLevels, 100u);
  EXPECT_EQ(router.counters().badAudioLevel, 0u);
  // Alice stops and Bob talks: he takes over after the hold, once, and stays while both are silent.
  EXPECT_EQ(run(3s, kSilent, kTalking), (std::vector<TransportId>{kBob}));
  EXPECT_TRUE(run(3s, kSilent, kSilent).empty());
  EXPECT_EQ(router.activeSpeaker(), kBob);
  // The forms swapped change nothing: Alice in two-byte form takes the room back.
  EXPECT_EQ(run(3s, kTalking, kSilent, Form::kTwoByte, Form::kOneByte), (std::vector<TransportId>{kAlice}));
  EXPECT_EQ(router.counters().badAudioLevel, 0u);
}

TEST_F(RouterSpeakerTest, MalformedLevelsAreCountedAndIgnoredAndThePacketsStillGoOn) {
  publish(kAlice, kAliceSsrc, kLevelId);
  publish(kBob, kBobSsrc, kLevelId);
  uint16_t s = 0;
  for (int i = 0; i < 50; ++i) {
    now += 20ms;
    // A level of two bytes in each form, and an empty two-byte element: none is RFC 6464's one byte.
    router.onPublisherRtp(kAlice, audioPacket(kAliceSsrc, ++s, Form::kOneByte, kLevelId, {kTalking, 0}), now);
    router.onPublisherRtp(kAlice, audioPacket(kAliceSsrc, ++s, Form::kTwoByte, kLevelId, {kTalking, 0}), now);
    router.onPublisherRtp(kAlice, audioPacket(kAliceSsrc, ++s, Form::kTwoByte, kLevelId, {}), now);
    // Another extension only (id 2): no level, nothing wrong.
    router.onPublisherRtp(kBob, audioPacket(kBobSsrc, s, Form::kOneByte, 2, {kTalking}), now);
    if ((now - kT0) % 100ms == 0ms) {
      EXPECT_FALSE(router.tickSpeakers(now));
    }
  }
  EXPECT_EQ(router.counters().badAudioLevel, 150u);
  EXPECT_EQ(router.counters().audioLevels, 0u);
  EXPECT_EQ(router.counters().rtpIn, 200u);
  EXPECT_EQ(router.counters().badRtp, 0u);
  EXPECT_FALSE(router.activeSpeaker());
}

TEST_F(RouterSpeakerTest, OnlyAudioTracksWithTheExtensionAreSpeakers) {
  publish(kAlice, kAliceSsrc, 0);  // no audio level negotiated (or a shared tab's sound: the service passes 0)
  router.addPublisher(kBob, {});
  TrackConfig video;
  video.kind = MediaKind::kVideo;
  video.ssrc = kBobSsrc;
  video.audioLevelExtensionId = kLevelId;  // ignored on video
  ASSERT_TRUE(router.addTrack(kBob, video));
  EXPECT_EQ(router.speakers().size(), 0u);
  EXPECT_TRUE(run(1s, kTalking, kTalking).empty());
  EXPECT_EQ(router.counters().audioLevels, 0u);
}

TEST_F(RouterSpeakerTest, ASpeakerGoesWithItsTrackOrItsTransport) {
  publish(kAlice, kAliceSsrc, kLevelId);
  publish(kBob, kBobSsrc, kLevelId);
  ASSERT_EQ(run(1s, kTalking, kSilent), (std::vector<TransportId>{kAlice}));
  router.removeTrack(tracks[kAlice]);
  EXPECT_EQ(router.speakers().size(), 1u);
  EXPECT_FALSE(router.activeSpeaker());
  // Bob talks in a room without a dominant speaker: taken at once.
  EXPECT_EQ(run(1s, std::nullopt, kTalking), (std::vector<TransportId>{kBob}));
  router.removeTransport(kBob);
  EXPECT_EQ(router.speakers().size(), 0u);
  EXPECT_FALSE(router.activeSpeaker());
}

}  // namespace
}  // namespace kaiwa::sfu

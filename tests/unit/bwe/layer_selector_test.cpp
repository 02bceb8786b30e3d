// The layer selector with a fake clock: allocation by estimate, tile size and priority (audio first, hidden tiles
// get nothing), hysteresis against a noisy estimate, keyframe gating of spatial switches and temporal switching.
#include "bwe/layer_selector.hpp"

#include <gtest/gtest.h>

#include <random>

namespace kaiwa::bwe {
namespace {

// Three simulcast layers as the SDK sends camera video (quarter, half, full of 1280x720), three temporal layers
// each (VP8: the base layer about 40 % of the bitrate, two layers 60 %).
VideoTrackInfo camera(uint32_t id, uint16_t renderedHeight = 720, TrackPriority p = TrackPriority::kNormal) {
  VideoTrackInfo i;
  i.id = id;
  i.priority = p;
  i.spatialLayers = 3;
  i.temporalLayers = 3;
  const std::array<uint32_t, 3> full{150'000, 500'000, 1'500'000};
  for (size_t s = 0; s < 3; ++s) i.bitrate[s] = {full[s] * 4 / 10, full[s] * 6 / 10, full[s]};
  i.height = {180, 360, 720};
  i.renderedWidth = uint16_t(renderedHeight * 16 / 9);
  i.renderedHeight = renderedHeight;
  return i;
}

constexpr Layer L(uint8_t s, uint8_t t) { return Layer{s, t}; }

struct Clock {
  TimePoint now{};
  void advance(Millis d) { now += d; }
};

TEST(LayerSelector, AllocatesByEstimateAndTileSize) {
  LayerSelector sel;
  ASSERT_TRUE(sel.addTrack(camera(1, 720)));
  ASSERT_TRUE(sel.addTrack(camera(2, 300)));  // a small tile: the 360p layer covers it
  sel.update(TimePoint{}, 10'000'000);
  EXPECT_EQ(sel.target(1), L(2, 2));
  EXPECT_EQ(sel.target(2), L(1, 2));
  // Not enough for two full-rate high layers: the first tile (the larger) goes as high as fits after both have
  // their lowest layer.
  LayerSelector tight;
  tight.addTrack(camera(1, 720));
  tight.addTrack(camera(2, 720));
  tight.update(TimePoint{}, 900'000);
  EXPECT_EQ(tight.target(1), L(1, 2));
  EXPECT_EQ(tight.target(2), L(0, 2));
}

TEST(LayerSelector, AudioFirstAndHiddenTilesGetNothing) {
  LayerSelector sel;
  sel.addTrack(camera(1));
  auto hidden = camera(2);
  hidden.renderedWidth = hidden.renderedHeight = 0;
  sel.addTrack(hidden);
  sel.setAudioBitrate(64'000);
  // 150 kbit/s: after 64 kbit/s of audio, only the base temporal layer of the lowest spatial layer (60 kbit/s).
  sel.update(TimePoint{}, 150'000);
  EXPECT_EQ(sel.target(1), L(0, 0));
  EXPECT_FALSE(sel.target(2));
  // Under the audio's share: the video keeps its minimum, the lowest layer's base temporal layer (a visible tile is
  // never left black); the hidden one still gets nothing.
  sel.setAudioBitrate(200'000);
  sel.update(TimePoint{} + Millis(1), 150'000);
  EXPECT_EQ(sel.target(1), L(0, 0));
  EXPECT_FALSE(sel.target(2));
  // A tile shown again gets video at once.
  sel.setAudioBitrate(0);
  hidden.renderedWidth = 320;
  hidden.renderedHeight = 180;
  ASSERT_TRUE(sel.updateTrack(hidden));
  sel.update(TimePoint{} + Millis(2), 10'000'000);
  EXPECT_EQ(sel.target(2), L(0, 2));
}

TEST(LayerSelector, ScreenShareAndSpeakerFirst) {
  LayerSelector sel;
  sel.addTrack(camera(1, 720));
  sel.addTrack(camera(2, 720, TrackPriority::kSpeaker));
  auto screen = camera(3, 720, TrackPriority::kScreenShare);
  screen.spatialLayers = 1;
  screen.temporalLayers = 1;
  screen.bitrate = {};
  screen.bitrate[0][0] = 1'200'000;
  screen.height = {720, 0, 0};
  sel.addTrack(screen);
  sel.update(TimePoint{}, 2'000'000);
  EXPECT_EQ(sel.target(3), L(0, 0));  // the share at full quality
  EXPECT_EQ(sel.target(2), L(1, 2));  // then the speaker
  EXPECT_EQ(sel.target(1), L(0, 2));  // the rest keeps its lowest layer
}

TEST(LayerSelector, SpatialSwitchWaitsForKeyframe) {
  LayerSelector sel;
  Clock c;
  sel.addTrack(camera(1));
  sel.update(c.now, 400'000);
  ASSERT_EQ(sel.target(1), L(0, 2));
  EXPECT_EQ(sel.keyframeWanted(1), 0);
  // Nothing is forwarded before the first keyframe of the target layer.
  EXPECT_FALSE(sel.onPacket(1, 0, 0, true, false, false).forward);
  EXPECT_FALSE(sel.onPacket(1, 1, 0, true, true, false).forward);
  auto v = sel.onPacket(1, 0, 0, true, true, false);
  EXPECT_TRUE(v.forward && v.switched);
  EXPECT_EQ(sel.current(1), L(0, 2));
  EXPECT_FALSE(sel.keyframeWanted(1));
  // Up: the estimate rises and stays; after kUpHold the target moves, the forwarded layer only at a keyframe of it.
  for (int i = 0; i <= 31; ++i) {
    sel.update(c.now, 1'000'000);
    c.advance(Millis(100));
  }
  ASSERT_EQ(sel.target(1), L(1, 2));
  EXPECT_EQ(sel.keyframeWanted(1), 1);
  EXPECT_TRUE(sel.onPacket(1, 0, 2, true, false, false).forward);  // the old layer goes on meanwhile
  EXPECT_FALSE(sel.onPacket(1, 1, 0, true, false, false).forward);
  v = sel.onPacket(1, 1, 0, true, true, false);
  EXPECT_TRUE(v.forward && v.switched);
  EXPECT_FALSE(sel.onPacket(1, 0, 0, true, true, false).forward);  // the old layer stops
  EXPECT_EQ(sel.stats().spatialSwitches, 2u);
  EXPECT_EQ(sel.stats().keyframeWaits, 1u);
}

TEST(LayerSelector, DownSwitchKeepsTheBaseTemporalLayerUntilTheKeyframe) {
  LayerSelector sel;
  Clock c;
  sel.addTrack(camera(1));
  sel.update(c.now, 700'000);
  ASSERT_EQ(sel.target(1), L(1, 2));
  ASSERT_TRUE(sel.onPacket(1, 1, 0, true, true, false).switched);
  // A severe drop (under 70 % of what is forwarded) goes down at once.
  c.advance(Millis(50));
  sel.update(c.now, 300'000);
  ASSERT_EQ(sel.target(1), L(0, 2));
  EXPECT_TRUE(sel.onPacket(1, 1, 0, true, false, false).forward);
  EXPECT_FALSE(sel.onPacket(1, 1, 1, true, false, false).forward);
  EXPECT_FALSE(sel.onPacket(1, 1, 2, true, false, false).forward);
  EXPECT_TRUE(sel.onPacket(1, 0, 0, true, true, false).switched);
  EXPECT_FALSE(sel.onPacket(1, 1, 0, true, false, false).forward);
}

TEST(LayerSelector, TemporalLayersGoDownAtOnceAndUpAtASync) {
  LayerSelector sel;
  Clock c;
  auto one = camera(1);
  one.spatialLayers = 1;  // the spatial layer cannot go lower: temporal layers are dropped to fit
  sel.addTrack(one);
  sel.update(c.now, 200'000);
  ASSERT_EQ(sel.target(1), L(0, 2));
  ASSERT_TRUE(sel.onPacket(1, 0, 0, true, true, false).switched);
  EXPECT_TRUE(sel.onPacket(1, 0, 2, true, false, false).forward);
  c.advance(Millis(10));
  sel.update(c.now, 70'000);  // severe: at once
  ASSERT_EQ(sel.target(1), L(0, 0));
  EXPECT_FALSE(sel.onPacket(1, 0, 2, true, false, false).forward);
  EXPECT_FALSE(sel.onPacket(1, 0, 1, true, false, true).forward);
  EXPECT_TRUE(sel.onPacket(1, 0, 0, true, false, false).forward);
  // Up after the backoff and the hold, at the first frame that is a layer sync.
  for (int i = 0; i < 140; ++i) {
    c.advance(Millis(100));
    sel.update(c.now, 400'000);
  }
  ASSERT_EQ(sel.target(1), L(0, 2));
  EXPECT_FALSE(sel.onPacket(1, 0, 1, true, false, false).forward);
  EXPECT_TRUE(sel.onPacket(1, 0, 1, true, false, true).forward);
  EXPECT_TRUE(sel.onPacket(1, 0, 2, true, false, false).forward);
}

// A steady link whose estimate is noisy (±25 % each 100 ms around 650 kbit/s, between the 500 kbit/s middle layer and
// what the top needs) must not flap: at most one switch per 10 s, here none after the start.
TEST(LayerSelector, NoisyEstimateDoesNotFlap) {
  LayerSelector sel;
  Clock c;
  sel.addTrack(camera(1));
  std::mt19937 rng(7);
  std::uniform_real_distribution<double> noise(0.75, 1.25);
  int changes = 0;
  std::optional<Layer> last;
  for (int i = 0; i < 1200; ++i) {  // 120 s
    sel.update(c.now, uint64_t(650'000 * noise(rng)));
    if (sel.target(1) != last) {
      ++changes;
      last = sel.target(1);
    }
    c.advance(Millis(100));
  }
  EXPECT_LE(changes, 1 + 12);
  // Stricter for this trace: the layer that fits most of the time is chosen and kept.
  EXPECT_LE(changes, 3);
}

TEST(LayerSelector, EstimateDipsShorterThanTheHoldAreIgnored) {
  LayerSelector sel;
  Clock c;
  sel.addTrack(camera(1));
  sel.update(c.now, 800'000);
  ASSERT_EQ(sel.target(1), L(1, 2));
  // A dip to 450 kbit/s (under the layer, above the severe 70 %) for 800 ms, every 5 s, for a minute.
  for (int i = 0; i < 600; ++i) {
    c.advance(Millis(100));
    sel.update(c.now, (i % 50) < 8 ? 450'000 : 800'000);
    EXPECT_EQ(sel.target(1), L(1, 2)) << i;
  }
  // A lasting one is followed after kDownHold.
  for (int i = 0; i < 11; ++i) {
    c.advance(Millis(100));
    sel.update(c.now, 450'000);
  }
  EXPECT_EQ(sel.target(1), L(0, 2));
}

TEST(LayerSelector, UnderTheLowestLayerTheMinimumStaysAndComesBackUpWithoutFlapping) {
  LayerSelector sel;
  Clock c;
  sel.addTrack(camera(1));
  sel.update(c.now, 100'000);
  ASSERT_EQ(sel.target(1), L(0, 1));
  // The estimate falls under the lowest layer: down at once (severe) to the minimum, the base temporal layer, not
  // to nothing. It comes back: not before the backoff and the hold, so an estimate around the lowest layer does not
  // switch the frame rate up and down.
  c.advance(Millis(100));
  sel.update(c.now, 40'000);
  ASSERT_EQ(sel.target(1), L(0, 0));
  int upAfter = -1;
  for (int i = 1; i <= 200 && upAfter < 0; ++i) {
    c.advance(Millis(100));
    sel.update(c.now, 120'000);  // (going up needs kUpMargin to spare)
    if (sel.target(1) == L(0, 1)) upAfter = i * 100;
  }
  EXPECT_GE(upAfter, 10'000);
  EXPECT_LE(upAfter, 13'100);
}

TEST(LayerSelector, BoundedTracks) {
  LayerSelector sel;
  for (uint32_t i = 0; i < LayerSelector::kMaxTracks; ++i) ASSERT_TRUE(sel.addTrack(camera(i)));
  EXPECT_FALSE(sel.addTrack(camera(1000)));
  EXPECT_FALSE(sel.addTrack(camera(3)));  // the id is taken
  sel.removeTrack(3);
  EXPECT_FALSE(sel.target(3));
  EXPECT_TRUE(sel.addTrack(camera(1000)));
  EXPECT_FALSE(sel.onPacket(4242, 0, 0, true, true, false).forward);
}

}  // namespace
}  // namespace kaiwa::bwe

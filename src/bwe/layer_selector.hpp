#pragma once
// Simulcast layer selection for one subscriber (issue 15): from the bandwidth estimate, each video tile's rendered
// size and the tracks' priorities, which spatial and temporal layer of each published video track the subscriber
// gets, and when the forwarded layer may actually change. Sans-I/O: the caller passes `now`, the estimate, and each
// packet's layer; nothing allocates after the tracks are added.
//
// Rules, and why:
// - Audio first: the audio tracks' bitrate is taken off the estimate before any video gets a share.
// - Every visible track first gets its lowest layer, in priority order (screen share, then the active speaker, then
//   the rest, larger tiles first), so that a tile shows something before another tile gets sharper; then, in the
//   same order, each goes up as far as the rest of the budget and its tile size allow. A visible tile is never left
//   black for want of bandwidth: where even its lowest layer does not fit, it keeps that layer's base temporal layer
//   (as libwebrtc enforces each video stream's minimum bitrate). A hidden tile (rendered size 0) gets nothing. A
//   tile gets no spatial layer taller than the smallest one that covers its rendered height.
// - Hysteresis: going up needs the higher layer to fit with kUpMargin to spare, continuously for kUpHold; going
//   down happens after kDownHold of not fitting, at once when the estimate is below kSevere of what is forwarded;
//   and after a track went down it does not go up again for kUpBackoff (a hidden tile shown again starts at once). A
//   noisy estimate around a layer's bitrate therefore does not flap it (the goal is no more than one switch per 10 s on
//   a steady link).
// - Switching: simulcast layers are independent streams, so a new spatial layer is forwarded from one of its
//   keyframes only (keyframeWanted() names the layer to ask a keyframe of); until then the old layer goes on, at
//   its lowest temporal layer when the switch is down. A temporal layer goes down at once and up at a frame that
//   starts a layer sync (the VP8 Y bit) or a keyframe.
#include <array>
#include <cstdint>
#include <optional>
#include <vector>

#include "common/clock.hpp"

namespace kaiwa::bwe {

inline constexpr size_t kMaxSpatialLayers = 3;
inline constexpr size_t kMaxTemporalLayers = 3;

enum class TrackPriority : uint8_t { kScreenShare = 0, kSpeaker = 1, kNormal = 2 };

struct Layer {
  uint8_t spatial = 0;
  uint8_t temporal = 0;
  bool operator==(const Layer&) const = default;
  bool operator<(const Layer& o) const { return spatial != o.spatial ? spatial < o.spatial : temporal < o.temporal; }
};

struct VideoTrackInfo {
  uint32_t id = 0;
  TrackPriority priority = TrackPriority::kNormal;
  uint8_t spatialLayers = 1;
  uint8_t temporalLayers = 1;
  // bitrate[s][t]: bits per second of spatial layer s with temporal layers 0..t (cumulative). The caller measures
  // them on the publisher's streams; a layer the publisher does not send (0) is never chosen.
  std::array<std::array<uint32_t, kMaxTemporalLayers>, kMaxSpatialLayers> bitrate{};
  std::array<uint16_t, kMaxSpatialLayers> height{};  // picture height of each spatial layer
  uint16_t renderedWidth = 0;                        // the subscriber's tile; 0 x 0 = hidden
  uint16_t renderedHeight = 0;
};

class LayerSelector {
 public:
  static constexpr size_t kMaxTracks = 64;  // video tracks one subscriber can receive
  static constexpr double kUpMargin = 1.2;
  static constexpr Millis kUpHold{3000};
  static constexpr Millis kDownHold{1000};
  static constexpr double kSevere = 0.7;
  static constexpr Millis kUpBackoff{10000};

  struct Stats {
    uint64_t switches = 0;  // changes of the forwarded layer (spatial or temporal), all tracks
    uint64_t spatialSwitches = 0;
    uint64_t keyframeWaits = 0;  // spatial switches that had to wait for a keyframe
  };

  // False (nothing changes) when kMaxTracks are there already or the id is taken.
  bool addTrack(const VideoTrackInfo& info);
  void removeTrack(uint32_t id);
  // Updates a track's bitrates, rendered size or priority (the id names it). False for an unknown id.
  bool updateTrack(const VideoTrackInfo& info);
  void setAudioBitrate(uint64_t bps) { audio_ = bps; }

  // Re-decides each track's target layer from the estimate. Call on every estimate change and on a timer (the
  // hold times run on `now`).
  void update(TimePoint now, uint64_t estimate);

  // The layer a track should be forwarded at (nullopt: nothing), and the one being forwarded now.
  std::optional<Layer> target(uint32_t id) const;
  std::optional<Layer> current(uint32_t id) const;
  // The spatial layer a track waits for a keyframe of, if any: the caller asks the publisher (throttled).
  std::optional<uint8_t> keyframeWanted(uint32_t id) const;

  struct Verdict {
    bool forward = false;
    bool switched = false;  // the first packet forwarded of a new layer: the rewriter starts a new source here
  };
  // For each packet of a track: its spatial layer (the simulcast stream it came on), temporal layer, and whether it
  // starts a frame, a keyframe, or a temporal layer sync.
  Verdict onPacket(uint32_t id, uint8_t spatial, uint8_t temporal, bool frameStart, bool keyframe, bool layerSync);

  const Stats& stats() const { return stats_; }

 private:
  struct Track {
    VideoTrackInfo info;
    std::optional<Layer> target;
    std::optional<Layer> current;  // what is forwarded
    std::optional<Layer> desired;  // the last allocation's choice, before hysteresis
    std::optional<TimePoint> upSince;
    std::optional<TimePoint> downSince;
    std::optional<TimePoint> lastDown;
    bool frameOpen = false;  // the current layer's frame in progress is being forwarded
  };

  Track* find(uint32_t id);
  const Track* find(uint32_t id) const;
  uint32_t cost(const Track& t, Layer l) const { return t.info.bitrate[l.spatial][l.temporal]; }
  std::optional<Layer> lowest(const Track& t) const;
  uint8_t spatialCap(const Track& t) const;
  std::optional<Layer> bestWithin(const Track& t, double budget) const;
  void allocate(uint64_t estimate);
  void applyHysteresis(Track& t, TimePoint now, uint64_t estimate, uint64_t forwarded);

  std::vector<Track> tracks_;
  std::vector<size_t> order_;  // indices into tracks_ by priority
  uint64_t audio_ = 0;
  Stats stats_;
};

}  // namespace kaiwa::bwe

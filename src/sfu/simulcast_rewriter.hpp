#pragma once
// One subscriber's view of a simulcast track: whichever layer is forwarded, the subscriber sees one stream with
// continuous sequence numbers, timestamps on one clock, and (VP8) continuous picture ids and TL0PICIDX. Sans-I/O:
// the caller passes each forwarded or dropped packet's fields and `now`, and writes the values it gets back.
//
// Timestamps: simulcast layers are encodings of the same captured frames, but each layer's RTP timestamps start at
// a random value. The publisher's Sender Reports map each layer's RTP clock to its NTP clock (RFC 3550 6.4.1), so at
// a switch from layer A to layer B the offset that puts B on A's output timeline is
//   offset_B = offset_A + (rtp_A + (ntp_B - ntp_A) * clockRate) - rtp_B
// with each layer's last (ntp, rtp) pair. Without a Sender Report of both layers the offset cannot be computed; the
// switch then advances the output timestamp by the arrival time elapsed since the last packet (kEstimated), which
// is close but not exact — the caller may count it, and the next keyframe after both reports arrived cannot
// correct it without a jump, so it stays. A computed timestamp that would not be newer than the last one sent
// (mappings out of date) falls back the same way.
#include <array>
#include <cstdint>
#include <optional>

#include "common/clock.hpp"

namespace kaiwa::sfu {

class SimulcastRewriter {
 public:
  static constexpr size_t kMaxLayers = 3;

  enum class Switch : uint8_t { kNone, kFirst, kExact, kEstimated };

  struct In {
    uint8_t layer = 0;
    uint16_t sequence = 0;
    uint32_t timestamp = 0;
    std::optional<uint16_t> pictureId;  // VP8, 15-bit
    std::optional<uint8_t> tl0PicIdx;
  };
  struct Out {
    uint16_t sequence = 0;
    uint32_t timestamp = 0;
    std::optional<uint16_t> pictureId;
    std::optional<uint8_t> tl0PicIdx;
    Switch switched = Switch::kNone;
  };
  struct Stats {
    uint64_t exactSwitches = 0;
    uint64_t estimatedSwitches = 0;
    uint64_t lateDrops = 0;   // dropped packets older than the newest seen: their number is a gap the subscriber sees
    uint64_t beforeDrop = 0;  // packets refused because they are older than a drop (their number was given away)
  };

  SimulcastRewriter(uint32_t clockRate, uint16_t initialSequence, uint32_t initialTimestamp)
      : clockRate_(clockRate), nextSequence_(initialSequence), initialTimestamp_(initialTimestamp) {}

  // A publisher's Sender Report for a layer: its NTP timestamp (64-bit, 32.32) and RTP timestamp.
  void onSenderReport(uint8_t layer, uint64_t ntp, uint32_t rtp);
  // A packet to forward. `switched`: the first packet of a new layer (LayerSelector::Verdict::switched, a keyframe).
  // nullopt for a packet of the current layer older than the last dropped one: the numbers after a drop moved down
  // by one, so a late packet from before it would take its neighbour's number. It is not forwarded (the subscriber
  // sees it lost and may ask for it again).
  std::optional<Out> forward(const In& in, bool switched, TimePoint now);
  // A packet of the current layer that is not forwarded (a dropped temporal layer): later packets close the gap.
  void drop(uint8_t layer, uint16_t sequence);

  const Stats& stats() const { return stats_; }

 private:
  struct Mapping {
    uint64_t ntp = 0;
    uint32_t rtp = 0;
    bool valid = false;
  };
  std::optional<uint32_t> exactOffset(uint8_t from, uint8_t to) const;

  uint32_t clockRate_;
  std::array<Mapping, kMaxLayers> mappings_{};
  bool started_ = false;
  uint8_t layer_ = 0;
  uint16_t nextSequence_;  // before the first packet: the initial value
  uint32_t initialTimestamp_;
  uint16_t seqOffset_ = 0;
  uint32_t tsOffset_ = 0;
  uint16_t highestIn_ = 0;  // the newest input sequence number of the current layer, forwarded or dropped
  std::optional<uint16_t> lastDrop_;
  uint16_t lastSeq_ = 0;
  uint32_t lastTs_ = 0;
  TimePoint lastSent_{};
  uint16_t picOffset_ = 0;
  uint8_t tl0Offset_ = 0;
  std::optional<uint16_t> lastPic_;
  std::optional<uint8_t> lastTl0_;
  Stats stats_;
};

}  // namespace kaiwa::sfu

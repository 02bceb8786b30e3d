#pragma once
// kaiwa's send-side bandwidth estimate towards one subscriber (issue 15): every RTP packet sent on the subscriber's
// transport is recorded with its transport-wide sequence number, and the transport-cc feedback the subscriber sends
// back says which arrived and when. A delay-based part (delay_based.hpp) and a loss-based part each give a rate;
// the estimate is the lower, within the configured bounds. Sans-I/O, no allocation after construction: the caller
// passes `now` and the parsed feedback, and reads estimate() after each message.
//
// The loss-based part follows draft-ietf-rmcat-gcc-02 section 6: over each interval of feedback, more than 10 %
// lost lowers the rate by half the loss fraction, 2–10 % holds it, under 2 % lets it grow by 5 %.
#include <array>
#include <cstdint>
#include <optional>

#include "bwe/delay_based.hpp"
#include "common/clock.hpp"
#include "rtp/rtcp.hpp"

namespace kaiwa::bwe {

struct EstimatorConfig {
  uint64_t startBitrate = 300'000;
  uint64_t minBitrate = 50'000;
  uint64_t maxBitrate = 10'000'000;
};

class BandwidthEstimator {
 public:
  // Sent packets remembered for feedback: 2048 is 2 s at 10 Mbit/s of 1200-byte packets, longer than any feedback
  // takes (a round trip plus the receiver's 50-100 ms); an older packet's feedback is not matched (counted as
  // unknown). 16 bytes each: 32 KiB of the estimator's 34 KiB per subscriber.
  static constexpr size_t kHistory = 2048;
  // The acknowledged rate is measured over this much of the receiver's time.
  static constexpr int64_t kAckedWindowMicros = 500'000;
  static constexpr size_t kAckedSlots = 64;  // feedback messages in the window (Chromium sends one per 50-100 ms)
  // The loss part evaluates the loss over this many packets and this much time at least: the draft's rules act once
  // per receiver report; kaiwa's "report" is this interval, long enough for one lowering to take effect before the
  // next is decided, and short enough that growth after a loss episode (5 % per interval, about 17 % a second at
  // the shortest) keeps pace with the delay part's 8 % a second.
  static constexpr uint32_t kLossMinPackets = 20;
  static constexpr Millis kLossInterval{300};
  static constexpr double kLossHigh = 0.10;
  static constexpr double kLossLow = 0.02;
  static constexpr double kLossGrowth = 1.05;

  struct Stats {
    uint64_t sent = 0;
    uint64_t feedbacks = 0;
    uint64_t malformed = 0;  // feedback whose statuses did not walk cleanly: dropped whole
    uint64_t acked = 0;      // packets reported received
    uint64_t lost = 0;       // packets reported not received (a later report of arrival takes it back)
    uint64_t unknown = 0;    // statuses for packets not in the history (too old, never sent, duplicates)
    uint64_t overuse = 0;    // overuse signals from the delay part
    uint64_t lossDecreases = 0;
  };

  explicit BandwidthEstimator(const EstimatorConfig& config = {});

  void onPacketSent(uint16_t transportSequence, TimePoint sendTime, size_t bytes);
  // One transport-cc message from the subscriber. False when it was malformed (nothing of it is used).
  bool onFeedback(TimePoint now, const rtp::rtcp::TransportFeedback& feedback);

  uint64_t estimate() const { return estimate_; }
  uint64_t delayBased() const { return aimd_.rate(); }
  uint64_t lossBased() const { return lossRate_; }
  std::optional<uint64_t> ackedRate() const;
  BandwidthUsage usage() const { return inter_.trend().usage(); }
  const DelayTrend& delayTrend() const { return inter_.trend(); }
  double rttMillis() const { return rttMs_; }
  const Stats& stats() const { return stats_; }

 private:
  struct Sent {
    TimePoint sendTime{};
    uint16_t bytes = 0;
    uint16_t sequence = 0;
    bool valid = false;
    bool acked = false;
    bool reportedLost = false;
  };
  // What one feedback message acknowledged: bytes that arrived over (start, end] of the receiver's time. A message
  // that follows the previous one without a gap starts where it ended; after a lost message, a message starts at
  // its own first arrival and that packet's bytes are left out, so lost feedback lowers neither the bytes nor the
  // time counted, and the rate stays right.
  struct AckedSlot {
    int64_t start = 0;
    int64_t end = 0;
    uint64_t bytes = 0;
  };

  void updateLoss(TimePoint now);

  EstimatorConfig config_;
  std::array<Sent, kHistory> history_{};
  std::array<AckedSlot, kAckedSlots> acked_{};
  size_t ackedHead_ = 0;
  size_t ackedCount_ = 0;
  InterArrival inter_;
  AimdRateControl aimd_;
  uint64_t lossRate_;
  uint64_t estimate_;
  // Loss since the last evaluation.
  uint32_t intervalReceived_ = 0;
  uint32_t intervalLost_ = 0;
  std::optional<TimePoint> lastLossEvaluation_;
  std::optional<TimePoint> lastLossDecrease_;
  // The receiver's reference time, unwrapped from its 24 bits.
  std::optional<int32_t> lastReference_;
  std::optional<uint16_t> expectedBase_;  // the sequence number after the last message's statuses
  std::optional<int64_t> lastArrival_;    // the last packet the previous message acknowledged
  int64_t unwrappedReference_ = 0;
  double rttMs_ = 100;
  std::optional<TimePoint> start_;
  Stats stats_;
};

}  // namespace kaiwa::bwe

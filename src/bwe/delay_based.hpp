#pragma once
// The delay-based part of kaiwa's send-side bandwidth estimate (draft-ietf-rmcat-gcc-02 section 5, fed by
// transport-cc feedback instead of abs-send-time): packets are grouped by send time, the one-way delay variation
// between groups is smoothed and its trend over a window of groups taken by least squares, an adaptive threshold on
// the trend says overuse, underuse or normal, and an AIMD controller turns that into a rate. Sans-I/O: times are
// passed in, as microseconds (send times on kaiwa's clock, arrival times on the receiver's clock; only differences
// of each are used, so the two clocks need not agree).
#include <array>
#include <cstdint>
#include <optional>

namespace kaiwa::bwe {

enum class BandwidthUsage : uint8_t { kNormal, kOverusing, kUnderusing };

// Packets sent within this of a group's first packet belong to the group (a frame's packets leave together; their
// spacing says nothing about the path).
inline constexpr int64_t kGroupMicros = 5000;

// The trend of the one-way delay, and the overuse detector on it.
class DelayTrend {
 public:
  // Groups kept for the regression, and the smoothing of the accumulated delay (draft section 5.3 smooths the delay
  // gradient; a least-squares slope over 20 groups, about 300 ms at 60 fps, reacts to a queue that builds up over a
  // few frames and ignores one late frame).
  static constexpr size_t kWindow = 20;
  static constexpr double kSmoothing = 0.9;
  // The slope is multiplied by the number of deltas seen (up to 60) and by this gain, so that it is compared with the
  // threshold in milliseconds as the draft's m(i) is.
  static constexpr double kGain = 4.0;
  static constexpr size_t kMaxDeltas = 60;
  // Draft section 5.4: the threshold starts at 12.5 ms and follows |m| with K_u when |m| is above it and K_d below,
  // within 6..600 ms, so that it does not starve against a concurrent TCP flow and does not detect noise.
  static constexpr double kInitialThreshold = 12.5;
  static constexpr double kUp = 0.01;
  static constexpr double kDown = 0.00018;
  static constexpr double kMinThreshold = 6;
  static constexpr double kMaxThreshold = 600;
  // Overuse is signalled only after it lasted this long over at least two groups (draft: overuse_time_th).
  static constexpr double kOveruseMillis = 10;

  // One group after another: the group's send delta and arrival delta from the previous group, and its arrival
  // time. Returns the usage it leads to.
  BandwidthUsage update(double sendDeltaMs, double arrivalDeltaMs, double arrivalMs);
  BandwidthUsage usage() const { return usage_; }
  double threshold() const { return threshold_; }
  double trend() const { return modifiedTrend_; }

 private:
  void detect(double sendDeltaMs, double arrivalMs);
  void adaptThreshold(double modifiedTrend, double arrivalMs);

  std::array<double, kWindow> x_{};  // arrival time (ms since the first group)
  std::array<double, kWindow> y_{};  // smoothed accumulated delay (ms)
  size_t count_ = 0;                 // samples in the ring
  size_t head_ = 0;                  // next slot
  size_t deltas_ = 0;
  double firstArrival_ = -1;
  double accumulated_ = 0;
  double smoothed_ = 0;
  double modifiedTrend_ = 0;
  double previousTrend_ = 0;
  double threshold_ = kInitialThreshold;
  double lastThresholdUpdate_ = -1;
  double overuseTime_ = -1;
  int overuseCount_ = 0;
  BandwidthUsage usage_ = BandwidthUsage::kNormal;
};

// Packet groups from acknowledged packets (in transport sequence order) into DelayTrend.
class InterArrival {
 public:
  // A packet the feedback said was received. Returns the usage when it closed a group, else nullopt.
  std::optional<BandwidthUsage> onPacket(int64_t sendMicros, int64_t arrivalMicros);
  const DelayTrend& trend() const { return trend_; }
  uint64_t reordered() const { return reordered_; }

 private:
  struct Group {
    int64_t firstSend = 0;
    int64_t lastSend = 0;
    int64_t lastArrival = 0;
    bool valid = false;
  };
  Group current_;
  Group previous_;
  DelayTrend trend_;
  uint64_t reordered_ = 0;
};

// Draft section 5.5: the AIMD rate controller. Overuse decreases the rate to 0.85 of what the receiver got; normal
// increases it, by 8 % a second while far from the rate at which overuse was last seen, by about a packet per
// response time near it; underuse holds it (the queues drain first).
class AimdRateControl {
 public:
  static constexpr double kBeta = 0.85;
  static constexpr double kMultiplicativePerSecond = 1.08;
  // The rate never exceeds this multiple of the acknowledged rate: an estimate the sender never used is not one
  // the path has shown it can carry.
  static constexpr double kAckedCap = 1.5;
  static constexpr double kPacketBits = 1200 * 8;

  AimdRateControl(uint64_t start, uint64_t min, uint64_t max) : rate_(double(start)), min_(min), max_(max) {}
  // Called on every feedback message with the detector's usage, the acknowledged rate (if known), the round trip
  // time and the time now (ms on kaiwa's clock). Returns the new rate.
  uint64_t update(BandwidthUsage usage, std::optional<uint64_t> ackedRate, double rttMs, double nowMs);
  uint64_t rate() const { return uint64_t(rate_); }
  void setRate(uint64_t rate) { rate_ = double(rate); }
  uint64_t decreases() const { return decreases_; }

 private:
  enum class State : uint8_t { kHold, kIncrease, kDecrease };
  bool nearMax() const;
  void observeMax(double acked);

  double rate_;
  uint64_t min_;
  uint64_t max_;
  State state_ = State::kIncrease;
  double lastUpdateMs_ = -1;
  double avgMax_ = -1;  // exponential average of the acknowledged rate at overuse
  double varMax_ = 0;
  uint64_t decreases_ = 0;
};

}  // namespace kaiwa::bwe

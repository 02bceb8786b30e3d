#include "bwe/delay_based.hpp"

#include <algorithm>
#include <cmath>

namespace kaiwa::bwe {

BandwidthUsage DelayTrend::update(double sendDeltaMs, double arrivalDeltaMs, double arrivalMs) {
  if (firstArrival_ < 0) firstArrival_ = arrivalMs;
  deltas_ = std::min(deltas_ + 1, kMaxDeltas);
  accumulated_ += arrivalDeltaMs - sendDeltaMs;
  smoothed_ = kSmoothing * smoothed_ + (1 - kSmoothing) * accumulated_;
  x_[head_] = arrivalMs - firstArrival_;
  y_[head_] = smoothed_;
  head_ = (head_ + 1) % kWindow;
  count_ = std::min(count_ + 1, kWindow);
  if (count_ == kWindow) {
    double xm = 0, ym = 0;
    for (size_t i = 0; i < kWindow; ++i) {
      xm += x_[i];
      ym += y_[i];
    }
    xm /= kWindow;
    ym /= kWindow;
    double num = 0, den = 0;
    for (size_t i = 0; i < kWindow; ++i) {
      num += (x_[i] - xm) * (y_[i] - ym);
      den += (x_[i] - xm) * (x_[i] - xm);
    }
    // Groups that all arrived at once give no slope; the last one stands.
    if (den > 0) modifiedTrend_ = num / den * double(deltas_) * kGain;
  }
  detect(sendDeltaMs, arrivalMs);
  return usage_;
}

void DelayTrend::detect(double sendDeltaMs, double arrivalMs) {
  const double t = modifiedTrend_;
  if (count_ < kWindow) {
    usage_ = BandwidthUsage::kNormal;
  } else if (t > threshold_) {
    overuseTime_ = overuseTime_ < 0 ? sendDeltaMs / 2 : overuseTime_ + sendDeltaMs;
    ++overuseCount_;
    if (overuseTime_ > kOveruseMillis && overuseCount_ > 1 && t >= previousTrend_) {
      overuseTime_ = 0;
      overuseCount_ = 0;
      usage_ = BandwidthUsage::kOverusing;
    }
  } else if (t < -threshold_) {
    overuseTime_ = -1;
    overuseCount_ = 0;
    usage_ = BandwidthUsage::kUnderusing;
  } else {
    overuseTime_ = -1;
    overuseCount_ = 0;
    usage_ = BandwidthUsage::kNormal;
  }
  previousTrend_ = t;
  if (count_ == kWindow) adaptThreshold(t, arrivalMs);
}

void DelayTrend::adaptThreshold(double modifiedTrend, double arrivalMs) {
  if (lastThresholdUpdate_ < 0) lastThresholdUpdate_ = arrivalMs;
  const double magnitude = std::fabs(modifiedTrend);
  // A spike far over the threshold (a route change, a burst of cross traffic) would drag it up for long; the
  // draft leaves such samples out.
  if (magnitude > threshold_ + 15) {
    lastThresholdUpdate_ = arrivalMs;
    return;
  }
  const double k = magnitude < threshold_ ? kDown : kUp;
  const double dt = std::min(arrivalMs - lastThresholdUpdate_, 100.0);
  threshold_ = std::clamp(threshold_ + k * (magnitude - threshold_) * dt, kMinThreshold, kMaxThreshold);
  lastThresholdUpdate_ = arrivalMs;
}

std::optional<BandwidthUsage> InterArrival::onPacket(int64_t sendMicros, int64_t arrivalMicros) {
  if (!current_.valid) {
    current_ = {sendMicros, sendMicros, arrivalMicros, true};
    return std::nullopt;
  }
  // A packet sent before the current group started was reordered on the way back to kaiwa (or retransmitted); its
  // delay says nothing about the trend.
  if (sendMicros < current_.firstSend) {
    ++reordered_;
    return std::nullopt;
  }
  if (sendMicros - current_.firstSend <= kGroupMicros) {
    current_.lastSend = std::max(current_.lastSend, sendMicros);
    current_.lastArrival = std::max(current_.lastArrival, arrivalMicros);
    return std::nullopt;
  }
  std::optional<BandwidthUsage> usage;
  if (previous_.valid) {
    const double sendDelta = double(current_.lastSend - previous_.lastSend) / 1000.0;
    const double arrivalDelta = double(current_.lastArrival - previous_.lastArrival) / 1000.0;
    // A group that arrived before the one sent ahead of it was reordered in the network: skipped, as the draft
    // skips groups whose arrival order contradicts their send order.
    if (arrivalDelta >= 0) {
      usage = trend_.update(sendDelta, arrivalDelta, double(current_.lastArrival) / 1000.0);
    } else {
      ++reordered_;
    }
  }
  previous_ = current_;
  current_ = {sendMicros, sendMicros, arrivalMicros, true};
  return usage;
}

bool AimdRateControl::nearMax() const {
  if (avgMax_ < 0) return false;
  const double sigma = std::max(std::sqrt(varMax_), 0.1 * avgMax_);
  return std::fabs(rate_ - avgMax_) <= 3 * sigma;
}

void AimdRateControl::observeMax(double acked) {
  if (avgMax_ < 0) {
    avgMax_ = acked;
    varMax_ = 0;
    return;
  }
  const double sigma = std::max(std::sqrt(varMax_), 0.1 * avgMax_);
  // The path changed (draft 5.5): a rate far from the average starts a new one.
  if (std::fabs(acked - avgMax_) > 3 * sigma) {
    avgMax_ = acked;
    varMax_ = 0;
    return;
  }
  avgMax_ = 0.95 * avgMax_ + 0.05 * acked;
  varMax_ = 0.95 * varMax_ + 0.05 * (acked - avgMax_) * (acked - avgMax_);
}

uint64_t AimdRateControl::update(BandwidthUsage usage, std::optional<uint64_t> ackedRate, double rttMs, double nowMs) {
  const double dtMs = lastUpdateMs_ < 0 ? 0 : std::clamp(nowMs - lastUpdateMs_, 0.0, 1000.0);
  lastUpdateMs_ = nowMs;
  // The draft's state machine: overuse decreases from any state; underuse holds; normal increases after a hold.
  switch (usage) {
    case BandwidthUsage::kOverusing:
      state_ = State::kDecrease;
      break;
    case BandwidthUsage::kUnderusing:
      state_ = State::kHold;
      break;
    case BandwidthUsage::kNormal:
      if (state_ == State::kHold) state_ = State::kIncrease;
      break;
  }
  switch (state_) {
    case State::kHold:
      break;
    case State::kIncrease: {
      if (nearMax()) {
        const double responseMs = 100 + rttMs;
        rate_ += std::max(1000.0 * dtMs / 1000.0, 0.5 * std::min(dtMs / responseMs, 1.0) * kPacketBits);
      } else {
        rate_ *= std::pow(kMultiplicativePerSecond, dtMs / 1000.0);
      }
      if (ackedRate) rate_ = std::min(rate_, kAckedCap * double(*ackedRate) + 10'000);
      break;
    }
    case State::kDecrease:
      if (ackedRate) {
        const double lowered = kBeta * double(*ackedRate);
        // Overuse never raises the rate, even when the receiver got more than the rate (the queue draining).
        if (lowered < rate_) {
          rate_ = lowered;
          ++decreases_;
        }
        observeMax(double(*ackedRate));
      } else {
        rate_ *= kBeta;
        ++decreases_;
      }
      state_ = State::kHold;
      break;
  }
  rate_ = std::clamp(rate_, double(min_), double(max_));
  return rate();
}

}  // namespace kaiwa::bwe

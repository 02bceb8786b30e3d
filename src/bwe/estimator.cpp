#include "bwe/estimator.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "rtp/transport_feedback.hpp"

namespace kaiwa::bwe {

namespace {

double millisBetween(TimePoint a, TimePoint b) { return std::chrono::duration<double, std::milli>(b - a).count(); }

}  // namespace

BandwidthEstimator::BandwidthEstimator(const EstimatorConfig& config)
    : config_(config), aimd_(config.startBitrate, config.minBitrate, config.maxBitrate), lossRate_(config.maxBitrate),
      estimate_(config.startBitrate) {}

void BandwidthEstimator::onPacketSent(uint16_t transportSequence, TimePoint sendTime, size_t bytes) {
  if (!start_) start_ = sendTime;
  history_[transportSequence % kHistory] = {
      sendTime, uint16_t(std::min<size_t>(bytes, UINT16_MAX)), transportSequence, true, false, false};
  ++stats_.sent;
}

std::optional<uint64_t> BandwidthEstimator::ackedRate() const {
  if (ackedCount_ == 0) return std::nullopt;
  const AckedSlot& newest = acked_[(ackedHead_ + kAckedSlots - 1) % kAckedSlots];
  int64_t span = 0;
  uint64_t bytes = 0;
  for (size_t i = 0; i < ackedCount_; ++i) {
    const AckedSlot& s = acked_[(ackedHead_ + kAckedSlots - 1 - i) % kAckedSlots];
    if (s.end < newest.end - kAckedWindowMicros) break;
    span += std::max<int64_t>(s.end - s.start, 0);
    bytes += s.bytes;
  }
  // Less than 50 ms of arrivals is one burst, not a rate.
  if (span < 50'000) return std::nullopt;
  return uint64_t(double(bytes) * 8e6 / double(span));
}

bool BandwidthEstimator::onFeedback(TimePoint now, const rtp::rtcp::TransportFeedback& feedback) {
  if (!rtp::rtcp::TransportFeedbackReader::valid(feedback)) {
    ++stats_.malformed;
    return false;
  }
  ++stats_.feedbacks;
  // The reference time counts 64 ms in 24 bits (about 12 days round); it is unwrapped as the shortest step from the
  // previous message, so feedback that arrives out of order steps back a little rather than a whole cycle.
  if (lastReference_) {
    int32_t step = int32_t(uint32_t(feedback.referenceTime - *lastReference_) & 0xFFFFFF);
    if (step >= 0x800000) step -= 0x1000000;
    unwrappedReference_ += step;
  } else {
    unwrappedReference_ = feedback.referenceTime;
  }
  lastReference_ = feedback.referenceTime;
  const int64_t arrivalBase = (unwrappedReference_ - int64_t(feedback.referenceTime)) * rtp::rtcp::kTccReferenceMicros;

  const bool contiguous = expectedBase_ && *expectedBase_ == feedback.baseSequence && lastArrival_;
  expectedBase_ = uint16_t(feedback.baseSequence + feedback.statusCount);
  int64_t firstArrival = INT64_MAX, lastArrival = INT64_MIN;
  uint64_t bytes = 0, firstBytes = 0;
  std::optional<TimePoint> newestSend;
  rtp::rtcp::TransportFeedbackReader reader(feedback);
  while (auto p = reader.next()) {
    Sent& e = history_[p->sequence % kHistory];
    if (!e.valid || e.sequence != p->sequence || (p->received && e.acked)) {
      ++stats_.unknown;
      continue;
    }
    // The loss part judges a lowering by the packets sent after it: those sent before were sent at the old rate.
    const bool counts = !lastLossDecrease_ || e.sendTime >= *lastLossDecrease_;
    if (!p->received) {
      if (!e.acked && !e.reportedLost) {
        e.reportedLost = true;
        if (counts) ++intervalLost_;
        ++stats_.lost;
      }
      continue;
    }
    e.acked = true;
    if (e.reportedLost) {
      // Reported lost before and received after all: reordering, not loss.
      e.reportedLost = false;
      if (counts && intervalLost_ > 0) --intervalLost_;
      if (stats_.lost > 0) --stats_.lost;
    }
    if (counts) ++intervalReceived_;
    ++stats_.acked;
    const int64_t arrival = arrivalBase + p->arrivalMicros;
    if (arrival < firstArrival) {
      firstArrival = arrival;
      firstBytes = e.bytes;
    }
    lastArrival = std::max(lastArrival, arrival);
    bytes += e.bytes;
    if (!newestSend || e.sendTime > *newestSend) newestSend = e.sendTime;
    const auto sendMicros = std::chrono::duration_cast<std::chrono::microseconds>(e.sendTime - *start_).count();
    const BandwidthUsage before = inter_.trend().usage();
    if (auto u = inter_.onPacket(sendMicros, arrival); u && *u == BandwidthUsage::kOverusing && before != *u) {
      ++stats_.overuse;
    }
  }
  if (bytes > 0) {
    const AckedSlot slot = contiguous ? AckedSlot{*lastArrival_, lastArrival, bytes}
                                      : AckedSlot{firstArrival, lastArrival, bytes - firstBytes};
    lastArrival_ = lastArrival;
    acked_[ackedHead_] = slot;
    ackedHead_ = (ackedHead_ + 1) % kAckedSlots;
    ackedCount_ = std::min(ackedCount_ + 1, kAckedSlots);
  }
  // The round trip as kaiwa sees it: from sending the newest packet the message covers to receiving the message.
  // It includes the receiver's feedback interval and any queue; it only scales the additive increase.
  if (newestSend) {
    const double sample = std::max(millisBetween(*newestSend, now), 1.0);
    rttMs_ = 0.875 * rttMs_ + 0.125 * sample;
  }
  const double nowMs = start_ ? millisBetween(*start_, now) : 0;
  aimd_.update(inter_.trend().usage(), ackedRate(), rttMs_, nowMs);
  updateLoss(now);
  estimate_ = std::clamp(std::min(aimd_.rate(), lossRate_), config_.minBitrate, config_.maxBitrate);
  return true;
}

void BandwidthEstimator::updateLoss(TimePoint now) {
  const uint32_t total = intervalReceived_ + intervalLost_;
  // The loss is measured over at least kLossMinPackets and kLossInterval, so that a lowering has had time
  // to show before the next and a handful of packets does not swing the fraction.
  if (total < kLossMinPackets || (lastLossEvaluation_ && now - *lastLossEvaluation_ < kLossInterval)) return;
  lastLossEvaluation_ = now;
  const double loss = double(intervalLost_) / double(total);
  intervalReceived_ = 0;
  intervalLost_ = 0;
  const uint64_t current = std::min(lossRate_, aimd_.rate());
  if (loss > kLossHigh) {
    lossRate_ = std::max(config_.minBitrate, uint64_t(double(current) * (1 - 0.5 * loss)));
    lastLossDecrease_ = now;
    ++stats_.lossDecreases;
  } else if (loss >= kLossLow) {
    lossRate_ = current;
  } else {
    lossRate_ = std::min(config_.maxBitrate, uint64_t(std::ceil(double(lossRate_) * kLossGrowth)));
  }
}

}  // namespace kaiwa::bwe

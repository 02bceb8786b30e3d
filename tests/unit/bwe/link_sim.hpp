#pragma once
// A simulated path for the bandwidth estimator's tests, on a fake clock: a sender that paces 1200-byte packets at
// the estimate, a bottleneck link (capacity, drop-tail queue, propagation delay, random loss, reordering), and a
// receiver that sends transport-cc feedback every 50 ms on its own clock, back over a path that may lose it.
// Everything is deterministic for a seed.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <random>
#include <vector>

#include "bwe/estimator.hpp"
#include "rtp/transport_feedback.hpp"

namespace kaiwa::bwe::test {

struct LinkConfig {
  double capacityBps = 1'000'000;
  int64_t propagationMicros = 20'000;  // one way, each direction
  int64_t queueMicros = 300'000;       // the bottleneck's buffer, as time at its capacity
  double loss = 0;                     // random loss before the bottleneck
  double reorder = 0;                  // share of packets delayed by up to reorderMicros more
  int64_t reorderMicros = 8'000;
  double feedbackLoss = 0;
  int64_t feedbackIntervalMicros = 50'000;
};

class LinkSim {
 public:
  static constexpr size_t kPacketBytes = 1200;
  // The receiver's clock is far from kaiwa's: only differences may be used.
  static constexpr int64_t kReceiverClockOffset = 987'654'321;

  LinkSim(BandwidthEstimator& estimator, LinkConfig config, uint32_t seed = 1)
      : estimator_(estimator), config_(config), rng_(seed) {}

  LinkConfig& config() { return config_; }
  int64_t nowMicros() const { return now_; }
  TimePoint now() const { return TimePoint{} + std::chrono::microseconds(now_); }
  // The sender's rate: the estimate by default.
  std::function<double()> sendRate;
  // Called after each feedback message the estimator took.
  std::function<void()> onFeedback;
  uint64_t dropped() const { return dropped_; }
  uint64_t sent() const { return sentCount_; }
  int64_t maxQueueMicros() const { return maxQueue_; }

  // Runs for `micros` of fake time in 1 ms steps.
  void run(int64_t micros) {
    const int64_t end = now_ + micros;
    while (now_ < end) {
      now_ += 1000;
      send();
      deliverFeedback();
      if (now_ >= nextFeedback_) {
        makeFeedback();
        nextFeedback_ = now_ + config_.feedbackIntervalMicros;
      }
    }
  }

  // Average estimate over the next `micros`, sampled each millisecond.
  double averageOver(int64_t micros) {
    double sum = 0;
    int n = 0;
    const int64_t end = now_ + micros;
    while (now_ < end) {
      run(1000);
      sum += double(estimator_.estimate());
      ++n;
    }
    return sum / n;
  }

 private:
  struct Arrival {
    int64_t sequence;
    int64_t at;
  };
  struct Feedback {
    int64_t at;
    std::vector<uint8_t> bytes;
  };

  void send() {
    const double rate = sendRate ? sendRate() : double(estimator_.estimate());
    budget_ = std::min(budget_ + rate / 8 * 0.001, 4.0 * kPacketBytes);
    std::uniform_real_distribution<double> u(0, 1);
    while (budget_ >= kPacketBytes) {
      budget_ -= kPacketBytes;
      const int64_t seq = nextSequence_++;
      ++sentCount_;
      estimator_.onPacketSent(uint16_t(seq), now(), kPacketBytes);
      if (u(rng_) < config_.loss) {
        ++dropped_;
        continue;
      }
      const int64_t start = std::max(now_, linkFree_);
      if (start - now_ > config_.queueMicros) {  // the queue is full: drop-tail
        ++dropped_;
        continue;
      }
      maxQueue_ = std::max(maxQueue_, start - now_);
      linkFree_ = start + int64_t(double(kPacketBytes) * 8e6 / config_.capacityBps);
      int64_t at = linkFree_ + config_.propagationMicros;
      if (u(rng_) < config_.reorder) at += int64_t(u(rng_) * double(config_.reorderMicros));
      arrivals_.push_back({seq, at});
    }
  }

  void makeFeedback() {
    int64_t highest = -1;
    for (const auto& a : arrivals_) {
      if (a.at <= now_) highest = std::max(highest, a.sequence);
    }
    if (highest < nextBase_) return;
    std::vector<Arrival> arrived;
    std::erase_if(arrivals_, [&](const Arrival& a) {
      if (a.sequence < nextBase_) return true;  // too late: already reported lost
      if (a.at > now_ || a.sequence > highest) return false;
      arrived.push_back(a);
      return true;
    });
    std::sort(arrived.begin(), arrived.end(), [](auto& a, auto& b) { return a.sequence < b.sequence; });
    std::optional<rtp::rtcp::TransportFeedbackBuilder> builder;
    auto flush = [&] {
      if (!builder || builder->empty()) return;
      std::vector<uint8_t> out(builder->size());
      builder->write(out);
      std::uniform_real_distribution<double> u(0, 1);
      if (u(rng_) >= config_.feedbackLoss) feedback_.push_back({now_ + config_.propagationMicros, std::move(out)});
      builder.reset();
    };
    for (const auto& a : arrived) {
      if (!builder) builder.emplace(rtp::rtcp::FeedbackHeader{1, 2}, uint8_t(feedbackCount_++));
      if (!builder->add(uint16_t(a.sequence), a.at + kReceiverClockOffset)) {
        flush();
        builder.emplace(rtp::rtcp::FeedbackHeader{1, 2}, uint8_t(feedbackCount_++));
        builder->add(uint16_t(a.sequence), a.at + kReceiverClockOffset);
      }
    }
    flush();
    nextBase_ = highest + 1;
  }

  void deliverFeedback() {
    while (!feedback_.empty() && feedback_.front().at <= now_) {
      rtp::rtcp::CompoundReader r(feedback_.front().bytes);
      auto block = r.next();
      auto f = rtp::rtcp::TransportFeedback::parse(*block);
      estimator_.onFeedback(now(), *f);
      if (onFeedback) onFeedback();
      feedback_.erase(feedback_.begin());
    }
  }

  BandwidthEstimator& estimator_;
  LinkConfig config_;
  std::mt19937 rng_;
  int64_t now_ = 0;
  double budget_ = 0;
  int64_t nextSequence_ = 0;
  int64_t linkFree_ = 0;
  int64_t nextFeedback_ = 0;
  int64_t nextBase_ = 0;
  int64_t maxQueue_ = 0;
  uint64_t dropped_ = 0;
  uint64_t sentCount_ = 0;
  int feedbackCount_ = 0;
  std::vector<Arrival> arrivals_;
  std::vector<Feedback> feedback_;
};

}  // namespace kaiwa::bwe::test

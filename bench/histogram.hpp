// Log-linear latency histogram (HDR-like): exact below 128, then 64 linear sub-buckets per power of two, so
// any recorded value is reported within 1/64 (1.6 %) of itself. Fixed memory (~30 KB), no allocation on
// record().
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace kaiwa::bench {

class LatencyHistogram {
 public:
  static constexpr int kSubBits = 6;
  static constexpr int kSub = 1 << kSubBits;
  static constexpr int kBuckets = (64 - kSubBits) * kSub + kSub;

  LatencyHistogram() : counts_(kBuckets, 0) {}

  void record(uint64_t v) {
    ++counts_[size_t(index(v))];
    ++count_;
    sum_ += double(v);
    max_ = std::max(max_, v);
    min_ = std::min(min_, v);
  }

  void merge(const LatencyHistogram& o) {
    for (int i = 0; i < kBuckets; ++i) counts_[size_t(i)] += o.counts_[size_t(i)];
    count_ += o.count_;
    sum_ += o.sum_;
    max_ = std::max(max_, o.max_);
    min_ = std::min(min_, o.min_);
  }

  uint64_t count() const { return count_; }
  uint64_t max() const { return count_ ? max_ : 0; }
  uint64_t min() const { return count_ ? min_ : 0; }
  double mean() const { return count_ ? sum_ / double(count_) : 0.0; }

  // Value at quantile q in [0, 1]: the middle of the bucket holding the ceil(q * count)-th value, clamped to
  // the recorded min/max.
  uint64_t quantile(double q) const {
    if (count_ == 0) return 0;
    uint64_t rank = uint64_t(std::ceil(q * double(count_)));
    rank = std::clamp<uint64_t>(rank, 1, count_);
    uint64_t seen = 0;
    for (int i = 0; i < kBuckets; ++i) {
      seen += counts_[size_t(i)];
      if (seen >= rank) {
        const uint64_t mid = lowerBound(i) + (width(i) - 1) / 2;
        return std::clamp(mid, min_, max_);
      }
    }
    return max_;
  }

  static int index(uint64_t v) {
    if (v < uint64_t(2 * kSub)) return int(v);
    const int msb = 63 - __builtin_clzll(v);
    const int shift = msb - kSubBits;
    return shift * kSub + int(v >> shift);
  }
  static uint64_t lowerBound(int idx) {
    if (idx < 2 * kSub) return uint64_t(idx);
    const int shift = idx / kSub - 1;
    return uint64_t(idx - shift * kSub) << shift;
  }
  static uint64_t width(int idx) {
    if (idx < 2 * kSub) return 1;
    return uint64_t(1) << (idx / kSub - 1);
  }

 private:
  std::vector<uint64_t> counts_;
  uint64_t count_ = 0;
  double sum_ = 0;
  uint64_t max_ = 0;
  uint64_t min_ = UINT64_MAX;
};

}  // namespace kaiwa::bench

#include "rtp/nack_generator.hpp"

#include <algorithm>

#include "rtp/sequence.hpp"

namespace kaiwa::rtp {

NackGenerator::NackGenerator(NackConfig config) : config_(config), rtt_(config.defaultRtt) {
  config_.maxListSize = std::max<size_t>(config_.maxListSize, 1);
  config_.maxPacketAge = std::min<uint16_t>(config_.maxPacketAge, 0x7FFF);
  ring_.resize(config_.maxListSize);
}

void NackGenerator::clear() {
  head_ = 0;
  size_ = 0;
  active_ = 0;
}

void NackGenerator::compact() {
  size_t kept = 0;
  for (size_t i = 0; i < size_; ++i) {
    const Entry e = at(i);
    if (e.active) at(kept++) = e;
  }
  size_ = kept;
}

void NackGenerator::giveUp(Entry& e) {
  e.active = false;
  --active_;
  ++stats_.givenUp;
  if (config_.keyframeOnGiveUp) keyframeNeeded_ = true;
}

void NackGenerator::forgetBefore(int64_t seq, bool countAsGivenUp) {
  while (size_ > 0 && at(0).seq < seq) {
    Entry& e = at(0);
    if (e.active) {
      if (countAsGivenUp) {
        giveUp(e);
      } else {
        e.active = false;
        --active_;
      }
    }
    head_ = (head_ + 1) % ring_.size();
    --size_;
  }
  if (size_ == 0) head_ = 0;
}

void NackGenerator::dropInactiveHead() {
  while (size_ > 0 && !at(0).active) {
    head_ = (head_ + 1) % ring_.size();
    --size_;
  }
  if (size_ == 0) head_ = 0;
}

std::optional<size_t> NackGenerator::find(int64_t seq) const {
  // The ring is sorted by sequence number: binary search over the logical indexes.
  size_t lo = 0, hi = size_;
  while (lo < hi) {
    const size_t mid = lo + (hi - lo) / 2;
    if (at(mid).seq < seq) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  if (lo < size_ && at(lo).seq == seq && at(lo).active) return lo;
  return std::nullopt;
}

NackGenerator::Arrival NackGenerator::onPacket(uint16_t seq, TimePoint now, bool keyframeStart) {
  if (!started_) {
    started_ = true;
    newest_ = 0x10000 + int64_t(seq);  // one cycle up, so that late packets of the first cycle stay positive
    if (keyframeStart) keyframeNeeded_ = false;
    return Arrival::kFirst;
  }
  const int64_t ext = newest_ + sequenceDelta(seq, uint16_t(newest_));
  Arrival arrival;
  if (ext > newest_) {
    const int64_t gap = ext - newest_ - 1;
    if (gap == 0) {
      arrival = Arrival::kInOrder;
    } else if (size_t(gap) + active_ > config_.maxListSize) {
      clear();
      ++stats_.overflows;
      keyframeNeeded_ = true;
      arrival = Arrival::kOverflow;
    } else {
      for (int64_t s = newest_ + 1; s < ext; ++s) {
        if (size_ == ring_.size()) compact();
        Entry& e = at(size_++);
        e = Entry{s, now, 0, true};
        ++active_;
      }
      arrival = Arrival::kAfterGap;
    }
    newest_ = ext;
    forgetBefore(newest_ - config_.maxPacketAge, true);
  } else if (auto i = find(ext)) {
    Entry& e = at(*i);
    e.active = false;
    --active_;
    ++stats_.recovered;
    arrival = Arrival::kRecovered;
    dropInactiveHead();
  } else {
    arrival = Arrival::kLate;
  }
  if (keyframeStart) {
    forgetBefore(ext, false);
    keyframeNeeded_ = false;
  }
  return arrival;
}

size_t NackGenerator::collect(TimePoint now, std::span<uint16_t> out) {
  size_t n = 0;
  for (size_t i = 0; i < size_ && n < out.size(); ++i) {
    Entry& e = at(i);
    if (!e.active || due(e) > now) continue;
    if (e.tries >= config_.maxRetries) {
      giveUp(e);
      continue;
    }
    out[n++] = uint16_t(e.seq);
    ++e.tries;
    e.since = now;
    ++stats_.requested;
  }
  dropInactiveHead();
  return n;
}

std::optional<TimePoint> NackGenerator::nextDue() const {
  std::optional<TimePoint> next;
  for (size_t i = 0; i < size_; ++i) {
    const Entry& e = at(i);
    if (e.active && (!next || due(e) < *next)) next = due(e);
  }
  return next;
}

void NackGenerator::onKeyframeRequested() {
  clear();
  keyframeNeeded_ = false;
}

}  // namespace kaiwa::rtp

#include "bwe/feedback_generator.hpp"

#include <chrono>

#include "rtp/sequence.hpp"
#include "rtp/transport_feedback.hpp"

namespace kaiwa::bwe {

void FeedbackGenerator::onPacket(uint32_t mediaSsrc, uint16_t transportSequence, TimePoint arrival) {
  int64_t ext = transportSequence;
  if (started_) {
    ext = highest_ + rtp::sequenceDelta(transportSequence, uint16_t(highest_));
  } else {
    started_ = true;
    highest_ = ext;
    nextBase_ = ext;
  }
  if (ext < nextBase_) {
    ++stats_.late;
    return;
  }
  if (ext - nextBase_ >= int64_t(kWindow)) {
    // Too far ahead: the oldest unreported numbers leave the window unreported.
    const int64_t base = ext - int64_t(kWindow) + 1;
    for (int64_t s = nextBase_; s < base && s <= highest_; ++s) {
      if (slots_[size_t(s) % kWindow].received) ++stats_.skipped;
      slots_[size_t(s) % kWindow] = {};
    }
    nextBase_ = base;
  }
  Slot& slot = slots_[size_t(ext) % kWindow];
  if (slot.received) {
    ++stats_.duplicates;
    return;
  }
  slot = {std::chrono::duration_cast<std::chrono::microseconds>(arrival.time_since_epoch()).count(), true};
  if (ext > highest_) highest_ = ext;
  mediaSsrc_ = mediaSsrc;
  ++stats_.recorded;
  if (!firstPending_) firstPending_ = arrival;
}

std::optional<TimePoint> FeedbackGenerator::nextDeadline() const {
  if (!firstPending_) return std::nullopt;
  return lastMessage_ ? std::max(*lastMessage_ + interval_, *firstPending_) : *firstPending_ + interval_;
}

std::optional<size_t> FeedbackGenerator::poll(TimePoint now, std::span<uint8_t> out) {
  const auto due = nextDeadline();
  if (!due || now < *due) return std::nullopt;
  // The first received packet from the base on starts the message (a message cannot start with a lost packet).
  while (nextBase_ <= highest_ && !slots_[size_t(nextBase_) % kWindow].received) ++nextBase_;
  if (nextBase_ > highest_) {
    firstPending_.reset();
    return std::nullopt;
  }
  rtp::rtcp::TransportFeedbackBuilder builder({senderSsrc_, mediaSsrc_}, feedbackCount_);
  int64_t s = nextBase_;
  for (; s <= highest_; ++s) {
    const Slot& slot = slots_[size_t(s) % kWindow];
    if (!slot.received) continue;
    if (!builder.add(uint16_t(s), slot.arrivalMicros)) break;
  }
  const auto written = builder.write(out);
  if (!written) return std::nullopt;
  // Reported: those numbers are free for the packets that come after the window.
  for (int64_t r = nextBase_; r < s; ++r) slots_[size_t(r) % kWindow] = {};
  nextBase_ = s;
  ++feedbackCount_;
  ++stats_.messages;
  if (nextBase_ > highest_) {
    firstPending_.reset();
    lastMessage_ = now;
  }
  return written;
}

}  // namespace kaiwa::bwe

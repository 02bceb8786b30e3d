#include "sfu/send_queue.hpp"

#include <algorithm>

#include "srtp/session.hpp"

namespace kaiwa::sfu {

static_assert(SendPool::kBufferSize >= SendPool::kMaxPacket + srtp::kMaxTrailer);
static_assert(SendPool::kBufferSize % 16 == 0);

SendPool::SendPool(size_t buffers) {
  buffers = std::clamp<size_t>(buffers, 1, kNone);
  // For overwrite: zeroing would make every page resident at once, and the point of the stack is that only the
  // buffers ever used at the same time are.
  blocks_ = std::make_unique_for_overwrite<Block[]>(buffers * kBufferSize / sizeof(Block));
  free_.resize(buffers);
  // The top of the stack is index 0, then 1...: the first buffers used are the first pages.
  for (size_t i = 0; i < buffers; ++i) free_[i] = uint16_t(buffers - 1 - i);
  top_ = buffers;
}

uint16_t SendPool::acquire() {
  if (top_ == 0) return kNone;
  const uint16_t index = free_[--top_];
  peak_ = std::max(peak_, free_.size() - top_);
  return index;
}

void SendPool::release(uint16_t index) { free_[top_++] = index; }

SendQueue::SendQueue(SendPool& pool, size_t capacity) : pool_(&pool), entries_(std::max<size_t>(capacity, 1)) {}

SendQueue::SendQueue(SendQueue&& other) noexcept
    : pool_(other.pool_), entries_(std::move(other.entries_)), head_(other.head_), count_(other.count_),
      video_(other.video_) {
  // The moved-from queue holds nothing, so its destructor releases nothing.
  other.entries_.clear();
  other.head_ = other.count_ = other.video_ = 0;
}

SendQueue::~SendQueue() {
  for (size_t i = 0; i < count_; ++i) pool_->release(at(i).buffer);
}

void SendQueue::push(uint16_t buffer, size_t length, uint32_t videoTrack) {
  at(count_) = Entry{buffer, uint16_t(length), videoTrack};
  ++count_;
  if (videoTrack != 0) ++video_;
}

uint32_t SendQueue::dropNewestVideo() {
  if (video_ == 0) return 0;
  size_t i = count_;
  while (i-- > 0) {
    if (at(i).videoTrack != 0) break;
  }
  const Entry dropped = at(i);
  // The packets after it (audio, or video of no track) move up one place: the order of the rest is kept.
  for (size_t j = i; j + 1 < count_; ++j) at(j) = at(j + 1);
  --count_;
  --video_;
  pool_->release(dropped.buffer);
  return dropped.videoTrack;
}

}  // namespace kaiwa::sfu

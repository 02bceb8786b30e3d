#pragma once
// Where outgoing RTP waits between the router and the socket. The bytes live in a SendPool, one per worker, shared by
// every subscriber of every router on that worker; a subscriber's SendQueue holds only small descriptors (a buffer
// index, a length, the video track a packet belongs to). A packet is queued during a receive round and sent when the
// round's flush drains its queue, which hands the buffer back at once: the pool holds what one round (or a flush
// that came early because the pool ran low) fans out, not a second of every subscriber's video.
//
// The pool hands out the buffer freed last first (a stack), so the memory it touches is the most that was ever in
// flight at once, and its untouched pages are never made resident; a ring per subscriber touched all of its slots
// as it turned (256 x 1664 B = 416 KiB per subscriber).
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

namespace kaiwa::sfu {

class SendPool {
 public:
  static constexpr size_t kMaxPacket = 1500;
  // A 1500-byte packet plus the SRTP trailer (srtp::kMaxTrailer, 144) that sfu::Transport::sendRtp protects into,
  // rounded up to 16 so that every buffer is 16-byte aligned.
  static constexpr size_t kBufferSize = 1664;
  // 4096 x 1664 B = 6.5 MiB of address space per worker, resident only as far as it was ever used at once.
  static constexpr size_t kDefaultBuffers = 4096;
  static constexpr uint16_t kNone = 0xFFFF;

  explicit SendPool(size_t buffers = kDefaultBuffers);
  SendPool(const SendPool&) = delete;
  SendPool& operator=(const SendPool&) = delete;

  // A free buffer's index, or kNone when every buffer is in a queue.
  uint16_t acquire();
  void release(uint16_t index);
  std::span<uint8_t> buffer(uint16_t index) {
    return {reinterpret_cast<uint8_t*>(blocks_.get()) + size_t(index) * kBufferSize, kBufferSize};
  }
  size_t available() const { return top_; }
  size_t capacity() const { return free_.size(); }
  // The most buffers that were ever in use at once: what the pool made resident.
  size_t peak() const { return peak_; }

 private:
  struct alignas(16) Block {
    uint8_t bytes[16];
  };
  std::unique_ptr<Block[]> blocks_;
  std::vector<uint16_t> free_;  // a stack of free indices; the top is the one released last
  size_t top_ = 0;
  size_t peak_ = 0;
};

// One subscriber's packets in order, as descriptors into the pool; at most `capacity` of them. Releases what it
// still holds when it goes.
class SendQueue {
 public:
  static constexpr size_t kMaxPacket = SendPool::kMaxPacket;
  static constexpr size_t kSlotSize = SendPool::kBufferSize;

  SendQueue(SendPool& pool, size_t capacity);
  SendQueue(SendQueue&& other) noexcept;
  SendQueue& operator=(SendQueue&&) = delete;
  SendQueue(const SendQueue&) = delete;
  ~SendQueue();

  size_t size() const { return count_; }
  size_t capacity() const { return entries_.size(); }
  bool full() const { return count_ == entries_.size(); }
  // Queued packets that belong to a video track.
  size_t video() const { return video_; }
  // Appends a buffer of the pool holding `length` bytes; `videoTrack` names its video track (0 for audio and
  // anything else that must not be given up for audio). The queue must not be full.
  void push(uint16_t buffer, size_t length, uint32_t videoTrack);
  // Gives up the newest queued video packet (its buffer goes back to the pool) and returns its track; 0 if the queue
  // holds no video.
  uint32_t dropNewestVideo();
  // Calls f(buffer, length) for each queued packet, oldest first, and empties the queue. The buffer (kSlotSize
  // bytes, valid during the call) may be protected in place; it returns to the pool after the call.
  template <class F>
  size_t drain(F&& f) {
    const size_t n = count_;
    for (size_t i = 0; i < n; ++i) {
      const Entry& e = entries_[(head_ + i) % entries_.size()];
      f(pool_->buffer(e.buffer), size_t(e.length));
      pool_->release(e.buffer);
    }
    head_ = 0;
    count_ = 0;
    video_ = 0;
    return n;
  }

 private:
  struct Entry {
    uint16_t buffer = 0;
    uint16_t length = 0;
    uint32_t videoTrack = 0;
  };
  Entry& at(size_t i) { return entries_[(head_ + i) % entries_.size()]; }

  SendPool* pool_;
  std::vector<Entry> entries_;
  size_t head_ = 0;
  size_t count_ = 0;
  size_t video_ = 0;
};

}  // namespace kaiwa::sfu

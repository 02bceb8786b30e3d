#pragma once
// RTP sequence numbers: comparison modulo 2^16 and the 16 → 64-bit extension of RFC 3550 appendix A.1 (probation
// of a new source, maximum dropout and misorder), which the receiver statistics and the SFU's per-stream state use.
#include <cstdint>

namespace kaiwa::rtp {

// a - b as the shortest signed distance on the 16-bit circle: positive when a is ahead of b.
inline int16_t sequenceDelta(uint16_t a, uint16_t b) { return static_cast<int16_t>(static_cast<uint16_t>(a - b)); }
// True when `a` comes after `b`. Exactly half a circle apart is ambiguous; the larger number is then taken as newer,
// so that the relation stays antisymmetric.
inline bool isNewer(uint16_t a, uint16_t b) {
  const uint16_t d = static_cast<uint16_t>(a - b);
  return d == 0x8000 ? a > b : d != 0 && d < 0x8000;
}
inline bool isOlder(uint16_t a, uint16_t b) { return isNewer(b, a); }

struct SequenceConfig {
  uint32_t minSequential = 2;  // packets in order before a new source counts as valid (MIN_SEQUENTIAL)
  uint32_t maxDropout = 3000;  // a forward jump up to this is loss, beyond it a suspected restart (MAX_DROPOUT)
  uint32_t maxMisorder = 100;  // a backward step up to this is reordering (MAX_MISORDER)
};

// Per-source state of RFC 3550 appendix A.1. Every call returns what the packet is, and for accepted packets its
// extended sequence number (cycles * 65536 + seq, the first packet's cycle counting as 1 so that packets from
// before it stay positive); a packet that arrives late before a wrap gets the index of the previous cycle, so the
// index of a late packet is always below the maximum.
class SequenceUnwrapper {
 public:
  enum class Verdict : uint8_t {
    kInOrder,    // the newest so far (possibly after a gap)
    kLate,       // reordered or duplicated, within maxMisorder of the maximum (or a late jump)
    kProbation,  // the source is not valid yet (fewer than minSequential packets in order)
    kBadJump,    // a jump beyond maxDropout: dropped, unless the next packet follows it (then a restart)
  };
  struct Update {
    Verdict verdict;
    int64_t extended;  // meaningful for kInOrder, kLate and kProbation
  };

  explicit SequenceUnwrapper(SequenceConfig config = {}) : config_(config) {}

  Update update(uint16_t seq);

  bool started() const { return started_; }
  // The highest extended sequence number accepted so far, and the first one after the source became valid.
  int64_t maxExtended() const { return maxExtended_; }
  int64_t baseExtended() const { return base_; }
  // RFC 3550 appendix A.3: packets expected since the base, received (valid ones, duplicates included), and lost
  // (negative when duplicates outnumber losses).
  int64_t expected() const { return started_ && probation_ == 0 ? maxExtended_ - base_ + 1 : 0; }
  uint64_t received() const { return received_; }
  int64_t cumulativeLost() const { return expected() - int64_t(received_); }

 private:
  void restart(uint16_t seq);

  SequenceConfig config_;
  bool started_ = false;
  uint32_t probation_ = 0;
  uint16_t maxSeq_ = 0;
  int64_t maxExtended_ = 0;
  int64_t base_ = 0;
  uint32_t badSeq_ = 0x10000;  // an impossible 16-bit value: no jump is pending
  uint64_t received_ = 0;
};

}  // namespace kaiwa::rtp

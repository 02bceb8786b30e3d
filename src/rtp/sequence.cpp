#include "rtp/sequence.hpp"

namespace kaiwa::rtp {

void SequenceUnwrapper::restart(uint16_t seq) {
  // init_seq of appendix A.1, keeping the cycle count so that extended numbers never go back after a restart.
  int64_t next = (maxExtended_ & ~int64_t(0xFFFF)) + seq;
  if (next < maxExtended_) next += 0x10000;
  maxExtended_ = next;
  maxSeq_ = seq;
  base_ = maxExtended_;
  badSeq_ = 0x10000;
  received_ = 0;
}

SequenceUnwrapper::Update SequenceUnwrapper::update(uint16_t seq) {
  if (!started_) {
    started_ = true;
    maxSeq_ = uint16_t(seq - 1);
    maxExtended_ = int64_t(seq) - 1 + 0x10000;  // one cycle up, so that late packets of the first cycle stay >= 0
    base_ = maxExtended_ + 1;
    probation_ = config_.minSequential;
  }
  const uint16_t udelta = uint16_t(seq - maxSeq_);
  if (probation_ > 0) {
    if (seq == uint16_t(maxSeq_ + 1)) {
      --probation_;
      maxSeq_ = seq;
      maxExtended_ += 1;
      if (probation_ == 0) {
        restart(seq);
        ++received_;
        return {Verdict::kInOrder, maxExtended_};
      }
    } else {
      probation_ = config_.minSequential > 0 ? config_.minSequential - 1 : 0;
      maxExtended_ += sequenceDelta(seq, maxSeq_);
      maxSeq_ = seq;
      if (probation_ == 0) {
        restart(seq);
        ++received_;
        return {Verdict::kInOrder, maxExtended_};
      }
    }
    return {Verdict::kProbation, maxExtended_};
  }
  if (udelta == 0) {
    ++received_;
    return {Verdict::kLate, maxExtended_};  // a duplicate of the newest
  }
  if (udelta < config_.maxDropout) {
    maxSeq_ = seq;
    maxExtended_ += udelta;
    ++received_;
    return {Verdict::kInOrder, maxExtended_};
  }
  if (udelta <= 0x10000 - config_.maxMisorder) {
    // A very large jump: two packets in a row after it mean the sender restarted its sequence.
    if (seq == badSeq_) {
      restart(seq);
      ++received_;
      return {Verdict::kInOrder, maxExtended_};
    }
    badSeq_ = uint16_t(seq + 1);
    return {Verdict::kBadJump, 0};
  }
  ++received_;
  return {Verdict::kLate, maxExtended_ - int64_t(0x10000 - udelta)};
}

}  // namespace kaiwa::rtp

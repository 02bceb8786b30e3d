#pragma once
// The receiver side of NACK (RFC 4585 section 6.2.1), towards a publisher: it watches the sequence numbers that
// arrive, keeps the missing ones, says which to ask for and when, and says when the loss is beyond repair so that a
// keyframe should be asked for instead. Sans-I/O: the caller passes `now` and runs a timer that calls collect().
//
// A hole is first asked for after a short reorder delay (most reordering is shorter, and a NACK for a packet that
// is merely late costs a retransmission), then again every retry interval (the RTT, at least minRetryInterval) until
// it arrives, it has been asked for maxRetries times, or it falls more than maxPacketAge sequence numbers behind the
// newest. The list is a ring of maxListSize entries allocated once; a gap that does not fit empties it and asks for
// a keyframe.
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "common/clock.hpp"

namespace kaiwa::rtp {

struct NackConfig {
  Millis reorderDelay{10};
  Millis defaultRtt{100};
  Millis minRetryInterval{20};
  uint32_t maxRetries = 10;
  uint16_t maxPacketAge = 10000;  // sequence numbers behind the newest; kept below 2^15 so unwrapping stays exact
  size_t maxListSize = 1000;
  // An unrecovered packet (given up after maxRetries or aged out) leaves the decoder broken until a keyframe.
  bool keyframeOnGiveUp = true;
};

class NackGenerator {
 public:
  enum class Arrival : uint8_t {
    kFirst,      // the first packet of the stream
    kInOrder,    // the newest, right after the previous newest
    kAfterGap,   // the newest, after a gap whose numbers are now missing
    kRecovered,  // one that was missing (a late or retransmitted packet)
    kLate,       // older than the newest and not missing: a duplicate, or given up already
    kOverflow,   // the newest, after a gap too large to track: the list was emptied and a keyframe is needed
  };
  struct Stats {
    uint64_t requested = 0;  // sequence numbers handed out by collect(), retries included
    uint64_t recovered = 0;
    uint64_t givenUp = 0;
    uint64_t overflows = 0;
  };

  explicit NackGenerator(NackConfig config = {});

  // Every packet received for the stream, retransmissions (their original sequence number) included. A packet that
  // starts a keyframe makes every older hole useless to the decoder: those are forgotten, and so is a pending
  // keyframe need.
  Arrival onPacket(uint16_t seq, TimePoint now, bool keyframeStart = false);
  // The sequence numbers to NACK now, oldest first, at most out.size() (the rest stay due). Each counts as a try.
  size_t collect(TimePoint now, std::span<uint16_t> out);
  // When collect() next has something to hand out; nullopt when nothing is missing.
  std::optional<TimePoint> nextDue() const;

  // Set when the loss is too much for NACK; the caller sends a PLI/FIR and then calls onKeyframeRequested().
  bool keyframeNeeded() const { return keyframeNeeded_; }
  // A keyframe was asked for: the holes before it no longer matter.
  void onKeyframeRequested();
  void setRtt(Millis rtt) { rtt_ = rtt; }

  size_t missing() const { return active_; }
  const Stats& stats() const { return stats_; }

 private:
  struct Entry {
    int64_t seq = 0;
    TimePoint since{};  // when it went missing, or when it was last asked for (once tries > 0)
    uint32_t tries = 0;
    bool active = false;
  };
  // Computed from the current RTT, so that a new RTT applies to the retries already waiting.
  TimePoint due(const Entry& e) const {
    return e.since + (e.tries == 0 ? config_.reorderDelay : Millis(retryInterval()));
  }
  Entry& at(size_t i) { return ring_[(head_ + i) % ring_.size()]; }
  const Entry& at(size_t i) const { return ring_[(head_ + i) % ring_.size()]; }
  Millis retryInterval() const { return rtt_ > config_.minRetryInterval ? rtt_ : config_.minRetryInterval; }
  void clear();
  void compact();
  void giveUp(Entry& e);
  void forgetBefore(int64_t seq, bool countAsGivenUp);
  void dropInactiveHead();
  // The logical index of the entry for `seq`, if it is on the list and still missing.
  std::optional<size_t> find(int64_t seq) const;

  NackConfig config_;
  std::vector<Entry> ring_;
  size_t head_ = 0;    // the oldest slot in use
  size_t size_ = 0;    // slots in use, recovered ones (inactive) included until they reach the head
  size_t active_ = 0;  // still missing
  bool started_ = false;
  int64_t newest_ = 0;
  Millis rtt_;
  bool keyframeNeeded_ = false;
  Stats stats_;
};

}  // namespace kaiwa::rtp

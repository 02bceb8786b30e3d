#pragma once
// The sender side of NACK: the last packets sent on one outgoing stream, by sequence number, to answer a NACK with
// (as they are, or wrapped in RTX with rtp::writeRtx). A ring of fixed-size slots allocated once, at construction:
// storing a packet is a copy into its slot, never an allocation.
//
// Default size: 512 slots of 1500 bytes (750 KiB). A 2.5 Mbit/s video stream of 1200-byte packets sends about 260
// packets per second, so 512 packets cover about two seconds: enough for a NACK to arrive after an RTT of a few
// hundred milliseconds and for the generator's retries (mediasoup keeps up to 2500, which at that rate is ten
// seconds of packets nobody asks for any more). Audio (50 packets per second) needs far fewer: a caller can
// configure 64. The byte bound caps memory whatever the count says.
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

namespace kaiwa::rtp {

struct RetransmissionConfig {
  size_t maxPackets = 512;
  size_t maxBytes = 512 * 1500;
};

class RetransmissionBuffer {
 public:
  // A slot holds any datagram of a 1500-byte Ethernet MTU: Chromium's packets are at most about 1200 bytes, other
  // senders (GStreamer, OBS) go up to 1400.
  static constexpr size_t kSlotSize = 1500;

  enum class StoreResult : uint8_t { kStored, kTooLarge, kTooOld };
  struct Stats {
    uint64_t stored = 0;
    uint64_t tooLarge = 0;
    uint64_t hits = 0;    // NACKed sequence numbers answered
    uint64_t misses = 0;  // NACKed sequence numbers no longer (or never) held
  };

  explicit RetransmissionBuffer(RetransmissionConfig config = {});

  // Stores a copy of `packet` (the RTP packet as sent, before SRTP) under `seq`. A packet that is newer than the
  // newest moves the window; an older one is stored if it is still inside the window.
  StoreResult store(uint16_t seq, std::span<const uint8_t> packet);
  // The stored packet, valid until the next store().
  std::optional<std::span<const uint8_t>> find(uint16_t seq) const;
  // Answers a NACK: calls send(seq, packet) for every asked sequence number still held; counts hits and misses.
  // Returns the number of packets found.
  template <class F>
  size_t answer(std::span<const uint16_t> seqs, F&& send) {
    size_t found = 0;
    for (uint16_t seq : seqs) {
      if (auto p = find(seq)) {
        ++found;
        ++stats_.hits;
        send(seq, *p);
      } else {
        ++stats_.misses;
      }
    }
    return found;
  }

  size_t capacity() const { return slots_.size(); }
  const Stats& stats() const { return stats_; }

 private:
  struct Slot {
    int64_t seq = -1;  // extended sequence number; -1 when empty
    uint16_t length = 0;
  };
  // The extended form of `seq` relative to the newest stored; nullopt while empty.
  std::optional<int64_t> extend(uint16_t seq) const;

  std::vector<Slot> slots_;
  std::vector<uint8_t> data_;
  int64_t newest_ = -1;
  Stats stats_;
};

}  // namespace kaiwa::rtp

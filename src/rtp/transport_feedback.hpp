#pragma once
// transport-cc feedback (draft-holmer-rmcat-transport-wide-cc-extensions-01 section 3.1): the packet status chunks
// and receive deltas that follow the fixed fields rtcp::TransportFeedback reads, walked one packet at a time, and a
// builder for the feedback kaiwa sends to publishers. Nothing here allocates or throws.
//
//   0                   1                   2                   3
//   0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |V=2|P|  FMT=15 |    PT=205     |           length              |
//  |                     SSRC of packet sender                     |
//  |                      SSRC of media source                     |
//  |      base sequence number     |      packet status count      |
//  |                 reference time                | fb pkt. count |
//  |          packet chunk         |         packet chunk          |
//  .                              ...                              .
//  |         packet chunk          |  recv delta   |  recv delta   |
//  .                              ...                              .
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// A chunk is 16 bits. Run length (bit 15 = 0): a 2-bit symbol and a 13-bit count of packets that all have it. Status
// vector (bit 15 = 1): bit 14 = 0 gives 14 one-bit symbols (0 not received, 1 received with a small delta), bit 14 =
// 1 gives 7 two-bit symbols. Symbols: 0 not received, 1 received with a small delta (one byte, unsigned, 250 us
// units), 2 received with a large or negative delta (two bytes, signed), 3 reserved. The first delta is from the
// reference time (24 bits, 64 ms units), each later one from the previous received packet.
#include <array>
#include <cstdint>
#include <optional>
#include <span>

#include "rtp/rtcp.hpp"

namespace kaiwa::rtp::rtcp {

inline constexpr int64_t kTccDeltaMicros = 250;
inline constexpr int64_t kTccReferenceMicros = 64000;

// One packet of a feedback message.
struct TccPacket {
  uint16_t sequence = 0;
  bool received = false;
  // Arrival time in microseconds on the feedback sender's clock: the reference time (as sent, 24-bit signed, times
  // 64 ms) plus the deltas so far. Meaningful only when received; the caller unwraps the reference time.
  int64_t arrivalMicros = 0;
};

// Walks the statuses and deltas of a transport-cc message. next() gives each of the statusCount packets in
// sequence order; it returns nullopt at the end or at the first malformed part, and failed() says which. parse()
// walks once to the end, so a message it accepts is walked cleanly again by a reader.
class TransportFeedbackReader {
 public:
  explicit TransportFeedbackReader(const TransportFeedback& f);
  // True when every chunk and every delta of the statusCount packets lies inside the message and no packet has the
  // reserved symbol.
  static bool valid(const TransportFeedback& f);

  std::optional<TccPacket> next();
  bool failed() const { return failed_; }

 private:
  bool loadChunk();
  std::optional<uint8_t> symbol();

  std::span<const uint8_t> chunks_;
  size_t chunkOffset_ = 0;  // next chunk byte
  size_t deltaOffset_ = 0;  // next delta byte, found once all chunks are read
  uint16_t remaining_;      // packets still to give
  uint16_t sequence_;
  int64_t arrival_;
  // The chunk being read.
  uint16_t chunk_ = 0;
  uint16_t chunkLeft_ = 0;  // symbols left in it
  uint16_t chunkIndex_ = 0;
  bool failed_ = false;
};

// Builds one transport-cc message from packets received in sequence order. A packet skipped between two added ones
// is reported as not received. add() returns false, adding nothing, when the packet does not belong in this message:
// not newer than the last, too many statuses, or a delta that does not fit 16 bits (more than 8 s); the caller then
// writes this message and starts the next with that packet. The first add() always succeeds.
class TransportFeedbackBuilder {
 public:
  // At most this many statuses per message: it keeps a message under 1210 bytes in the worst case (every status a
  // two-bit vector symbol with a two-byte delta).
  static constexpr size_t kMaxStatuses = 512;

  TransportFeedbackBuilder(FeedbackHeader header, uint8_t feedbackCount) : header_(header), count_(feedbackCount) {}

  bool add(uint16_t sequence, int64_t arrivalMicros);
  bool empty() const { return size_ == 0; }
  size_t statusCount() const { return size_; }
  // The bytes write() needs.
  size_t size() const;
  std::optional<size_t> write(std::span<uint8_t> out) const;

 private:
  // Symbol and delta (250 us units) of each status; symbol 0 = not received.
  std::array<uint8_t, kMaxStatuses> symbols_{};
  std::array<int16_t, kMaxStatuses> deltas_{};
  FeedbackHeader header_;
  uint8_t count_;
  size_t size_ = 0;
  uint16_t base_ = 0;
  int32_t reference_ = 0;  // 64 ms units
  int64_t lastTicks_ = 0;  // the previous received packet's arrival in 250 us units

  template <class F>
  void forEachChunk(F&& f) const;
};

}  // namespace kaiwa::rtp::rtcp

#include "rtp/transport_feedback.hpp"

#include "common/bytes.hpp"

namespace kaiwa::rtp::rtcp {

using common::be16;
using common::put16;
using common::put24;
using common::put32;

namespace {

// The number of statuses a chunk carries.
uint16_t chunkCapacity(uint16_t chunk) {
  if ((chunk & 0x8000) == 0) return chunk & 0x1FFF;
  return (chunk & 0x4000) ? 7 : 14;
}

// Floor division, so that arrival times before the clock's origin still fall in the right 250 us tick.
int64_t floorDiv(int64_t a, int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0)) ? 1 : 0); }

}  // namespace

TransportFeedbackReader::TransportFeedbackReader(const TransportFeedback& f)
    : chunks_(f.chunks), remaining_(f.statusCount), sequence_(f.baseSequence),
      arrival_(int64_t(f.referenceTime) * kTccReferenceMicros) {
  // The deltas start after the last chunk, so the chunks are counted first.
  size_t covered = 0;
  size_t offset = 0;
  while (covered < f.statusCount) {
    if (offset + 2 > chunks_.size()) {
      failed_ = true;
      remaining_ = 0;
      return;
    }
    covered += chunkCapacity(be16(chunks_.data() + offset));
    offset += 2;
  }
  deltaOffset_ = offset;
}

bool TransportFeedbackReader::valid(const TransportFeedback& f) {
  TransportFeedbackReader r(f);
  while (r.next()) {
  }
  return !r.failed();
}

bool TransportFeedbackReader::loadChunk() {
  // The constructor checked that the chunks covering every status lie inside the message.
  chunk_ = be16(chunks_.data() + chunkOffset_);
  chunkOffset_ += 2;
  chunkLeft_ = chunkCapacity(chunk_);
  chunkIndex_ = 0;
  return true;
}

std::optional<uint8_t> TransportFeedbackReader::symbol() {
  while (chunkLeft_ == 0) loadChunk();
  uint8_t s;
  if ((chunk_ & 0x8000) == 0) {
    s = (chunk_ >> 13) & 0x3;
  } else if ((chunk_ & 0x4000) == 0) {
    s = (chunk_ >> (13 - chunkIndex_)) & 0x1;
  } else {
    s = (chunk_ >> (12 - 2 * chunkIndex_)) & 0x3;
  }
  ++chunkIndex_;
  --chunkLeft_;
  if (s == 3) return std::nullopt;
  return s;
}

std::optional<TccPacket> TransportFeedbackReader::next() {
  if (remaining_ == 0 || failed_) return std::nullopt;
  auto fail = [this]() -> std::optional<TccPacket> {
    failed_ = true;
    remaining_ = 0;
    return std::nullopt;
  };
  const auto s = symbol();
  if (!s) return fail();
  TccPacket p;
  p.sequence = sequence_;
  if (*s == 1) {
    if (deltaOffset_ + 1 > chunks_.size()) return fail();
    arrival_ += int64_t(chunks_[deltaOffset_]) * kTccDeltaMicros;
    deltaOffset_ += 1;
  } else if (*s == 2) {
    if (deltaOffset_ + 2 > chunks_.size()) return fail();
    arrival_ += int64_t(int16_t(be16(chunks_.data() + deltaOffset_))) * kTccDeltaMicros;
    deltaOffset_ += 2;
  }
  p.received = *s != 0;
  p.arrivalMicros = arrival_;
  ++sequence_;
  --remaining_;
  return p;
}

bool TransportFeedbackBuilder::add(uint16_t sequence, int64_t arrivalMicros) {
  const int64_t ticks = floorDiv(arrivalMicros, kTccDeltaMicros);
  if (size_ == 0) {
    base_ = sequence;
    const int64_t reference = floorDiv(arrivalMicros, kTccReferenceMicros);
    // The reference time is 24 bits on the wire; a reader sign-extends it, so the builder keeps what it wrote.
    reference_ = int32_t(uint32_t(reference) << 8) >> 8;
    lastTicks_ = reference * (kTccReferenceMicros / kTccDeltaMicros);
  }
  const uint16_t offset = uint16_t(sequence - base_);
  if (size_ != 0 && (offset < size_ || offset >= 0x8000)) return false;  // not newer than the last
  if (size_t(offset) + 1 > kMaxStatuses) return false;
  const int64_t delta = ticks - lastTicks_;
  if (delta < INT16_MIN || delta > INT16_MAX) return false;
  for (size_t i = size_; i < offset; ++i) {
    symbols_[i] = 0;
    deltas_[i] = 0;
  }
  symbols_[offset] = (delta >= 0 && delta <= 255) ? 1 : 2;
  deltas_[offset] = int16_t(delta);
  size_ = size_t(offset) + 1;
  lastTicks_ = ticks;
  return true;
}

// Chooses the chunks greedily from the first status: a run of 14 or more equal symbols as a run length chunk, else
// 14 statuses that need only one bit as a one-bit vector, else a run of 7 or more as a run length, else a two-bit
// vector of 7. A vector may reach past the last status; the reader stops at the status count.
template <class F>
void TransportFeedbackBuilder::forEachChunk(F&& f) const {
  size_t i = 0;
  while (i < size_) {
    size_t run = 1;
    while (i + run < size_ && symbols_[i + run] == symbols_[i] && run < 0x1FFF) ++run;
    bool oneBit = true;
    for (size_t j = i; j < i + 14 && j < size_; ++j) oneBit = oneBit && symbols_[j] <= 1;
    if (run >= 14) {
      f(uint16_t(uint16_t(symbols_[i]) << 13 | run));
      i += run;
    } else if (oneBit) {
      uint16_t chunk = 0x8000;
      for (size_t j = 0; j < 14 && i + j < size_; ++j) chunk |= uint16_t(symbols_[i + j]) << (13 - j);
      f(chunk);
      i += 14;
    } else if (run >= 7) {
      f(uint16_t(uint16_t(symbols_[i]) << 13 | run));
      i += run;
    } else {
      uint16_t chunk = 0xC000;
      for (size_t j = 0; j < 7 && i + j < size_; ++j) chunk |= uint16_t(symbols_[i + j]) << (12 - 2 * j);
      f(chunk);
      i += 7;
    }
  }
}

size_t TransportFeedbackBuilder::size() const {
  size_t chunks = 0;
  forEachChunk([&](uint16_t) { ++chunks; });
  size_t deltas = 0;
  for (size_t i = 0; i < size_; ++i) deltas += symbols_[i];  // one byte for symbol 1, two for symbol 2
  const size_t body = kHeaderSize + 8 + 8 + 2 * chunks + deltas;
  return (body + 3) / 4 * 4;
}

std::optional<size_t> TransportFeedbackBuilder::write(std::span<uint8_t> out) const {
  if (size_ == 0) return std::nullopt;
  const size_t total = size();
  if (out.size() < total) return std::nullopt;
  uint8_t* p = out.data();
  p[0] = 0x80 | kFmtTransportCc;
  p[1] = uint8_t(PacketType::kRtpFeedback);
  put16(p + 2, uint16_t(total / 4 - 1));
  put32(p + 4, header_.senderSsrc);
  put32(p + 8, header_.mediaSsrc);
  put16(p + 12, base_);
  put16(p + 14, uint16_t(size_));
  put24(p + 16, uint32_t(reference_) & 0xFFFFFF);
  p[19] = count_;
  size_t at = 20;
  forEachChunk([&](uint16_t chunk) {
    put16(p + at, chunk);
    at += 2;
  });
  for (size_t i = 0; i < size_; ++i) {
    if (symbols_[i] == 1) {
      p[at++] = uint8_t(deltas_[i]);
    } else if (symbols_[i] == 2) {
      put16(p + at, uint16_t(deltas_[i]));
      at += 2;
    }
  }
  // The message ends on a 32-bit boundary with zero bytes; the reader ignores what follows the last delta.
  while (at < total) p[at++] = 0;
  return total;
}

}  // namespace kaiwa::rtp::rtcp

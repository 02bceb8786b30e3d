#include "rtp/retransmission_buffer.hpp"

#include <algorithm>
#include <cstring>

#include "rtp/sequence.hpp"

namespace kaiwa::rtp {

RetransmissionBuffer::RetransmissionBuffer(RetransmissionConfig config) {
  const size_t slots = std::max<size_t>(1, std::min(config.maxPackets, config.maxBytes / kSlotSize));
  slots_.resize(slots);
  data_.resize(slots * kSlotSize);
}

std::optional<int64_t> RetransmissionBuffer::extend(uint16_t seq) const {
  if (newest_ < 0) return std::nullopt;
  return newest_ + sequenceDelta(seq, uint16_t(newest_));
}

RetransmissionBuffer::StoreResult RetransmissionBuffer::store(uint16_t seq, std::span<const uint8_t> packet) {
  if (packet.size() > kSlotSize) {
    ++stats_.tooLarge;
    return StoreResult::kTooLarge;
  }
  // The first packet starts one cycle up, so that extended numbers of late packets stay positive.
  const int64_t ext = extend(seq).value_or(0x10000 + int64_t(seq));
  const auto window = int64_t(slots_.size());
  if (newest_ >= 0 && ext <= newest_ - window) return StoreResult::kTooOld;
  const size_t index = size_t(ext % window);
  slots_[index] = Slot{ext, uint16_t(packet.size())};
  if (!packet.empty()) std::memcpy(data_.data() + index * kSlotSize, packet.data(), packet.size());
  newest_ = std::max(newest_, ext);
  ++stats_.stored;
  return StoreResult::kStored;
}

std::optional<std::span<const uint8_t>> RetransmissionBuffer::find(uint16_t seq) const {
  const auto ext = extend(seq);
  const auto window = int64_t(slots_.size());
  if (!ext || *ext <= newest_ - window || *ext > newest_) return std::nullopt;
  const size_t index = size_t(*ext % window);
  if (slots_[index].seq != *ext) return std::nullopt;
  return std::span<const uint8_t>(data_.data() + index * kSlotSize, slots_[index].length);
}

}  // namespace kaiwa::rtp

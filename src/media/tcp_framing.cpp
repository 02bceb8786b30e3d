#include "media/tcp_framing.hpp"

#include <algorithm>
#include <cstring>

namespace kaiwa::media {

FrameReader::FrameReader(size_t maxFrame, size_t capacity)
    : maxFrame_(std::min<size_t>(maxFrame, 65535)), capacity_(std::max(capacity, maxFrame_ + kFrameHeader)) {}

std::span<uint8_t> FrameReader::space() {
  if (failed_) return {};
  if (buffer_.empty()) buffer_.resize(capacity_);
  if (start_ > 0 && capacity_ - end_ < maxFrame_ + kFrameHeader) {
    // Move what is left (a partial frame, once the caller took the whole ones) to the front, so that a frame of the
    // maximum always fits behind it.
    std::memmove(buffer_.data(), buffer_.data() + start_, end_ - start_);
    end_ -= start_;
    start_ = 0;
  }
  return std::span(buffer_).subspan(end_);
}

void FrameReader::commit(size_t n) { end_ += std::min(n, capacity_ - end_); }

FrameReader::Next FrameReader::next() {
  if (failed_) return {Status::kTooLarge, {}};
  for (;;) {
    const size_t have = end_ - start_;
    if (have < kFrameHeader) break;
    const size_t length = size_t(buffer_[start_]) << 8 | buffer_[start_ + 1];
    if (length > maxFrame_) {
      failed_ = true;
      return {Status::kTooLarge, {}};
    }
    if (have < kFrameHeader + length) break;
    std::span<uint8_t> frame(buffer_.data() + start_ + kFrameHeader, length);
    start_ += kFrameHeader + length;
    if (length == 0) continue;
    return {Status::kFrame, frame};
  }
  if (start_ == end_) start_ = end_ = 0;
  return {Status::kNeedMore, {}};
}

void FrameReader::release() {
  if (start_ != end_) return;
  start_ = end_ = 0;
  std::vector<uint8_t>().swap(buffer_);
}

}  // namespace kaiwa::media

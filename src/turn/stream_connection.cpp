#include "turn/stream_connection.hpp"

#include <algorithm>
#include <cstring>

#include "turn/server.hpp"

namespace kaiwa::turn {

StreamConnection::StreamConnection(TimePoint now, std::optional<tls::Session> tls)
    : tls_(std::move(tls)), in_(kTcpInitialBuffer), opened_(now), lastMessage_(now) {}

void StreamConnection::received(std::span<const uint8_t> bytes) {
  if (tls_) return tls_->feed(bytes);
  receivedPlaintext(bytes);
}

std::span<uint8_t> StreamConnection::receiveSpace() {
  compact();
  if (pipe_ && in_.size() < kPipeChunk) in_.resize(kPipeChunk);
  return {in_.data() + used_, in_.size() - used_};
}

void StreamConnection::receivedInPlace(size_t bytes) { used_ += std::min(bytes, in_.size() - used_); }

// Moves what is not handed out yet to the front of the buffer.
void StreamConnection::compact() {
  pos_ += handed_;
  handed_ = 0;
  if (pos_ == 0) return;
  std::memmove(in_.data(), in_.data() + pos_, used_ - pos_);
  used_ -= pos_;
  pos_ = 0;
}

// Over TLS: runs the handshake, or decrypts into the free part of in_. True if plaintext came.
bool StreamConnection::decryptMore() {
  if (!tls_ || tlsFailed_ || tlsClosed_) return false;
  if (!tls_->handshakeDone()) {
    tls::Status st = tls_->handshake();
    if (st == tls::Status::kError) tlsFailed_ = true;
    if (st != tls::Status::kOk) return false;
    if (!flushPending()) return false;
  }
  if (used_ == in_.size()) return false;  // full: the caller makes room first
  auto r = tls_->read({in_.data() + used_, in_.size() - used_});
  switch (r.status) {
    case tls::Status::kOk:
      used_ += r.bytes;
      return true;
    case tls::Status::kClosed:
      tlsClosed_ = true;
      return false;
    case tls::Status::kError:
      tlsFailed_ = true;
      return false;
    case tls::Status::kWantRead:
      return false;
  }
  return false;
}

// Messages queued before the handshake finished go out as records now, one per message.
bool StreamConnection::flushPending() {
  size_t pos = 0;
  while (pos < pending_.size()) {
    std::span<const uint8_t> rest(pending_.data() + pos, pending_.size() - pos);
    size_t len = rest.size();
    if (auto frame = tcpFrameLength(rest); frame && *frame > 0 && *frame <= rest.size()) len = *frame;
    if (tls_->write(rest.subspan(0, len)) != tls::Status::kOk) {
      tlsFailed_ = true;
      return false;
    }
    pos += len;
  }
  pending_.clear();
  return true;
}

StreamConnection::Next StreamConnection::next(TimePoint now) {
  using Kind = Next::Kind;
  if (pipe_) return {};
  bool handedBefore = handed_ > 0;
  pos_ += handed_;
  handed_ = 0;
  for (;;) {
    std::span<const uint8_t> rest(in_.data() + pos_, used_ - pos_);
    auto len = tcpFrameLength(rest);
    if (len && (*len == 0 || *len > kTcpMaxFrame)) return {Kind::kMalformed, {}};
    if (len && rest.size() >= *len) {
      handed_ = *len;
      lastMessage_ = now;
      return {Kind::kFrame, rest.subspan(0, *len)};
    }
    compact();
    if (len && *len > in_.size()) in_.resize(*len);  // a large frame: room for it
    if (!decryptMore()) break;
  }
  if (tlsFailed_) return {Kind::kTlsFailed, {}};
  if (tlsClosed_) return {Kind::kClosed, {}};  // a partial frame left can never be completed
  // The partial-frame clock starts when part of a message waits, and starts again when a message was completed.
  if (used_ == 0)
    partialSince_ = {};
  else if (handedBefore || partialSince_ == TimePoint{})
    partialSince_ = now;
  return {};
}

std::span<const uint8_t> StreamConnection::fromLastFrame() const { return {in_.data() + pos_, used_ - pos_}; }

void StreamConnection::receivedPlaintext(std::span<const uint8_t> bytes) {
  compact();
  if (in_.size() - used_ < bytes.size()) in_.resize(used_ + bytes.size());
  std::memcpy(in_.data() + used_, bytes.data(), bytes.size());
  used_ += bytes.size();
}

void StreamConnection::startPipe() {
  pipe_ = true;
  partialSince_ = {};
}

std::span<const uint8_t> StreamConnection::pipeBytes(bool& failed) {
  failed = false;
  if (!pipe_) return {};
  compact();
  if (used_ == 0 && tls_) {
    if (in_.size() < kPipeChunk) in_.resize(kPipeChunk);
    while (used_ < in_.size() && decryptMore()) {
    }
    failed = tlsFailed_ || (tlsClosed_ && used_ == 0);
  }
  handed_ = used_;
  return {in_.data(), used_};
}

bool StreamConnection::hasBuffered() const {
  return (tls_ && tls_->hasBuffered() && !tlsFailed_ && !tlsClosed_) || used_ > pos_ + handed_;
}

StreamConnection::SendResult StreamConnection::send(std::span<const uint8_t> head, std::span<const uint8_t> body,
                                                    size_t pad, std::vector<uint8_t>& scratch) {
  size_t size = head.size() + body.size() + pad;
  if (tls_ && tls_->handshakeDone() && pending_.empty()) {
    // One record per message, encrypted now; the records of a loop turn go out in one socket write.
    if (tlsFailed_) return SendResult::kFailed;
    if (tls_->output().size() + size > kMaxTcpBuffered) return SendResult::kOverflow;
    scratch.assign(head.begin(), head.end());
    scratch.insert(scratch.end(), body.begin(), body.end());
    scratch.insert(scratch.end(), pad, 0);
    if (tls_->write(scratch) != tls::Status::kOk) {
      tlsFailed_ = true;
      return SendResult::kFailed;
    }
    return SendResult::kQueued;
  }
  std::vector<uint8_t>& to = tls_ ? pending_ : out_;
  if (to.size() + size > kMaxTcpBuffered) return SendResult::kOverflow;
  to.insert(to.end(), head.begin(), head.end());
  to.insert(to.end(), body.begin(), body.end());
  to.insert(to.end(), pad, 0);
  return SendResult::kQueued;
}

std::optional<TcpTimeout> StreamConnection::expired(TimePoint now, bool hasAllocation,
                                                    const TcpTimeouts& limits) const {
  if (pipe_) return std::nullopt;
  auto past = [now](TimePoint since, Millis limit) { return limit.count() > 0 && now - since >= limit; };
  if (tls_ && !tls_->handshakeDone()) {
    if (past(opened_, limits.tlsHandshake)) return TcpTimeout::kTlsHandshake;
    return std::nullopt;
  }
  if (used_ > pos_ + handed_ && partialSince_ != TimePoint{} && past(partialSince_, limits.frame))
    return TcpTimeout::kPartialFrame;
  if (hasAllocation) return std::nullopt;
  if (!allocated_ && past(opened_, limits.allocate)) return TcpTimeout::kNoAllocation;
  if (allocated_ && past(lastMessage_, limits.idle)) return TcpTimeout::kIdle;
  return std::nullopt;
}

}  // namespace kaiwa::turn

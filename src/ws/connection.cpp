#include "ws/connection.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "common/metrics.hpp"

namespace kaiwa::ws {

Connection::Connection(const ConnectionOptions& options, Link& link, Events& events)
    : options_(options), link_(link), events_(events), reader_(options.maxMessageBytes) {}

bool Connection::open(std::string_view response, TimePoint now) {
  if (started_) return false;
  started_ = true;
  now_ = now;
  if (!write(response)) return false;
  opened_ = true;
  lastRx_ = now;
  return true;
}

void Connection::refuse(std::string_view response, TimePoint now) {
  if (started_) return;
  started_ = true;
  now_ = now;
  if (write(response)) enterDraining(now);
}

void Connection::receive(char* data, std::size_t size, TimePoint now, bool transportHolds) {
  now_ = now;
  if (state_ == State::kDead || !started_) return;
  if (state_ == State::kDraining) {
    // After the close handshake the peer's bytes are only drained, and only so many.
    drained_ += size;
    if (drained_ > options_.lingerBytes) die();
    return;
  }
  lastRx_ = now;
  pingSent_ = false;
  uint32_t before = completed_;
  if (size > 0) ingest(data, size);
  track(now, transportHolds, before);
}

void Connection::receiveEnd() {
  bool wasReading = reading();
  die();
  if (wasReading) notifyClosed();
}

void Connection::sent(TimePoint now) {
  now_ = now;
  maybeHalfClose(now);
}

void Connection::fail() { die(); }

void Connection::close(uint16_t code, std::string_view reason, TimePoint now) {
  if (state_ != State::kOpen || !opened_) return;
  now_ = now;
  state_ = State::kClosing;
  deadline_ = now + options_.closeTimeout;
  write(closeFrame(code, reason));
}

void Connection::resume(TimePoint now) {
  paused_ = false;
  now_ = now;
  if (rx_.empty() || !reading()) return;
  uint32_t before = completed_;
  ingest(nullptr, 0);
  track(now, false, before);
}

void Connection::tick(TimePoint now) {
  now_ = now;
  switch (state_) {
    case State::kOpen: {
      if (!opened_) return;
      if (messageSince_ != TimePoint{} && options_.messageTimeout.count() > 0 &&
          now - messageSince_ >= options_.messageTimeout) {
        // A message begun and not finished in time: its bytes are not held any longer.
        spdlog::debug("ws {}: a message unfinished for {} ms, closing", link_.peerName(),
                      options_.messageTimeout.count());
        std::string().swap(rx_);                          // (not under the reader: ticks come from the worker's timer)
        reader_ = FrameReader(options_.maxMessageBytes);  // and the fragments gathered so far
        messageSince_ = {};
        if (write(closeFrame(kClosePolicy, "message too slow"))) enterDraining(now);
        return;
      }
      auto idle = now - lastRx_;
      if (idle >= options_.pingTimeout) {
        spdlog::debug("ws {}: no data for {} ms, closing", link_.peerName(), options_.pingTimeout.count());
        die();
        notifyClosed();
      } else if (idle >= options_.pingTimeout / 2 && !pingSent_) {
        pingSent_ = true;
        constexpr char kPing[2] = {char(0x89), 0x00};
        write({kPing, 2});
      }
      return;
    }
    case State::kClosing:
      if (now >= deadline_) enterDraining(now);  // no close frame came back: give up waiting
      return;
    case State::kDraining:
      // Before the half-close: what is queued had its time to go out; after it: the linger is over.
      if (now >= deadline_) die();
      return;
    case State::kDead:
      return;
  }
}

TimePoint Connection::nextDeadline() const {
  switch (state_) {
    case State::kOpen: {
      if (!opened_) return TimePoint::max();
      TimePoint next = lastRx_ + (pingSent_ ? options_.pingTimeout : options_.pingTimeout / 2);
      if (messageSince_ != TimePoint{} && options_.messageTimeout.count() > 0)
        next = std::min(next, messageSince_ + options_.messageTimeout);
      return next;
    }
    case State::kClosing:
    case State::kDraining:
      return deadline_;
    case State::kDead:
      return TimePoint::max();
  }
  return TimePoint::max();
}

Connection::SendResult Connection::send(std::string_view payload, Opcode opcode) {
  if (state_ != State::kOpen || !opened_) return SendResult::kClosed;
  uint8_t header[kMaxHeaderBytes];
  std::size_t h = writeHeader(header, opcode, payload.size());
  if (!write({reinterpret_cast<const char*>(header), h}, payload)) return SendResult::kClosed;
  metrics::count(metrics::Count::kMessagesOut);
  return SendResult::kQueued;
}

// False when the connection is closed by it: the socket failed, or what it did not take passed the slow-consumer
// limit.
bool Connection::write(std::string_view a, std::string_view b) {
  if (state_ == State::kDead) return false;
  if (!link_.write(a, b)) {
    die();
    return false;
  }
  if (std::size_t queued = link_.queued(); queued > options_.maxQueuedBytes) {
    spdlog::info("ws {}: closed as a slow consumer ({} bytes queued)", link_.peerName(), queued);
    metrics::registry().drop(metrics::Drop::kSlowConsumer);
    die();
    return false;
  }
  return true;
}

// Parses the whole frames in what was read (in place when no partial frame is pending), keeps the rest.
void Connection::ingest(char* data, std::size_t size) {
  if (paused_) {  // parsed at resume()
    rx_.append(data, size);
    return;
  }
  if (rx_.empty() && size > 0) {
    std::size_t used = reader_.read(data, size, *this);
    if (used < size && reading() && !reader_.error() && !reader_.closed()) rx_.assign(data + used, size - used);
  } else {
    rx_.append(data, size);
    std::size_t used = reader_.read(rx_.data(), rx_.size(), *this);
    rx_.erase(0, used);
  }
  if (!reading() || reader_.error() || reader_.closed()) rx_.clear();
  if (rx_.empty() && rx_.capacity() > options_.keepCapacity) std::string().swap(rx_);
  if (uint16_t code = reader_.error(); code && reading()) {
    if (code == kCloseTooBig) metrics::registry().drop(metrics::Drop::kTooLarge);
    spdlog::debug("ws {}: protocol error, closing with {}", link_.peerName(), code);
    if (state_ == State::kOpen && !write(closeFrame(code, {}))) return;
    enterDraining(now_);
  }
}

// Starts or ends the clock of a message begun (ConnectionOptions::messageTimeout) after a read: bytes of an
// unfinished frame, of a fragmented message, or of a partial TLS record are held. A message finished during the read
// (`completed_` moved past `before`) means what is held now began in this read.
void Connection::track(TimePoint now, bool transportHolds, uint32_t before) {
  if (state_ != State::kOpen) return;
  bool unfinished = !rx_.empty() || reader_.pendingBytes() > 0 || transportHolds;
  if (!unfinished) {
    messageSince_ = {};
  } else if (messageSince_ == TimePoint{} || completed_ != before) {
    messageSince_ = now;
  }
}

bool Connection::onMessage(std::string_view payload, bool binary) {
  ++completed_;
  if (state_ == State::kOpen) events_.onMessage(payload, binary);
  return reading() && !paused_;  // while closing, messages are read and dropped until the close frame
}

void Connection::onPing(std::string_view payload) {
  if (reader_.pendingBytes() == 0) ++completed_;  // (between the fragments of a message, that message goes on)
  // Once our close frame is out, nothing follows it: a ping then goes unanswered.
  if (state_ != State::kOpen) return;
  uint8_t header[kMaxHeaderBytes];
  std::size_t h = writeHeader(header, Opcode::kPong, payload.size());
  write({reinterpret_cast<const char*>(header), h}, payload);
}

void Connection::onClose(uint16_t code, std::string_view) {
  peerCloseCode_ = code == kCloseNoStatus ? 0 : code;
  if (state_ == State::kOpen) {
    // Echo the close (RFC 6455 section 5.5.1), with its code when it had one.
    bool ok;
    if (code == kCloseNoStatus) {
      constexpr char kEmptyClose[2] = {char(0x88), 0x00};
      ok = write({kEmptyClose, 2});
    } else {
      ok = write(closeFrame(code, {}));
    }
    if (!ok) return;
  }
  enterDraining(now_);
}

void Connection::enterDraining(TimePoint now) {
  if (state_ == State::kDraining || state_ == State::kDead) return;
  state_ = State::kDraining;
  deadline_ = now + options_.closeTimeout;  // for what is queued to go out, then the linger's own
  notifyClosed();
  maybeHalfClose(now);
}

// Everything queued is out: a draining connection half-closes now.
void Connection::maybeHalfClose(TimePoint now) {
  if (state_ != State::kDraining || halfClosed_ || link_.queued() != 0) return;
  halfClosed_ = true;
  deadline_ = now + options_.lingerTime;
  link_.halfClose();
}

void Connection::die() {
  if (state_ == State::kDead) return;
  state_ = State::kDead;
  link_.closeSocket();
  // The partial frame goes with the socket, unless the reader is inside it right now (ingest() lets it go then).
}

void Connection::notifyClosed() {
  if (notified_ || !opened_) return;
  notified_ = true;
  events_.onClose();
}

}  // namespace kaiwa::ws

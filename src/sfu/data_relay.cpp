#include "sfu/data_relay.hpp"

#include <algorithm>

namespace kaiwa::sfu {

void DataRelay::open(std::string_view member) {
  if (busy_) {
    deferred_.push_back({Deferred::Op::kOpen, std::string(member), {}});
    return;
  }
  if (!isOpen(member)) members_.emplace_back(member);
}

void DataRelay::close(std::string_view member) {
  if (busy_) {
    deferred_.push_back({Deferred::Op::kClose, std::string(member), {}});
    return;
  }
  std::erase_if(members_, [&](const std::string& m) { return m == member; });
}

void DataRelay::runDeferred() {
  while (!deferred_.empty()) {
    Deferred d = std::move(deferred_.front());
    deferred_.pop_front();
    switch (d.op) {
      case Deferred::Op::kOpen:
        open(d.member);
        break;
      case Deferred::Op::kClose:
        close(d.member);
        break;
      case Deferred::Op::kReceive:
        receive(d.member, d.message);
        break;
    }
  }
}

bool DataRelay::isOpen(std::string_view member) const {
  return std::find(members_.begin(), members_.end(), member) != members_.end();
}

void DataRelay::receive(std::string_view from, std::span<const uint8_t> message) {
  if (busy_) {
    size_t waiting = 0;
    for (const Deferred& d : deferred_) waiting += d.op == Deferred::Op::kReceive ? 1 : 0;
    if (waiting >= kMaxDeferred) {
      ++counters_.messagesIn;
      ++counters_.deferredDropped;
      return;
    }
    deferred_.push_back({Deferred::Op::kReceive, std::string(from), {message.begin(), message.end()}});
    return;
  }
  busy_ = true;
  forward(from, message);
  busy_ = false;
  runDeferred();
}

void DataRelay::forward(std::string_view from, std::span<const uint8_t> message) {
  ++counters_.messagesIn;
  counters_.bytesIn += message.size();
  if (message.size() < 2 || (message[0] != kToAll && message[0] != kToOne) || !isOpen(from)) {
    ++counters_.malformed;
    return;
  }
  const size_t idLength = message[1];
  if (idLength > kMaxIdLength || message.size() < 2 + idLength || (message[0] == kToAll) != (idLength == 0)) {
    ++counters_.malformed;
    return;
  }
  const std::string_view to(reinterpret_cast<const char*>(message.data()) + 2, idLength);
  const std::span<const uint8_t> payload = message.subspan(2 + idLength);
  // The forwarded form names the sender, as its transport says.
  if (from.size() > kMaxIdLength) {
    ++counters_.malformed;
    return;
  }
  if (2 + from.size() + payload.size() > maxMessage_) {
    ++counters_.tooBig;
    return;
  }
  out_.clear();
  out_.push_back(kToAll);
  out_.push_back(uint8_t(from.size()));
  out_.insert(out_.end(), from.begin(), from.end());
  out_.insert(out_.end(), payload.begin(), payload.end());
  if (message[0] == kToOne) {
    if (to == from || !isOpen(to)) {
      // The sender hears of it at once (a file to that member fails now instead of waiting for an answer).
      ++counters_.unknownTarget;
      if (to != from) notify(from, to);
      return;
    }
    deliver(from, to);
    return;
  }
  for (const std::string& member : members_) {
    if (member != from) deliver(from, member);
  }
}

void DataRelay::deliver(std::string_view from, std::string_view to) {
  switch (io_.sendData(to, out_)) {
    case DataSendResult::kSent:
      ++counters_.delivered;
      counters_.bytesDelivered += out_.size();
      return;
    case DataSendResult::kBufferFull:
      ++counters_.bufferFull;
      notify(from, to);
      notify(to, from);
      return;
    case DataSendResult::kTooBig:
      ++counters_.tooBig;
      notify(from, to);
      return;
    case DataSendResult::kGone:
      ++counters_.unknownTarget;
      return;
  }
}

void DataRelay::notify(std::string_view to, std::string_view about) {
  std::vector<uint8_t> notice;
  notice.reserve(2 + about.size());
  notice.push_back(kDropped);
  notice.push_back(uint8_t(about.size()));
  notice.insert(notice.end(), about.begin(), about.end());
  if (io_.sendData(to, notice) != DataSendResult::kSent) ++counters_.noticesLost;
}

}  // namespace kaiwa::sfu

#include "signal/socketio/socket.hpp"

#include <boost/json.hpp>

#include "common/json_text.hpp"
#include "common/metrics.hpp"
#include "signal/names.hpp"

namespace kaiwa::signal::socketio {
namespace {

namespace json = boost::json;

// Every {"_placeholder":true,"num":k} of a binary packet names an attachment that came (0 <= k < count): a receiver's
// parser refuses the packet otherwise, so kaiwa must not relay it.
bool placeholdersValid(const json::value& v, std::size_t count) {
  switch (v.kind()) {
    case json::kind::array:
      for (const auto& e : v.get_array()) {
        if (!placeholdersValid(e, count)) return false;
      }
      return true;
    case json::kind::object: {
      const json::object& o = v.get_object();
      if (const json::value* p = o.if_contains("_placeholder"); p && p->is_bool() && p->get_bool()) {
        const json::value* n = o.if_contains("num");
        if (n && n->is_int64()) return n->get_int64() >= 0 && static_cast<uint64_t>(n->get_int64()) < count;
        if (n && n->is_uint64()) return n->get_uint64() < count;
        return false;
      }
      for (const auto& kv : o) {
        if (!placeholdersValid(kv.value(), count)) return false;
      }
      return true;
    }
    default:
      return true;
  }
}

}  // namespace

void Socket::onMessage(std::string_view data, bool binary, TimePoint now) {
  metrics::count(metrics::Count::kMessagesIn);
  metrics::count(metrics::Count::kBytesIn, data.size());
  if (binary) {
    SioPacket done;
    auto result = assembler_ ? assembler_->add(std::string(data), done) : BinaryAssembler::Result::kError;
    if (result != BinaryAssembler::Result::kNeedMore) assembler_.reset();
    switch (result) {
      case BinaryAssembler::Result::kNeedMore:
        return;
      case BinaryAssembler::Result::kComplete:
        onPacket(std::move(done), now);
        return;
      case BinaryAssembler::Result::kError:
        metrics::registry().drop(metrics::Drop::kMalformed);
        listener_.protocolError("bad attachment");
        return;
    }
    return;
  }
  if (assembler_ && assembler_->waiting()) {  // a text packet while attachments are due
    metrics::registry().drop(metrics::Drop::kMalformed);
    listener_.protocolError("attachments missing");
    return;
  }
  // The hot path: a relayed event, decoded and written out for its receivers in one pass, without a DOM. Anything
  // else (or anything malformed) goes the long way, which judges it.
  if (connected_ && data.size() >= 2 && data[0] == '2') {
    if (auto ev = decodeRelayEvent(data, id_.view(), config_.relayUnknownEvents)) {
      if (!limiter_.allow(now, config_.messagesPerSecond, config_.burst)) {
        metrics::registry().drop(metrics::Drop::kRateLimited);
        listener_.onRateLimited(ev->ackId, ev->event, now);
        return;
      }
      listener_.onRelayEvent(*ev, now);
      return;
    }
  }
  auto packet = decodePacket(data);
  if (!packet) {
    metrics::registry().drop(metrics::Drop::kMalformed);
    listener_.protocolError("parse error");
    return;
  }
  if (packet->attachments == 0) {  // as BinaryAssembler::start would return it, without making one
    packet->buffers.clear();
    onPacket(std::move(*packet), now);
    return;
  }
  // Made only while a packet waits for its attachments.
  if (!assembler_) assembler_ = std::make_unique<BinaryAssembler>(config_.maxPayload);
  if (auto ready = assembler_->start(std::move(*packet))) onPacket(std::move(*ready), now);
}

void Socket::onPacket(SioPacket p, TimePoint now) {
  switch (p.type) {
    case SioType::kConnect:
      onConnect(std::move(p), now);
      return;
    case SioType::kDisconnect:
      if (p.nsp == "/") disconnect();
      return;
    case SioType::kEvent:
    case SioType::kBinaryEvent: {
      if (!connected_ || p.nsp != "/") {
        metrics::registry().drop(metrics::Drop::kMalformed);
        return;
      }
      if (p.type == SioType::kBinaryEvent && !placeholdersValid(*p.data, p.buffers.size())) {
        metrics::registry().drop(metrics::Drop::kMalformed);
        listener_.protocolError("illegal attachments");
        return;
      }
      if (!limiter_.allow(now, config_.messagesPerSecond, config_.burst)) {
        metrics::registry().drop(metrics::Drop::kRateLimited);
        listener_.onRateLimited(p.ackId, p.data->as_array()[0].as_string(), now);
        return;
      }
      listener_.onEvent(std::move(p), now);
      return;
    }
    default:  // the server asks for no acks; CONNECT_ERROR comes from servers only
      metrics::registry().drop(metrics::Drop::kMalformed);
      return;
  }
}

void Socket::refuseConnect(std::string_view nsp, std::string_view message) {
  SioPacket refuse{
      SioType::kConnectError, std::string(nsp), {}, 0, json::value(json::object{{"message", message}}), {}};
  listener_.sendPacket(encodePacket(refuse));
}

void Socket::onConnect(SioPacket p, TimePoint now) {
  if (p.nsp != "/") {
    refuseConnect(p.nsp, "Invalid namespace");
    return;
  }
  if (connected_) return;
  // A CONNECT joins a room (the implicit one): it counts against the rate like an event, so that a client cycling
  // CONNECT and DISCONNECT is slowed down as one flooding events is.
  if (!limiter_.allow(now, config_.messagesPerSecond, config_.burst)) {
    metrics::registry().drop(metrics::Drop::kRateLimited);
    refuseConnect("/", "rate-limited: too many messages, slow down");
    return;
  }
  std::string_view token;
  if (p.data && p.data->is_object() && config_.keepAuthToken) {
    if (auto* t = p.data->as_object().if_contains("token");
        t && t->is_string() && !t->as_string().empty() && t->as_string().size() <= kMaxTokenBytes) {
      token = t->as_string();
    }
  }
  connected_ = true;
  id_ = SocketId(randomSocketId());
  std::string data = R"(0{"sid":)";
  common::appendJsonString(data, id_.view());
  data += '}';
  listener_.onConnected(token, std::move(data), now);
}

void Socket::disconnect() {
  if (!connected_) return;
  connected_ = false;
  assembler_.reset();
  listener_.onDisconnected();
}

}  // namespace kaiwa::signal::socketio

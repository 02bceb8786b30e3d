#include "signal/socketio/engineio.hpp"

#include <algorithm>

#include "common/metrics.hpp"

namespace kaiwa::signal::socketio::engineio {

std::string Session::openPacket(bool upgrades) const {
  std::string packet = "0";  // appended, not "0" + string&&: GCC 12 at -O3 warns (-Wrestrict) about the latter
  packet += encodeOpenData(sid_.view(), upgrades, config_.pingInterval.count(), config_.pingTimeout.count(),
                           config_.maxPayload);
  return packet;
}

void Session::startTimers(TimePoint now) {
  connectBy_ = now + config_.connectTimeout;
  schedulePing(now);
}

void Session::schedulePing(TimePoint now) {
  awaitingPong_ = false;
  pingDue_ = now + config_.pingInterval;
}

std::string Session::openPolling(TimePoint now) {
  poll_ = std::make_unique<Polling>();
  startTimers(now);
  return openPacket(true);
}

void Session::openWebSocket(LinkId link, TimePoint now) {
  ws_ = link;
  startTimers(now);
  listener_.sendFrame(ws_, openPacket(false), false);
}

Session::GetAnswer Session::onPollGet(TimePoint) {
  if (closed_ || ws_ != kNoLink || !poll_) return {GetAnswer::Kind::kBadRequest, {}};
  if (poll_->getHeld) {  // two long polls at once: the client is broken, as engine.io judges it
    close("overlapping polls", true);
    return {GetAnswer::Kind::kBadRequest, {}};
  }
  // While a WebSocket probe is on, a long poll returns at once (a noop if nothing waits), so that the client can
  // pause polling and finish the upgrade.
  if (!poll_->queue.empty() || poll_->upgrading) return {GetAnswer::Kind::kNow, takeQueue(poll_->upgrading)};
  poll_->getHeld = true;
  return {GetAnswer::Kind::kHold, {}};
}

Session::PostAnswer Session::onPollPost(std::string_view body, TimePoint now) {
  if (closed_) return PostAnswer::kUnknownSid;
  if (body.size() > config_.maxPayload) {
    metrics::registry().drop(metrics::Drop::kTooLarge);
    close("payload too large", true);
    return PostAnswer::kTooLarge;
  }
  auto packets = decodePayload(body);
  if (!packets) {
    metrics::registry().drop(metrics::Drop::kMalformed);
    close("parse error", true);
    return PostAnswer::kBadRequest;
  }
  for (auto& p : *packets) {
    if (closed_) break;
    onPacket(std::move(p), now);
  }
  return PostAnswer::kOk;
}

bool Session::attachProbe(LinkId link, TimePoint now) {
  if (closed_ || link == kNoLink || ws_ != kNoLink || !poll_ || probe_ != kNoLink) return false;
  probe_ = link;
  poll_->probeBy = now + config_.upgradeTimeout;
  return true;
}

void Session::onFrame(LinkId link, std::string_view frame, bool binary, TimePoint now) {
  if (closed_ || link == kNoLink) return;
  if (frame.size() > config_.maxPayload) {
    metrics::registry().drop(metrics::Drop::kTooLarge);
    if (link == ws_) {
      close("payload too large", false, kCloseTooBig);
    } else {
      listener_.closeLink(link, kCloseTooBig, "payload too large");
    }
    return;
  }
  if (link == ws_) {
    // A message goes up as it is, without a copy: the frame is "4<data>", or a binary message's bytes.
    if (binary) {
      listener_.onMessage(frame, true, now);
      return;
    }
    if (!frame.empty() && frame.front() == '4') {
      listener_.onMessage(frame.substr(1), false, now);
      return;
    }
  }
  auto packet = decodeFrame(frame, binary);
  if (link == probe_) {
    onProbeFrame(packet);
    return;
  }
  if (link != ws_) return;  // a stale transport
  if (!packet) {
    metrics::registry().drop(metrics::Drop::kMalformed);
    close("parse error", false, kClosePolicy);
    return;
  }
  onPacket(std::move(*packet), now);
}

void Session::onLinkClosed(LinkId link) {
  if (link == kNoLink) return;
  if (link == probe_) {
    probe_ = kNoLink;
    poll_->upgrading = false;
  } else if (link == ws_) {
    close("transport close", false);
  }
}

void Session::onProbeFrame(const std::optional<EioPacket>& p) {
  Polling& poll = *poll_;
  if (p && p->type == EioType::kPing && p->data == "probe" && !poll.upgrading) {
    poll.upgrading = true;
    listener_.sendFrame(probe_, "3probe", false);
    if (poll.getHeld) flushPoll(true);  // let the long poll return so that the client can finish the upgrade
    return;
  }
  if (p && p->type == EioType::kUpgrade && poll.upgrading) {
    ws_ = probe_;
    probe_ = kNoLink;
    if (poll.getHeld) {
      poll.getHeld = false;
      listener_.answerPoll("6");
    }
    auto queued = std::move(poll.queue);
    poll_.reset();  // a WebSocket session from now on
    listener_.onUpgraded();
    for (auto& q : queued) sendPacket(std::move(q));
    return;
  }
  metrics::registry().drop(metrics::Drop::kMalformed);
  listener_.closeLink(probe_, kClosePolicy, "bad upgrade");
  probe_ = kNoLink;
  poll.upgrading = false;
}

void Session::onPacket(EioPacket p, TimePoint now) {
  switch (p.type) {
    case EioType::kPong:
      if (awaitingPong_) schedulePing(now);
      return;
    case EioType::kClose:
      close("client close", false);
      return;
    case EioType::kMessage:
      listener_.onMessage(p.data, p.binary, now);
      return;
    case EioType::kPing:  // clients do not ping in v4; answer anyway, as engine.io does
      sendPacket(EioPacket{EioType::kPong, std::move(p.data), false});
      return;
    case EioType::kNoop:
      return;
    default:  // open or upgrade on an established transport
      metrics::registry().drop(metrics::Drop::kMalformed);
      close("unexpected packet", false, kClosePolicy);
      return;
  }
}

void Session::sendMessage(std::string text) { sendPacket(EioPacket{EioType::kMessage, std::move(text), false}); }

void Session::sendFrame(std::string_view frame, bool binary) {
  if (closed_) return;
  if (ws_ != kNoLink) {
    listener_.sendFrame(ws_, std::string(frame), binary);
    return;
  }
  if (!binary && !frame.empty()) frame.remove_prefix(1);  // the Engine.IO type, '4'
  sendPacket(EioPacket{EioType::kMessage, std::string(frame), binary});
}

void Session::sendPacket(EioPacket p) {
  if (closed_) return;
  if (ws_ != kNoLink) {
    bool binary = p.binary;
    listener_.sendFrame(ws_, encodeFrame(p), binary);
    return;
  }
  if (!poll_) return;
  poll_->queuedBytes += p.data.size() + 2;
  if (poll_->queuedBytes > config_.maxQueuedBytes) {
    metrics::registry().drop(metrics::Drop::kSlowConsumer);
    close("slow consumer", true);
    return;
  }
  poll_->queue.push_back(std::move(p));
  if (poll_->getHeld) flushPoll();
}

std::string Session::takeQueue(bool noopIfEmpty) {
  Polling& poll = *poll_;
  std::string body;
  for (const auto& q : poll.queue) appendToPayload(body, q);
  if (body.empty() && noopIfEmpty) body.push_back('6');  // not `body = "6"`: GCC 12 warns (-Wrestrict) about it
  metrics::count(metrics::Count::kMessagesOut, poll.queue.size());
  metrics::count(metrics::Count::kBytesOut, body.size());
  poll.queue.clear();
  poll.queuedBytes = 0;
  return body;
}

void Session::flushPoll(bool noopIfEmpty) {
  if (poll_->queue.empty() && !noopIfEmpty) return;
  poll_->getHeld = false;
  listener_.answerPoll(takeQueue(noopIfEmpty));
}

void Session::close(std::string_view why, bool sendClosePacket, uint16_t wsCode) {
  if (closed_) return;
  closed_ = true;
  if (poll_) {
    if (poll_->getHeld) {
      poll_->getHeld = false;
      listener_.answerPoll(sendClosePacket ? "1" : "6");
    }
    poll_->queue.clear();
  }
  if (ws_ != kNoLink) {
    if (sendClosePacket) listener_.sendFrame(ws_, "1", false);
    listener_.closeLink(ws_, wsCode, why);
  }
  if (probe_ != kNoLink) listener_.closeLink(probe_, wsCode, why);
  listener_.onClosed(why);
}

TimePoint Session::nextDeadline() const {
  if (closed_) return TimePoint::max();
  TimePoint next = pingDue_;
  if (!socketConnected_) next = std::min(next, connectBy_);
  if (probe_ != kNoLink) next = std::min(next, poll_->probeBy);
  return next;
}

void Session::tick(TimePoint now) {
  if (closed_) return;
  if (probe_ != kNoLink && now >= poll_->probeBy) {
    listener_.closeLink(probe_, kClosePolicy, "upgrade timeout");
    probe_ = kNoLink;
    poll_->upgrading = false;
  }
  if (!socketConnected_ && now >= connectBy_) {
    close("connect timeout", true);
    return;
  }
  if (now < pingDue_) return;
  if (!awaitingPong_) {
    sendPacket(EioPacket{EioType::kPing, {}, false});
    awaitingPong_ = true;
    pingDue_ = now + config_.pingTimeout;  // now the pong's deadline
  } else {
    close("ping timeout", false);
  }
}

}  // namespace kaiwa::signal::socketio::engineio

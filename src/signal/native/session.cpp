#include "signal/native/session.hpp"

#include <optional>

#include <spdlog/spdlog.h>

#include "auth/jwt.hpp"
#include "common/address.hpp"
#include "common/metrics.hpp"
#include "signal/names.hpp"
#include "ws/close_code.hpp"

#ifndef KAIWA_VERSION
#define KAIWA_VERSION "0.0.0"
#endif

namespace kaiwa::signal::native {
namespace {
using ws::kCloseGoingAway;
using ws::kClosePolicy;

// The request type of a frame, if it decodes (for the few frames a relaying session looks into).
std::optional<RequestType> requestType(std::string_view payload) {
  DecodeResult decoded = decode(payload);
  if (const auto* req = std::get_if<Request>(&decoded)) return req->type;
  return std::nullopt;
}
}  // namespace

Session::Session(Hub& hub, http::WsConnection& conn, SfuBridge* sfu, MediaPolicy defaultMedia, Relay* relay, bool greet)
    : hub_(hub), conn_(conn), sfu_(sfu), defaultMedia_(defaultMedia),
      limiter_(hub.limits().messagesPerSecond, hub.limits().burst, hub.now()), relay_(relay), greet_(greet) {}

Session::~Session() = default;

void Session::onOpen() {
  open_ = true;
  endpoint_ = hub_.attach(conn_.worker(), this);
  if (greet_) send(encodeHello(hub_.limits(), hub_.options().heartbeat, KAIWA_VERSION));
}

void Session::onClose() {
  if (!open_) return;
  open_ = false;
  hub_.detach(endpoint_);
  if (link_ != 0) {  // placing, or relaying: the owner node ends its side (the member detaches there, as here)
    relay_->close(conn_.worker(), link_, conn_.peerCloseCode() == kCloseGoingAway);
    link_ = 0;
    return;
  }
  if (phase_ == Phase::kIdle || relayed_) return;
  // Tasks posted from one worker run in order on the owner, so a join still in flight is processed first.
  bool goingAway = conn_.peerCloseCode() == kCloseGoingAway;  // the browser left the page (docs/protocol.md)
  hub_.onRoom(room_,
              [hub = &hub_, ep = endpoint_, room = room_, goingAway, peer = peer_](RoomHost& rooms, Outbox& out) {
                if (Room* r = rooms.find(room)) {
                  r->detach(ep, hub->now(), out, goingAway, peer);
                  rooms.reapIfEmpty(room);
                }
              });
}

void Session::send(std::string frame) { conn_.sendText(std::move(frame)); }

void Session::sendError(int64_t re, ErrorCode code, std::string message) {
  metrics::add(metrics::registry().errorsSent);
  send(encode(Event{ev::Error{re, code, std::move(message)}}));
}

void Session::onMessage(std::string_view payload, bool binary) {
  auto& m = metrics::registry();
  metrics::count(metrics::Count::kMessagesIn);
  TimePoint now = hub_.now();
  if (!limiter_.allow(now)) {
    m.drop(metrics::Drop::kRateLimited);
    // One error a second at most, so a flood cannot make us flood back.
    if (now - lastRateError_ >= std::chrono::seconds(1)) {
      lastRateError_ = now;
      sendError(kNoRequest, ErrorCode::kRateLimited, "too many messages: slow down");
    }
    return;
  }
  if (payload.size() > hub_.limits().maxMessageBytes) {
    m.drop(metrics::Drop::kTooLarge);
    sendError(kNoRequest, ErrorCode::kTooLarge,
              "message of " + std::to_string(payload.size()) + " bytes is over the limit of " +
                  std::to_string(hub_.limits().maxMessageBytes));
    return;
  }
  if (binary) {
    m.drop(metrics::Drop::kMalformed);
    sendError(kNoRequest, ErrorCode::kBadMessage, "binary frames are not part of the protocol");
    return;
  }
  if (relayed_) {  // the room lives on another node: its session there decodes and answers
    // After a `leave` the member is in no room there: a join or resume is placed anew (it may live on another node).
    // Only a frame that names a leave is decoded here before it, and every frame after it until the next join.
    // (plain flags: GCC's -Wmaybe-uninitialized misread an optional made by a conditional in the TSan build)
    bool isJoin = false, isLeave = false;
    if (relayLeft_ || payload.find("\"leave\"") != std::string_view::npos) {
      if (const auto type = requestType(payload)) {
        isJoin = *type == RequestType::kJoin || *type == RequestType::kResume;
        isLeave = *type == RequestType::kLeave;
      }
    }
    if (!relayLeft_ || !isJoin) {
      relayLeft_ = relayLeft_ || isLeave;
      relay_->send(conn_.worker(), link_, std::string(payload));
      return;
    }
    relay_->close(conn_.worker(), link_, false);  // the owner's session is idle: it ends without a detach
    link_ = 0;
    relayed_ = false;
    relayLeft_ = false;
    relayAsked_ = false;
    phase_ = Phase::kIdle;
  }
  DecodeResult decoded = decode(payload);
  if (auto* err = std::get_if<DecodeError>(&decoded)) {
    m.drop(metrics::Drop::kMalformed);
    sendError(err->id, err->code, std::move(err->message));
    return;
  }
  frame_ = payload;
  handle(std::move(std::get<Request>(decoded)));
  frame_ = {};
}

void Session::handle(Request&& req) {
  const int64_t re = req.id;
  if (req.type == RequestType::kPing) {
    send(encodePong());
    return;
  }
  if (req.type == RequestType::kJoin || req.type == RequestType::kResume) {
    if (phase_ != Phase::kIdle) {
      sendError(re, ErrorCode::kAlreadyJoined, "this connection is in room '" + room_ + "' already");
      return;
    }
    join(std::move(req));
    return;
  }
  if (phase_ != Phase::kJoined) {
    sendError(re, ErrorCode::kNotJoined, phase_ == Phase::kJoining ? "join still in progress" : "join a room first");
    return;
  }
  // The lambdas take copies: a task may run after this session is gone (it runs on the room's worker).
  switch (req.type) {
    case RequestType::kLeave:
      phase_ = Phase::kIdle;
      hub_.onRoom(room_, [ep = endpoint_, re, peer = std::move(peer_), room = room_](RoomHost& rooms, Outbox& out) {
        if (Room* r = rooms.find(room)) {
          r->leave(ep, re, peer, out);
          rooms.reapIfEmpty(room);
        }
      });
      room_.clear();
      peer_.clear();
      relayAsked_ = false;  // in a cluster, the next join asks again where its room lives
      break;
    case RequestType::kSignal:
      hub_.onRoom(room_, [ep = endpoint_, re, peer = peer_, room = room_, to = std::move(req.to),
                          data = std::move(req.data)](RoomHost& rooms, Outbox& out) mutable {
        if (Room* r = rooms.find(room)) r->signal(ep, re, peer, to, std::move(data), out);
      });
      break;
    case RequestType::kMessage:
      hub_.onRoom(room_, [ep = endpoint_, re, peer = peer_, room = room_, to = std::move(req.to),
                          data = std::move(req.data)](RoomHost& rooms, Outbox& out) mutable {
        if (Room* r = rooms.find(room)) r->message(ep, re, peer, to, std::move(data), out);
      });
      break;
    case RequestType::kChat:
      hub_.onRoom(room_, [ep = endpoint_, re, peer = peer_, room = room_, text = std::move(req.text)](
                             RoomHost& rooms, Outbox& out) mutable {
        if (Room* r = rooms.find(room)) r->chat(ep, re, peer, std::move(text), wallMillis(), out);
      });
      break;
    case RequestType::kState:
      hub_.onRoom(room_,
                  [ep = endpoint_, re, peer = peer_, room = room_, patch = req.state](RoomHost& rooms, Outbox& out) {
                    if (Room* r = rooms.find(room)) r->setState(ep, re, peer, patch, out);
                  });
      break;
    case RequestType::kPublish:
    case RequestType::kSubscribeAnswer:
    case RequestType::kUnpublish:
    case RequestType::kSubscribeRestart:
    case RequestType::kTileSize:
      sfuRequest(std::move(req));
      break;
    case RequestType::kRecordStart:
    case RequestType::kRecordStop:
      recordRequest(std::move(req));
      break;
    default:
      sendError(re, ErrorCode::kInternal, "unhandled request");
  }
}

void Session::sfuRequest(Request&& req) {
  const int64_t re = req.id;
  media::Service* media = sfu_ ? sfu_->media() : nullptr;
  if (media == nullptr) {
    sendError(re, ErrorCode::kNotSfu, "this server runs without the SFU");
    return;
  }
  const auto clientIp = common::Address::parse(conn_.remoteAddress(), true).value_or(common::Address{});
  // On the room's worker: the room says whether the sender is a member and the room is in sfu mode; the SFU's state
  // for the room lives on that worker too.
  hub_.onRoom(room_, [media, ep = endpoint_, re, peer = peer_, room = room_, req = std::move(req), clientIp](
                         RoomHost& rooms, Outbox& out) {
    Room* r = rooms.find(room);
    if (r == nullptr || !r->isSender(ep, peer)) {
      replyError(out, ep, re, ErrorCode::kNotJoined, "not a member of room '" + room + "'");
      return;
    }
    // After a switch to mesh the page's SFU transports are kept for a while (make before break): its unpublish
    // ends them, and an answer to an offer sent before the switch is still taken.
    const bool lingering = req.type == RequestType::kUnpublish || req.type == RequestType::kSubscribeAnswer;
    if (r->mediaMode() != MediaMode::kSfu && !lingering) {
      replyError(out, ep, re, ErrorCode::kNotSfu, "room '" + room + "' is in mesh mode");
      return;
    }
    auto code = [](media::SfuErrorCode c) {
      switch (c) {
        case media::SfuErrorCode::kBadSdp:
          return ErrorCode::kBadSdp;
        case media::SfuErrorCode::kTooManyPublishers:
          return ErrorCode::kTooManyPublishers;
        case media::SfuErrorCode::kTooManyTracks:
          return ErrorCode::kTooManyTracks;
        case media::SfuErrorCode::kStaleAnswer:
          return ErrorCode::kStaleAnswer;
        case media::SfuErrorCode::kLimit:
          return ErrorCode::kRoomFull;
        case media::SfuErrorCode::kRateLimited:
          return ErrorCode::kRateLimited;
        case media::SfuErrorCode::kRecordingOff:
          return ErrorCode::kRecordingOff;
        case media::SfuErrorCode::kAlreadyRecording:
          return ErrorCode::kAlreadyRecording;
        case media::SfuErrorCode::kNotRecording:
          return ErrorCode::kNotRecording;
        case media::SfuErrorCode::kRecordingFailed:
          return ErrorCode::kRecordingFailed;
      }
      return ErrorCode::kInternal;
    };
    switch (req.type) {
      case RequestType::kPublish: {
        std::vector<media::TrackRequest> tracks;
        for (const auto& t : req.tracks) tracks.push_back({t.mid, t.source});
        auto result = media->publish(room, peer, req.sdp, tracks, clientIp);
        if (auto* e = std::get_if<media::SfuError>(&result)) {
          replyError(out, ep, re, code(e->code), std::move(e->message));
        } else {
          reply(out, ep, ev::Ok{re, 0, std::move(std::get<std::string>(result))});
        }
        break;
      }
      case RequestType::kSubscribeAnswer:
        if (auto e = media->subscribeAnswer(room, peer, req.sdp, req.version, clientIp)) {
          replyError(out, ep, re, code(e->code), std::move(e->message));
        } else if (re != kNoRequest) {
          reply(out, ep, ev::Ok{re});
        }
        break;
      case RequestType::kSubscribeRestart:
        if (auto e = media->restartSubscribe(room, peer)) {
          replyError(out, ep, re, code(e->code), std::move(e->message));
        } else if (re != kNoRequest) {
          reply(out, ep, ev::Ok{re});
        }
        break;
      case RequestType::kTileSize: {
        std::vector<media::TileSize> tiles;
        for (const auto& t : req.tiles) tiles.push_back({t.mid, t.width, t.height});
        media->setTileSizes(room, peer, tiles);
        if (re != kNoRequest) reply(out, ep, ev::Ok{re});
        break;
      }
      default:
        media->unpublish(room, peer);
        if (re != kNoRequest) reply(out, ep, ev::Ok{re});
        break;
    }
  });
}

void Session::recordRequest(Request&& req) {
  const int64_t re = req.id;
  const bool start = req.type == RequestType::kRecordStart;
  if (!mayRecord_) {
    sendError(re, ErrorCode::kNotAllowed, "recording needs a room token with the `record` claim");
    return;
  }
  media::Service* media = sfu_ ? sfu_->media() : nullptr;
  if (media == nullptr) {
    sendError(re, ErrorCode::kNotSfu, "this server runs without the SFU, which records");
    return;
  }
  if (!media->recordingEnabled()) {
    sendError(re, ErrorCode::kRecordingOff, "this server does not record (it runs without --record-dir)");
    return;
  }
  hub_.onRoom(room_, [media, ep = endpoint_, re, peer = peer_, room = room_, start](RoomHost& rooms, Outbox& out) {
    Room* r = rooms.find(room);
    if (r == nullptr || !r->isSender(ep, peer)) {
      replyError(out, ep, re, ErrorCode::kNotJoined, "not a member of room '" + room + "'");
      return;
    }
    if (!start) {
      if (r->recording() == nullptr) {
        replyError(out, ep, re, ErrorCode::kNotRecording, "room '" + room + "' is not being recorded");
        return;
      }
      media->stopRecording(room);  // the SFU's side may have ended already (the room's media went away)
      reply(out, ep, ev::Ok{re});
      r->stopRecording(peer, "stopped", out);
      return;
    }
    if (r->mediaMode() != MediaMode::kSfu) {
      replyError(out, ep, re, ErrorCode::kNotSfu, "room '" + room + "' is in mesh mode: only SFU rooms are recorded");
      return;
    }
    if (r->recording() != nullptr) {
      replyError(out, ep, re, ErrorCode::kAlreadyRecording, "room '" + room + "' is being recorded already");
      return;
    }
    std::string name;
    for (const PeerInfo& p : r->members()) {
      if (p.id == peer) name = p.name;
    }
    auto started = media->startRecording(room, peer, name);
    if (auto* e = std::get_if<media::SfuError>(&started)) {
      const ErrorCode code = e->code == media::SfuErrorCode::kAlreadyRecording ? ErrorCode::kAlreadyRecording
                             : e->code == media::SfuErrorCode::kRecordingOff   ? ErrorCode::kRecordingOff
                                                                               : ErrorCode::kRecordingFailed;
      replyError(out, ep, re, code, std::move(e->message));
      return;
    }
    reply(out, ep, ev::Ok{re});
    r->startRecording({peer, std::move(name), std::get<int64_t>(started)}, out);
  });
}

void Session::join(Request&& req) {
  const int64_t re = req.id;
  // A resume carries no token: it may record only where no token is needed (a join's token says below).
  mayRecord_ = !hub_.options().authSecret;
  if (req.type == RequestType::kJoin) {
    if (hub_.options().authSecret) {
      if (req.token.empty()) {
        sendError(re, ErrorCode::kUnauthorized, "this server needs a room token to join");
        return;
      }
      int64_t nowSeconds = wallMillis() / 1000;
      auto v = auth::verifyRoomToken(req.token, *hub_.options().authSecret, req.room, nowSeconds);
      if (!v.claims) {
        sendError(re, ErrorCode::kUnauthorized, std::string(auth::toString(v.error)));
        return;
      }
      // The token's subject is who this peer is (PeerInfo::user, shown to the others beside the display name); the
      // display name cannot change it. Without a name the subject is the name too.
      req.user = v.claims->user;
      if (req.name.empty()) req.name = v.claims->user;
      mayRecord_ = v.claims->record;
    }
    if (req.name.empty() || !validDisplayName(req.name)) {
      sendError(re, ErrorCode::kBadMessage, "a display name (1-64 characters) is needed to join");
      return;
    }
  }
  // In a cluster the first join asks where its room lives (docs/cluster.md); onPlaced goes on from here.
  if (relay_ && !relayAsked_) {
    relayAsked_ = true;
    phase_ = Phase::kJoining;
    pendingFrame_ = std::string(frame_);
    std::string room = req.room;
    pendingJoin_ = std::move(req);
    link_ = relay_->attach(conn_.worker(), this);
    relay_->place(conn_.worker(), link_, Door::kNative, std::move(room), conn_.remoteAddress());
    return;
  }
  // A connection that did not name its room in the upgrade (`/ws?room=R`, which the SDK sends) moves to the room's
  // worker at its first join, so that its messages need no hop between threads (docs/architecture.md, "connection
  // placement"). Only at the first: after a leave, events for this endpoint may still be on their way to it here.
  if (!placed_) {
    placed_ = true;
    uint32_t owner = hub_.ownerOf(req.room);
    if (owner != conn_.worker()) {
      Endpoint here = endpoint_;
      phase_ = Phase::kJoining;  // nothing else is read until it has moved
      if (conn_.moveTo(owner, [this, req](uint32_t worker) mutable {
            endpoint_ = hub_.attach(worker, this);
            enterRoom(std::move(req));
          })) {
        hub_.detach(here);
        return;
      }
      phase_ = Phase::kIdle;
    }
  }
  enterRoom(std::move(req));
}

void Session::enterRoom(Request&& req) {
  const int64_t re = req.id;
  phase_ = Phase::kJoining;
  room_ = req.room;
  if (req.type == RequestType::kJoin) {
    MediaState initial;
    req.state.applyTo(initial);
    // The room's media policy, if this join creates it (docs/protocol.md, "SFU rooms"): a server without the SFU
    // makes every room mesh.
    RoomPolicy policy;
    policy.media = parseMediaPolicy(req.media).value_or(defaultMedia_);
    if (sfu_ == nullptr || sfu_->media() == nullptr) policy.media = MediaPolicy::kMesh;
    policy.observer = sfu_;
    hub_.onRoom(
        room_, [hub = &hub_, ep = endpoint_, re, room = room_, name = std::move(req.name), user = std::move(req.user),
                initial, policy, address = conn_.remoteAddress()](RoomHost& rooms, Outbox& out) mutable {
          auto now = hub->now();
          ErrorCode refused = ErrorCode::kTooManyRooms;
          Room* r = rooms.findOrCreate(room, policy, RoomCreator{address, now}, &refused);
          if (!r) {
            refuseJoin(out, ep, re, refused,
                       refused == ErrorCode::kRateLimited ? "this address made too many rooms lately: try again later"
                                                          : "this server holds the most rooms it may");
            return;
          }
          r->join(JoinRequest{ep, re, std::move(name), initial, {}, {}, std::move(user)}, now, out);
          rooms.reapIfEmpty(room);  // the join may have been refused
        });
  } else {
    hub_.onRoom(room_, [hub = &hub_, ep = endpoint_, re, room = room_, peer = std::move(req.peer),
                        token = std::move(req.resume)](RoomHost& rooms, Outbox& out) {
      Room* r = rooms.find(room);
      if (!r) {
        refuseJoin(out, ep, re, ErrorCode::kResumeFailed, "nothing to resume: join again");
        return;
      }
      r->resume(ep, re, peer, token, hub->now(), out);
    });
  }
}

void Session::onPlaced(Placement where) {
  if (!open_ || link_ == 0) return;
  if (where == Placement::kElsewhere) {
    relayed_ = true;
    relayLeft_ = false;
    phase_ = Phase::kJoined;  // from now on the owner's session keeps the phase; this one forwards
    relay_->send(conn_.worker(), link_, std::move(pendingFrame_));
    pendingFrame_ = {};
    pendingJoin_ = {};
    return;
  }
  relay_->detach(conn_.worker(), link_);
  link_ = 0;
  phase_ = Phase::kIdle;
  pendingFrame_ = {};
  Request req = std::move(pendingJoin_);
  if (where == Placement::kUnavailable) {
    sendError(req.id, ErrorCode::kInternal, "the cluster cannot place room '" + req.room + "' now: try again");
    relayAsked_ = false;
    return;
  }
  if (where == Placement::kFull) {
    sendError(req.id, ErrorCode::kTooManyRooms, "the cluster holds the most rooms it may");
    relayAsked_ = false;
    return;
  }
  join(std::move(req));
}

void Session::onRelayText(std::string_view frame) {
  if (open_) send(std::string(frame));
}

void Session::onRelayClose(uint16_t code, std::string_view reason) {
  link_ = 0;  // the relay detached it
  if (open_) conn_.close(code, reason);
}

void Session::deliver(const EventPtr& event) {
  if (!open_) return;
  if (const auto* joined = std::get_if<ev::Joined>(event.get())) {
    if (phase_ == Phase::kJoining) {
      phase_ = Phase::kJoined;
      peer_ = joined->peer;
    }
  } else if (const auto* err = std::get_if<ev::Error>(event.get())) {
    metrics::add(metrics::registry().errorsSent);
    if (err->refusesJoin && phase_ == Phase::kJoining) {
      phase_ = Phase::kIdle;
      room_.clear();
    }
  } else if (const auto* bye = std::get_if<ev::Bye>(event.get())) {
    send(encode(*event));
    bool replaced = bye->reason == ByeReason::kReplaced;
    if (replaced) phase_ = Phase::kIdle;  // the peer lives on in the newer connection: no detach
    conn_.close(replaced ? kClosePolicy : kCloseGoingAway, toString(bye->reason));
    return;
  }
  send(encode(*event));
}

}  // namespace kaiwa::signal::native

#include "signal/native/sfu_bridge.hpp"

#include <cstdint>
#include <memory>

#include "net/worker_pool.hpp"
#include "signal/names.hpp"

namespace kaiwa::signal::native {

void SfuBridge::onPeerJoined(const Room& room, std::string_view peer) {
  if (media_ != nullptr && room.mediaMode() == MediaMode::kSfu) media_->addMember(room.name(), std::string(peer));
}

void SfuBridge::onPeerRemoved(const Room& room, std::string_view peer) {
  if (media_ != nullptr) media_->removeMember(room.name(), std::string(peer));
}

void SfuBridge::onMediaMode(const Room& room, MediaMode mode) {
  if (media_ == nullptr) return;
  // To sfu: every member receives from now on. To mesh: the members' SFU transports go on until each page's
  // unpublish (sent once its mesh connections carry media) or 10 s, so no picture freezes in between.
  // The room told its members the recording stopped (Room::modeChanged); the SFU's side stops here, if it runs.
  if (mode == MediaMode::kMesh) media_->stopRecording(room.name(), "mesh");
  for (const PeerInfo& p : room.members()) {
    if (mode == MediaMode::kSfu) {
      media_->addMember(room.name(), p.id);
    } else {
      media_->retireMember(room.name(), p.id);
    }
  }
}

void SfuBridge::onSubscribeOffer(const std::string& room, const std::string& peer, uint64_t version, std::string sdp,
                                 std::string tracks) {
  if (hub_ == nullptr) return;
  auto event = std::make_shared<const Event>(ev::SubscribeOffer{std::move(sdp), version, std::move(tracks)});
  hub_->onRoom(room, [room, peer, event = std::move(event)](RoomHost& rooms, Outbox& out) mutable {
    if (Room* r = rooms.find(room); r && r->mediaMode() == MediaMode::kSfu) r->deliverTo(peer, std::move(event), out);
  });
}

void SfuBridge::onRecordingStopped(const std::string& room, const std::string& reason) {
  if (hub_ == nullptr) return;
  hub_->onRoom(room, [room, reason](RoomHost& rooms, Outbox& out) {
    if (Room* r = rooms.find(room)) r->stopRecording({}, reason, out);
  });
}

void SfuBridge::onActiveSpeaker(const std::string& room, const std::string& peer) {
  if (hub_ == nullptr) return;
  hub_->onRoom(room, [room, peer](RoomHost& rooms, Outbox& out) {
    if (Room* r = rooms.find(room)) r->setActiveSpeaker(peer, out);
  });
}

namespace {

// The endpoint of every WHIP member of a room: no connection has it (a hub session's slot index is below 2^32 - 1),
// so what the room delivers to it is dropped.
Endpoint whipEndpoint(uint32_t worker) { return Endpoint{worker, UINT64_MAX}; }

}  // namespace

std::optional<media::Roster::Refusal> SfuBridge::joinPublisher(const std::string& room, const std::string& peer,
                                                               const std::string& name, const std::string& user) {
  if (hub_ == nullptr) return Refusal{503, "the rooms are not running"};
  if (!validDisplayName(name)) return Refusal{400, "?name= is not a valid display name"};
  if (user.size() > UINT8_MAX) return Refusal{401, "the token's user is too long (255 bytes at most)"};
  const uint32_t owner = hub_->ownerOf(room);
  // The task must run at once, where it is, to give its answer back: only on the room's owner.
  if (net::WorkerPool::current() != owner) return Refusal{500, "WHIP join off the room's worker"};
  std::optional<Refusal> refusal;
  auto task = [&](RoomHost& rooms, Outbox& out) {
    RoomPolicy policy;
    policy.media = defaultMedia_;
    policy.observer = this;
    ErrorCode code{};
    Room* r = rooms.findOrCreate(room, policy, RoomCreator{}, &code);
    if (r == nullptr) {
      refusal = Refusal{503, "the server holds its maximum of rooms"};
      return;
    }
    if (r->policy().media != MediaPolicy::kAuto && r->policy().media != MediaPolicy::kSfu) {
      refusal = Refusal{409, "room '" + room + "' is mesh only: a WHIP publisher goes through the SFU"};
      rooms.reapIfEmpty(room);
      return;
    }
    JoinRequest req;
    req.from = whipEndpoint(owner);
    req.name = name;
    req.peerId = peer;
    req.user = user;
    req.sfuOnly = true;
    const size_t before = out.size();
    if (r->join(std::move(req), hub_->now(), out).empty()) {
      // The room's refusal went to the WHIP endpoint: its reason becomes the HTTP answer.
      refusal = Refusal{503, "the room refused the join"};
      for (size_t i = before; i < out.size(); ++i) {
        if (const auto* e = std::get_if<ev::Error>(out[i].event.get()); e && out[i].to == whipEndpoint(owner)) {
          refusal = Refusal{e->code == ErrorCode::kRoomFull ? 503u : 409u, e->message};
        }
      }
      rooms.reapIfEmpty(room);
    }
  };
  hub_->onRoom(room, task);
  return refusal;
}

void SfuBridge::leavePublisher(const std::string& room, const std::string& peer) {
  if (hub_ == nullptr) return;
  hub_->onRoom(room, [room, peer, owner = hub_->ownerOf(room)](RoomHost& rooms, Outbox& out) {
    Room* r = rooms.find(room);
    if (r == nullptr || !r->isSender(whipEndpoint(owner), peer)) return;
    r->leave(whipEndpoint(owner), kNoRequest, peer, out);
    rooms.reapIfEmpty(room);
  });
}

}  // namespace kaiwa::signal::native

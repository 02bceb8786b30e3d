#include "signal/native/sfu_bridge.hpp"

#include <memory>

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

}  // namespace kaiwa::signal::native

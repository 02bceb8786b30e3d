#pragma once
// Between the native protocol's rooms and the SFU (docs/protocol.md, "SFU rooms"): the room core tells it who joins
// and leaves and when a room's effective mode changes (signal::RoomObserver), and it tells the SFU (media::Service);
// the SFU's offers to members come back through it (media::Listener) and are delivered by the room, which queues them
// for a member in its grace period. Everything runs on the room's worker.
#include "media/service.hpp"
#include "signal/hub.hpp"
#include "signal/room.hpp"

namespace kaiwa::signal::native {

class SfuBridge final : public RoomObserver, public media::Listener {
 public:
  // The hub is set before the workers start, the SFU too when it runs (nullptr: every room is mesh).
  void setHub(Hub* hub) { hub_ = hub; }
  void setMedia(media::Service* media) { media_ = media; }
  media::Service* media() const { return media_; }

  // RoomObserver
  void onPeerJoined(const Room& room, std::string_view peer) override;
  void onPeerRemoved(const Room& room, std::string_view peer) override;
  void onMediaMode(const Room& room, MediaMode mode) override;

  // media::Listener
  void onSubscribeOffer(const std::string& room, const std::string& peer, uint64_t version, std::string sdp,
                        std::string tracks) override;

 private:
  Hub* hub_ = nullptr;
  media::Service* media_ = nullptr;
};

}  // namespace kaiwa::signal::native

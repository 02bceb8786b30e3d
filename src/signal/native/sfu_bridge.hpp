#pragma once
// Between the native protocol's rooms and the SFU (docs/protocol.md, "SFU rooms"): the room core tells it who joins
// and leaves and when a room's effective mode changes (signal::RoomObserver), and it tells the SFU (media::Service);
// the SFU's offers to members come back through it (media::Listener) and are delivered by the room, which queues them
// for a member in its grace period. Everything runs on the room's worker.
#include "media/service.hpp"
#include "signal/hub.hpp"
#include "signal/room.hpp"

namespace kaiwa::signal::native {

class SfuBridge final : public RoomObserver, public media::Listener, public media::Roster {
 public:
  // The hub is set before the workers start, the SFU too when it runs (nullptr: every room is mesh).
  void setHub(Hub* hub) { hub_ = hub; }
  void setMedia(media::Service* media) { media_ = media; }
  media::Service* media() const { return media_; }
  // The media policy of a room a WHIP publisher creates (--media-mode).
  void setDefaultMedia(MediaPolicy policy) { defaultMedia_ = policy; }

  // RoomObserver
  void onPeerJoined(const Room& room, std::string_view peer) override;
  void onPeerRemoved(const Room& room, std::string_view peer) override;
  void onMediaMode(const Room& room, MediaMode mode) override;

  // media::Listener
  void onSubscribeOffer(const std::string& room, const std::string& peer, uint64_t version, std::string sdp,
                        std::string tracks) override;
  void onRecordingStopped(const std::string& room, const std::string& reason) override;
  void onActiveSpeaker(const std::string& room, const std::string& peer) override;

  // media::Roster: a WHIP publisher is a member with no connection of its own (deliveries to it go nowhere); it
  // joins with JoinRequest::sfuOnly, so a mesh room refuses it (409) and an auto room goes sfu.
  std::optional<Refusal> joinPublisher(const std::string& room, const std::string& peer, const std::string& name,
                                       const std::string& user) override;
  void leavePublisher(const std::string& room, const std::string& peer) override;

 private:
  Hub* hub_ = nullptr;
  media::Service* media_ = nullptr;
  MediaPolicy defaultMedia_ = MediaPolicy::kAuto;
};

}  // namespace kaiwa::signal::native

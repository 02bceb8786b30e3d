#pragma once
// One native-protocol WebSocket connection: decodes requests, enforces the per-connection limits, forwards to the
// room core through the Hub and encodes the events it gets back.
#include <string>

#include "http/handler.hpp"
#include "signal/hub.hpp"
#include "signal/native/codec.hpp"
#include "signal/native/sfu_bridge.hpp"
#include "signal/relay.hpp"

namespace kaiwa::signal::native {

class Session final : public http::WsHandler, public Connection, public RemoteLink {
 public:
  // `sfu`: the SFU rooms' bridge (nullptr: every room is mesh); `defaultMedia`: the policy of a room whose creating
  // join names none (--media-mode); `relay`: the cluster (nullptr: a single node), asked where the first join's room
  // lives; `greet`: send `hello` at the open (not for the session an owner node makes for another node's client, who
  // was greeted there).
  Session(Hub& hub, http::WsConnection& conn, SfuBridge* sfu = nullptr, MediaPolicy defaultMedia = MediaPolicy::kAuto,
          Relay* relay = nullptr, bool greet = true);
  ~Session() override;

  // http::WsHandler
  void onOpen() override;
  void onMessage(std::string_view payload, bool binary) override;
  void onClose() override;

  // Connection
  void deliver(const EventPtr& event) override;

  // RemoteLink
  void onPlaced(Placement where) override;
  void onRelayText(std::string_view frame) override;
  void onRelayClose(uint16_t code, std::string_view reason) override;

 private:
  void handle(Request&& req);
  void join(Request&& req);
  void enterRoom(Request&& req);  // join's second half, on the room's worker when the connection moved there
  void sendError(int64_t re, ErrorCode code, std::string message);
  void sfuRequest(Request&& req);     // publish, subscribe-answer, unpublish
  void recordRequest(Request&& req);  // record-start, record-stop
  void send(std::string frame);

  enum class Phase : uint8_t { kIdle, kJoining, kJoined };

  Hub& hub_;
  http::WsConnection& conn_;
  SfuBridge* sfu_;
  MediaPolicy defaultMedia_;
  Endpoint endpoint_{};
  RateLimiter limiter_;
  TimePoint lastRateError_{};
  Phase phase_ = Phase::kIdle;
  std::string room_;
  std::string peer_;
  // The member may start and stop the room's recording: its room token has the `record` claim, or the server takes
  // no tokens. A resume carries no token: on a server with tokens, a resumed connection may not.
  bool mayRecord_ = false;
  bool open_ = false;
  bool placed_ = false;  // the first join has decided where the connection lives
  // The cluster (docs/cluster.md): whether the first join asked it yet, the link while asking or relaying, the first
  // join's frame and request kept while asking, and whether the room lives on another node (then every frame goes
  // there untouched).
  Relay* relay_;
  bool greet_;
  bool relayAsked_ = false;
  bool relayed_ = false;
  bool relayLeft_ = false;  // relayed, and the client sent `leave`: its next join or resume is placed anew
  uint64_t link_ = 0;
  std::string_view frame_;  // the frame being handled, while it is
  std::string pendingFrame_;
  Request pendingJoin_;
};

}  // namespace kaiwa::signal::native

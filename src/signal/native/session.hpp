#pragma once
// One native-protocol WebSocket connection: decodes requests, enforces the per-connection limits, forwards to the
// room core through the Hub and encodes the events it gets back.
#include <string>

#include "http/handler.hpp"
#include "signal/hub.hpp"
#include "signal/native/codec.hpp"
#include "signal/native/sfu_bridge.hpp"

namespace kaiwa::signal::native {

class Session final : public http::WsHandler, public Connection {
 public:
  // `sfu`: the SFU rooms' bridge (nullptr: every room is mesh); `defaultMedia`: the policy of a room whose creating
  // join names none (--media-mode).
  Session(Hub& hub, http::WsConnection& conn, SfuBridge* sfu = nullptr, MediaPolicy defaultMedia = MediaPolicy::kAuto);
  ~Session() override;

  // http::WsHandler
  void onOpen() override;
  void onMessage(std::string_view payload, bool binary) override;
  void onClose() override;

  // Connection
  void deliver(const EventPtr& event) override;

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
};

}  // namespace kaiwa::signal::native

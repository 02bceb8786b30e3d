#pragma once
// The PeerJS front door (docs/peerjs.md): PeerServer's HTTP routes and WebSocket, translated into the room core.
// All clients of key K are members of the quiet room "peerjs:K" (RoomPolicy: no announcements, capacity
// --peerjs-concurrent-limit, messages held for absent ids, alive timeout), so limits, metrics and auth apply.
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "http/handler.hpp"
#include "signal/hub.hpp"
#include "signal/peerjs/options.hpp"
#include "signal/room.hpp"

namespace kaiwa::signal::peerjs {

// Connected ids for GET /{key}/peers. Touched on connect and disconnect only, and only with discovery on.
class Directory {
 public:
  void add(const std::string& id);
  void remove(const std::string& id);
  std::vector<std::string> list() const;

 private:
  mutable std::mutex mutex_;
  std::map<std::string, int> ids_;  // id -> sockets that hold it (a replaced socket may close after the new one)
};

class Service {
 public:
  Service(Hub& hub, Options options);

  const Options& options() const { return options_; }
  const std::string& room() const { return room_; }
  const RoomPolicy& policy() const { return policy_; }
  Directory* directory() { return options_.discovery ? &directory_ : nullptr; }
  Hub& hub() { return hub_; }

  // GET {path}{key}/id, {path}{key}/peers, {path} (when path is not '/'); nullopt for other paths.
  std::optional<http::Response> http(const http::Request& req);
  // The handler for a WebSocket at {path}peerjs, or nullptr for other paths.
  std::unique_ptr<http::WsHandler> websocket(http::WsConnection& conn, const http::Request& req);
  // Where a WebSocket at {path}peerjs is served (http::Routes::websocketWorker): the worker that owns the key's room,
  // so that every relay between its clients stays on one thread. nullopt for other paths.
  std::optional<uint32_t> websocketWorker(const http::Request& req) const;

 private:
  Hub& hub_;
  Options options_;
  std::string room_;
  RoomPolicy policy_;
  Directory directory_;
  bool isWebSocketPath(std::string_view path) const;
};

class Session final : public http::WsHandler, public Connection {
 public:
  Session(Service& service, http::WsConnection& conn, std::optional<std::string> key, std::optional<std::string> id,
          std::optional<std::string> token);
  ~Session() override;

  // http::WsHandler
  void onOpen() override;
  void onMessage(std::string_view payload, bool binary) override;
  void onClose() override;

  // Connection
  void deliver(const EventPtr& event) override;

 private:
  void refuse(std::string frame);
  Endpoint endpoint() const { return Endpoint{conn_.worker(), session_}; }
  void unlist();

  enum class Phase : uint8_t { kIdle, kJoining, kJoined };

  // The key and token are needed until onOpen only.
  struct Handshake {
    std::optional<std::string> key, token;
  };

  Service& service_;
  http::WsConnection& conn_;
  std::unique_ptr<Handshake> handshake_;
  std::string id_;        // empty: none given
  uint64_t session_ = 0;  // the hub's id of this connection, on conn_.worker()
  TokenBucket limiter_;   // Limits::messagesPerSecond, Limits::burst
  Phase phase_ = Phase::kIdle;
  bool open_ = false;
  bool listed_ = false;
};

}  // namespace kaiwa::signal::peerjs

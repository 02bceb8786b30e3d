#pragma once
// The PeerJS front door (docs/peerjs.md): PeerServer's HTTP routes and WebSocket, translated into the room core.
// All clients of key K are members of the quiet room "peerjs:K" (RoomPolicy: no announcements, capacity
// --peerjs-concurrent-limit, messages held for absent ids, alive timeout), so limits, metrics and auth apply.
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "http/handler.hpp"
#include "signal/hub.hpp"
#include "signal/peerjs/options.hpp"
#include "signal/relay.hpp"
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
  ~Service();

  const Options& options() const { return options_; }
  const std::string& room() const { return room_; }
  const RoomPolicy& policy() const { return policy_; }
  Directory* directory() { return options_.discovery ? &directory_ : nullptr; }
  Hub& hub() { return hub_; }
  // The cluster (docs/cluster.md, "PeerJS"): the key's room lives on one node; a client connected to another node is
  // linked to it. Set before the workers start; nullptr (the default) is a single node.
  void setRelay(Relay* relay) { relay_ = relay; }
  Relay* relay() const { return relay_; }

  // GET {path}{key}/id, {path}{key}/peers, {path} (when path is not '/'); nullopt for other paths.
  std::optional<http::Response> http(const http::Request& req);
  // In a cluster, GET {path}{key}/peers with discovery on: answered from the node that holds the key's room (asked
  // through the relay when that is another node). Returns false (not taken) for anything else. On req.worker.
  bool deferred(const http::Request& req, http::Responder& respond);
  // The session an owner node makes for a PeerJS client linked from another node (cluster::Node's HandlerFactory):
  // it takes its handshake, or a question, from the first message the client's node sends.
  std::unique_ptr<http::WsHandler> linkedSession(http::WsConnection& conn);
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
  Relay* relay_ = nullptr;
  class PeersQuery;
  std::mutex queriesMutex_;  // /peers questions to another node: taken per request, never on the message path
  std::unordered_map<uint64_t, std::unique_ptr<PeersQuery>> queries_;  // by link
  std::vector<std::unique_ptr<PeersQuery>> finished_;                  // answered, destroyed by the next question
  bool isWebSocketPath(std::string_view path) const;
  // "id", "peers" or "" (the info JSON at {path}) for a PeerJS HTTP route; nullopt for other paths.
  std::optional<std::string_view> route(const http::Request& req) const;
  std::string peersJson() const;
  http::Response peersResponse(const http::Request& req, std::string body) const;
  void endQuery(uint64_t link);  // on the query's worker

  friend class Session;
};

class Session final : public http::WsHandler, public Connection, public RemoteLink {
 public:
  // `query`: the upgrade's query string, which a client's node forwards to the key's owner node in a cluster.
  Session(Service& service, http::WsConnection& conn, std::optional<std::string> key, std::optional<std::string> id,
          std::optional<std::string> token, std::string query = {}, Relay* relay = nullptr);
  // A linked client's session on the owner node: its handshake comes as the first message.
  Session(Service& service, http::WsConnection& conn);
  ~Session() override;

  // http::WsHandler
  void onOpen() override;
  void onMessage(std::string_view payload, bool binary) override;
  void onClose() override;

  // Connection
  void deliver(const EventPtr& event) override;

  // RemoteLink (in a cluster, on the client's node when the key's room lives on another node)
  void onPlaced(Placement where) override;
  void onRelayText(std::string_view frame) override;
  void onRelayClose(uint16_t code, std::string_view reason) override;

 private:
  void refuse(std::string frame);
  // PeerServer's checks of the handshake; false when refused (the socket is closing).
  bool admit(const std::optional<std::string>& key, const std::optional<std::string>& token);
  void join(std::string token);
  void handle(std::string_view payload);     // a message past the rate and size checks
  void linkHello(std::string_view payload);  // a linked session's first message
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
  // The cluster (docs/cluster.md, "PeerJS"): the relay (nullptr: the room is local), the link while the key's room is
  // located or once it is found on another node (then every message goes there untouched), the upgrade's query and
  // the token and messages kept while it is located.
  Relay* relay_ = nullptr;
  bool awaitHello_ = false;  // a linked session on the owner, before its first message
  bool placing_ = false;
  bool relayed_ = false;
  uint64_t link_ = 0;
  std::string query_;
  std::string token_;
  std::vector<std::string> pending_;
};

}  // namespace kaiwa::signal::peerjs

#pragma once
// The Socket.IO front door (docs/socketio.md): Engine.IO v4 sessions over long polling and WebSocket, with the
// polling → WebSocket upgrade, and the guide's Socket.IO events translated into the room core.
//
// This is the glue: the protocol is in three sans-I/O pieces (engineio::Session, Socket, GuideEvents), and Service
// gives them what they need — HTTP requests and responders, WebSocket connections, the hub, the workers and the
// clock (read here only). Each worker keeps its sessions' deadlines in one place: tick(worker, now) at
// nextDeadline(worker).
//
// A session lives on the worker that answered its handshake; its id says which one ("<worker>.<random>"), so a
// polling request or an upgrade that lands on another worker (SO_REUSEPORT) is handed to the owner — no sticky
// sessions needed. Every room the socket is in is a room-core membership with its own hub endpoint, so limits,
// metrics and --auth-secret apply as for native and PeerJS peers.
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "common/clock.hpp"

#include "http/handler.hpp"
#include "net/worker_pool.hpp"
#include "signal/hub.hpp"
#include "signal/relay.hpp"
#include "signal/socketio/options.hpp"
#include "signal/socketio/room_name.hpp"

namespace kaiwa::signal::socketio {

class Service {
 public:
  // `clock`: where the time comes from; by default Clock::now(), and the service registers one timer with each
  // worker's loop that calls tick() at nextDeadline(). Given a clock (a test's, a fuzzer's), the caller drives time:
  // no timer is registered, and it calls tick(worker, now) itself.
  Service(Hub& hub, net::WorkerPool& pool, Options options, std::function<TimePoint()> clock = {});
  ~Service();
  Service(const Service&) = delete;
  Service& operator=(const Service&) = delete;

  const Options& options() const;

  // Engine.IO's HTTP side at options().path (handshake, long-poll GET, POST): false for other paths; otherwise it
  // has taken `respond` and answers now or later, possibly from another worker.
  bool http(const http::Request& req, http::Responder& respond);
  // The WebSocket transport at options().path (direct, or the upgrade of a polling session), or nullptr for other
  // paths and bad handshakes.
  std::unique_ptr<http::WsHandler> websocket(http::WsConnection& conn, const http::Request& req);

  // In a cluster (docs/socketio.md, "Across nodes"), before the workers start: sids name this node, requests for
  // another node's sessions are forwarded there, and new sessions are made on the node holding Socket.IO's
  // placement. False when the node id is too long to go into a sid (kMaxNodeIdInSid).
  static constexpr std::size_t kMaxNodeIdInSid = 36;
  bool setCluster(Relay* relay);
  // The owner's side of a link of Door::kSocketIo (a proxy made by the cluster): serves the request or WebSocket
  // another node forwarded here.
  std::unique_ptr<http::WsHandler> remote(http::WsConnection& proxy);
  // The kaiwa_socketio_forward* lines of /metrics ("" on one node).
  std::string renderMetrics() const;

  // On `worker`'s thread: whatever its sessions have due at `now` (pings, pong and connect timeouts, upgrade
  // timeouts). Calling it early, or for a deadline that became stale, does nothing.
  void tick(uint32_t worker, TimePoint now);
  // On `worker`'s thread: when tick(worker, …) next has something to do; TimePoint::max() when nothing. It only
  // gets earlier through a call into the service on that worker (a request, a frame, a tick), so a caller driving
  // time reads it after each.
  TimePoint nextDeadline(uint32_t worker) const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace kaiwa::signal::socketio

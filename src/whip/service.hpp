#pragma once
// The SFU's service: the one UDP media port on the worker loops, and WHIP (RFC 9725) / WHEP over HTTP. A room's
// media is handled on the worker that owns the room (Options::ownerOf, the hub's): its transports (sfu::Transport)
// live in that worker's net::Slots, its forwarding (sfu::Router) too, with no lock and no allocation per packet.
//
// The port (docs/sfu.md, "The media port"): every worker binds an unconnected socket on it (SO_REUSEPORT). Those
// see a client's first ICE checks; kaiwa's ufrag names the owner worker ("w<worker>" + random), so a check that the
// kernel gave to another worker is posted there. After the first valid check the owner opens a socket of its own
// for that client on the same port, connect()ed to the client's address: the kernel delivers the client's 4-tuple
// to it, on the owner's loop, from then on.
//
// HTTP (deferred routes, answered from the owner worker): POST /whip/<room> (a publisher's offer) and
// POST /whep/<room> (a viewer's recvonly offer) → 201 with Location, ETag and the answer; PATCH on the session →
// 204 (kaiwa is ICE-lite: trickled candidates are not needed); DELETE → 200; OPTIONS → CORS and Accept-Post.
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/address.hpp"
#include "http/handler.hpp"
#include "net/worker_pool.hpp"

namespace kaiwa::whip {

// Bounds, with their defaults in one place.
struct Limits {
  size_t publishersPerRoom = 1;  // this slice forwards one publisher per room
  size_t viewersPerRoom = 100;
  size_t transportsPerAddress = 16;  // per client IP address, counted on each owner worker
  size_t transports = 2000;          // in all
};

struct Options {
  common::Address listen;                // the media port (UDP)
  std::vector<std::string> announceIps;  // the addresses put in candidates (the listen address if empty)
  std::optional<std::string> authSecret;
  Limits limits;
  std::function<uint32_t(std::string_view room)> ownerOf;  // the worker that owns a room
  std::function<bool(std::string_view room)> validRoomName;
};

class Service {
 public:
  Service(net::WorkerPool& pool, Options options);
  ~Service();
  Service(const Service&) = delete;
  Service& operator=(const Service&) = delete;

  // Makes the certificate and binds every worker's socket (before the pool starts). An error message on failure.
  std::optional<std::string> start();
  uint16_t port() const { return port_; }

  // http::Routes::deferred for /whip/ and /whep/: false when the path is not its own.
  bool http(const http::Request& req, http::Responder& respond);

  class Worker;

 private:
  friend class Worker;
  net::WorkerPool& pool_;
  Options options_;
  std::string fingerprint_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::atomic<size_t> transports_{0};
  uint16_t port_ = 0;
};

}  // namespace kaiwa::whip

#pragma once
// Internal to src/http: the server's state shared by its two translation units — server.cpp (HTTP and TLS with
// Boost.Beast) and websocket.cpp (WebSockets on bare descriptors, over TCP or TLS).
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <openssl/ssl.h>
#include <boost/asio/steady_timer.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "http/server.hpp"

namespace kaiwa::http {

namespace detail {

// Every open connection of a worker, for closeAll and for the worker's tick.
class SessionBase {
 public:
  virtual ~SessionBase() = default;
  virtual void shutdown(uint16_t code, const std::string& reason) = 0;
  // Called on the session's worker every Server::Impl::tickPeriod(): timeouts that need no timer of their own.
  virtual void tick(std::chrono::steady_clock::time_point now) {}
  // At exit, once the workers are stopped and their pending operations destroyed: a session that owns itself lets
  // go of itself (without telling its handler); one owned by its operations is gone already.
  virtual void abandon() {}
};

}  // namespace detail

struct Server::Impl {
  net::WorkerPool& pool;
  ServerOptions options;
  Routes routes;
  std::optional<boost::asio::ssl::context> ssl;
  std::vector<std::unique_ptr<boost::asio::ip::tcp::acceptor>> acceptors;  // index = worker
  std::vector<std::unordered_set<detail::SessionBase*>> live;             // index = worker, touched only there
  std::vector<std::unique_ptr<boost::asio::steady_timer>> tickers;        // index = worker
  std::vector<std::shared_ptr<void>> wsPollers;  // index = worker: websocket.cpp's WsPoller, made on first use

  Impl(net::WorkerPool& p, ServerOptions o, Routes r) : pool(p), options(std::move(o)), routes(std::move(r)) {
    live.resize(pool.size());
    wsPollers.resize(pool.size());
  }
  // Destroyed after the workers stopped (WorkerPool::shutdown): the sessions still live own themselves.
  ~Impl() {
    for (auto& sessions : live) {
      std::vector<detail::SessionBase*> left(sessions.begin(), sessions.end());
      for (detail::SessionBase* s : left) {
        if (sessions.contains(s)) s->abandon();
      }
    }
  }
  void accept(uint32_t worker);
  // How often sessions are ticked: fine enough for the ping timeout, at most once a second.
  std::chrono::milliseconds tickPeriod() const {
    auto t = options.pingTimeout / 8;
    return std::clamp<std::chrono::milliseconds>(t, std::chrono::milliseconds(20), std::chrono::milliseconds(1000));
  }
  void startTicking(uint32_t worker);
  // Runs `fn` on every live session of `worker` (call on that worker). Sessions that `fn` ends along the way are
  // skipped, not touched.
  template <typename Fn>
  void forEachSession(uint32_t worker, Fn&& fn) {
    std::vector<detail::SessionBase*> sessions(live[worker].begin(), live[worker].end());
    for (detail::SessionBase* s : sessions) {
      if (live[worker].contains(s)) fn(*s);
    }
  }
};

namespace detail {

// Starts the WebSocket of a connection (its descriptor `fd`, which it then owns; reads and writes are MSG_DONTWAIT)
// on `worker` (call on that worker's thread), over TLS when `ssl` is set (owned too; see takeOverTls). `request` is
// the upgrade request, already checked (GET, Upgrade: websocket, version 13, a valid key), and `leftover` what the
// client sent past it (plaintext). Answers 101 and hands the connection to the route's handler, or answers 404.
void startBareWebSocket(Server::Impl& srv, uint32_t worker, int fd, SSL* ssl, std::string_view leftover,
                        const Request& request, std::string_view key);

// Takes the SSL object of an HTTPS connection whose TLS handshake Asio did, for startBareWebSocket: a reference of
// its own, and its I/O moved off Asio's BIO pair. nullptr (nothing changed) when TLS data is still in flight inside
// Asio's stream; the connection then stays on Asio and Beast.
SSL* takeOverTls(SSL* ssl);

}  // namespace detail
}  // namespace kaiwa::http

#pragma once
// Internal to src/http: the server's state shared by its two translation units — server.cpp (HTTP and TLS with
// Boost.Beast) and websocket.cpp (WebSockets on bare descriptors, over TCP or TLS).
#include <openssl/ssl.h>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_set>
#include <utility>
#include <vector>

#include "http/server.hpp"
#include "net/accept_backoff.hpp"
#include "net/slots.hpp"
#include "tls/session.hpp"
#include "ws/connection.hpp"

namespace kaiwa::http {

namespace detail {

// Every open connection of a worker, for closeAll and for the worker's tick.
class SessionBase {
 public:
  virtual ~SessionBase() = default;
  virtual void shutdown(uint16_t code, const std::string& reason) = 0;
  // Called on the session's worker every Server::Impl::tickPeriod(): timeouts that need no timer of their own.
  virtual void tick(std::chrono::steady_clock::time_point now) {}
};

// A connection's place in its client address's count of connections (common::AddressLimits::openConnection): given
// back exactly once, when its last owner lets go of it. It moves with the connection — from the HTTP session to the
// worker it is handed over to, to its WebSocket (bare or Beast), along a move to another worker — so that no path
// keeps or loses a count. Also carries the client's address (a plain IP, IPv6 without brackets) for Request.
class AddressTicket {
 public:
  AddressTicket() = default;
  // `limits` nullptr: nothing to give back (no limits, or an address they do not count).
  AddressTicket(common::AddressLimits* limits, std::string ip) : limits_(limits), ip_(std::move(ip)) {}
  AddressTicket(AddressTicket&& o) noexcept : limits_(std::exchange(o.limits_, nullptr)), ip_(std::move(o.ip_)) {}
  AddressTicket& operator=(AddressTicket&& o) noexcept {
    if (this != &o) {
      release();
      limits_ = std::exchange(o.limits_, nullptr);
      ip_ = std::move(o.ip_);
    }
    return *this;
  }
  AddressTicket(const AddressTicket&) = delete;
  AddressTicket& operator=(const AddressTicket&) = delete;
  ~AddressTicket() { release(); }
  const std::string& ip() const { return ip_; }

 private:
  void release() {
    if (limits_) std::exchange(limits_, nullptr)->closeConnection(ip_);
  }
  common::AddressLimits* limits_ = nullptr;
  std::string ip_;
};

}  // namespace detail

struct Server::Impl {
  net::WorkerPool& pool;
  ServerOptions options;
  Routes routes;
  ws::ConnectionOptions wsOptions;  // what every WebSocket runs with (from `options`), shared by them all
  bool tls = false;
  // The TLS context new connections are made with; SIGHUP swaps in a new one (reloadTls). Existing connections keep
  // theirs: each SSL object holds a reference to its SSL_CTX. Read once per accepted connection, under the mutex.
  std::shared_ptr<boost::asio::ssl::context> sslCurrent;
  std::mutex sslMutex;
  std::vector<std::unique_ptr<boost::asio::ip::tcp::acceptor>> acceptors;  // index = worker
  // Accepting when accept fails (EMFILE and the like): the worker's listener pauses, 50 ms doubling to 1 s (reset by
  // a success), instead of retrying at once in a loop; a spare descriptor, given up for a moment, lets it take the
  // waiting connections and close them, so that their clients are told instead of left hanging.
  struct AcceptState {
    net::AcceptBackoff backoff{std::chrono::milliseconds(50)};
    net::Loop::TimerId retry = 0;  // the pause's timer, in the worker's loop
    std::size_t shedUnlogged = 0;  // waiting connections closed since the last log line
    int spare = -1;                // /dev/null, held for when descriptors run out
  };
  std::vector<AcceptState> acceptStates;  // index = worker
  // index = worker, touched only there: the HTTP sessions on Asio and Beast, owned by their pending operations
  // (shared_ptr), registered here for closeAll and the tick...
  std::vector<std::unordered_set<detail::SessionBase*>> live;
  // ... and the connections the worker owns outright (WebSockets on bare descriptors), by id.
  std::vector<net::Slots<detail::SessionBase>> owned;
  std::vector<net::Loop::TimerId> tickers;  // index = worker, in the worker's loop

  Impl(net::WorkerPool& p, ServerOptions o, Routes r) : pool(p), options(std::move(o)), routes(std::move(r)) {
    wsOptions.pingTimeout = options.pingTimeout;
    wsOptions.messageTimeout = options.messageTimeout;
    wsOptions.maxMessageBytes = options.wsMaxMessageBytes;
    wsOptions.maxQueuedBytes = options.maxQueuedBytes;
    live.resize(pool.size());
    owned.resize(pool.size());
    tickers.resize(pool.size());
    acceptStates.resize(pool.size());
  }
  // Destroyed after the workers stopped (WorkerPool::shutdown): the connections a worker owns are closed without
  // telling their handlers; the others went with their operations.
  void abandonAll() {
    for (auto& table : owned) table.clear();
    for (uint32_t w = 0; w < tickers.size(); ++w) {
      pool.loop(w).cancel(tickers[w]);
      pool.loop(w).cancel(acceptStates[w].retry);
    }
  }
  ~Impl();  // (server.cpp: also closes the spare descriptors)
  void accept(uint32_t worker);
  // An accepted connection: counted for its address (or refused), then served.
  void admit(uint32_t worker, boost::asio::ip::tcp::socket socket);
  // accept failed: a pause before the next try, and (out of descriptors) the waiting connections closed.
  void acceptFailed(uint32_t worker, const boost::system::error_code& ec);
  std::size_t shedPending(uint32_t worker);
  std::shared_ptr<boost::asio::ssl::context> sslContext() {
    std::lock_guard lock(sslMutex);
    return sslCurrent;
  }
  // How often sessions are ticked: fine enough for the ping and message timeouts, at most once a second.
  std::chrono::milliseconds tickPeriod() const {
    auto t = options.pingTimeout / 8;
    if (options.messageTimeout.count() > 0) t = std::min<std::chrono::milliseconds>(t, options.messageTimeout / 4);
    return std::clamp<std::chrono::milliseconds>(t, std::chrono::milliseconds(20), std::chrono::milliseconds(1000));
  }
  void startTicking(uint32_t worker);
  // Runs `fn` on every session of `worker` (call on that worker). Sessions that `fn` ends along the way are
  // skipped, not touched.
  template <typename Fn>
  void forEachSession(uint32_t worker, Fn&& fn) {
    std::vector<detail::SessionBase*> sessions(live[worker].begin(), live[worker].end());
    for (detail::SessionBase* s : sessions) {
      if (live[worker].contains(s)) fn(*s);
    }
    owned[worker].forEach([&](net::SlotId, detail::SessionBase& s) { fn(s); });
  }
};

namespace detail {

// Starts the WebSocket of a connection (its descriptor `fd`, which it then owns; reads and writes are MSG_DONTWAIT)
// on `worker` (call on that worker's thread), over TLS when `tls` is set (see takeOverTls). `request` is
// the upgrade request, already checked (GET, Upgrade: websocket, version 13, a valid key), and `leftover` what the
// client sent past it (plaintext). Answers 101 and hands the connection to the route's handler, or answers 404.
// `ticket` is the connection's place in its address's count, given back when the connection ends.
void startBareWebSocket(Server::Impl& srv, uint32_t worker, int fd, std::optional<tls::Session> tls,
                        AddressTicket ticket, std::string_view leftover, const Request& request, std::string_view key);

// Takes the SSL object of an HTTPS connection whose TLS handshake Asio did, for startBareWebSocket: a reference of
// its own, adopted by a tls::Session (its I/O moved off Asio's BIO pair). The plaintext of records still inside
// Asio's stream is appended to `pending` (it follows what Beast read past the request). nullopt when the connection
// cannot go on: the peer closed TLS or sent a bad record, or OpenSSL holds output that Asio did not send.
std::optional<tls::Session> takeOverTls(SSL* ssl, std::string& pending);

}  // namespace detail
}  // namespace kaiwa::http

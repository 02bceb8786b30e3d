// WebSocket on bare descriptors, over plain TCP or TLS: the connection kind that carries nearly all signaling
// traffic, so it is kept lean (docs/architecture.md, "WebSocket connections"). The RFC 6455 state machine — frames,
// pings and the idle timeout, the deadline of a message begun, the close handshake, the half-close and the bounded
// linger, the slow-consumer limit — is ws::Connection (src/ws/connection.hpp), sans-I/O. This file is its glue: the
// descriptor and its registration in the worker's loop, recv and sendmsg, the queue of what the socket did not take,
// TLS (tls::Session), the worker's table of connections (Server::Impl::owned, by SlotId) and moves between workers.
// - no Asio operation per connection: each connection is registered, edge-triggered, in its worker's loop
//   (net::Loop), and owned by the worker's table;
// - no buffer while idle: a worker reads into one shared buffer, ws::Connection parses every whole frame in place and
//   keeps only a partial frame's bytes; a frame is written at once (one sendmsg for header and payload) when nothing
//   is queued before it, and only what the socket did not take is kept;
// - no timer per connection: the worker ticks its sessions (ws::Connection::tick) for pings, idle timeouts, the
//   deadline of a message begun and close deadlines;
// - no allocation per message on the way in or out (over TLS, OpenSSL's record buffers aside: see below);
// - over TLS, the SSL object of the HTTPS connection (its handshake done by Asio) is taken over at the upgrade into a
//   tls::Session (takeOverTls), whose output vector is this connection's queue. OpenSSL lets go of its record
//   buffers between records (Buffers::kReleaseWhenEmpty) and the session's own vectors are freed at the tick once
//   the connection is quiet: an idle WSS connection keeps its SSL state, not the ~100 KB of buffers of an Asio TLS
//   stream.
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <spdlog/spdlog.h>

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <functional>
#include <span>
#include <utility>

#include "common/metrics.hpp"
#include "http/server_impl.hpp"
#include "net/loop.hpp"
#include "net/slots.hpp"
#include "tls/session.hpp"
#include "ws/connection.hpp"
#include "ws/frame.hpp"

namespace kaiwa::http::detail {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using SteadyClock = std::chrono::steady_clock;

constexpr std::size_t kReadChunk = 64 * 1024;
constexpr int kReadsPerTurn = 4;             // then other connections get their turn
constexpr std::size_t kKeepCapacity = 4096;  // buffers above this are freed once empty

// One read buffer per worker thread: a connection keeps only the tail of a partial frame.
char* readBuffer() {
  thread_local std::unique_ptr<char[]> buffer(new char[kReadChunk]);
  return buffer.get();
}

// The plaintext that TLS records decrypt to, one buffer per worker thread as well.
char* plainBuffer() {
  thread_local std::unique_ptr<char[]> buffer(new char[kReadChunk]);
  return buffer.get();
}

// Over TLS, a frame's header and payload are joined here to go out as one record (one per worker thread).
std::string& recordScratch() {
  thread_local std::string scratch;
  return scratch;
}

std::span<const uint8_t> bytes(std::string_view s) { return {reinterpret_cast<const uint8_t*>(s.data()), s.size()}; }

class BareWebSocket final : public SessionBase,
                            public WsConnection,
                            private ws::Link,
                            private ws::Events,
                            private net::Loop::Watcher {
 public:
  // `tls`, when set, is the connection's TLS session, its handshake done.
  BareWebSocket(Server::Impl& srv, uint32_t worker, int fd, std::unique_ptr<tls::Session> tls, AddressTicket ticket)
      : srv_(srv), loop_(&srv.pool.loop(worker)), conn_(srv.wsOptions, *this, *this), tls_(std::move(tls)),
        ticket_(std::move(ticket)), fd_(fd), worker_(worker) {}
  // Destroyed by its worker's table: after the socket closed, or at exit without telling the handler.
  ~BareWebSocket() override {
    if (fd_ >= 0) {
      loop_->unwatch(watch_, fd_);
      ::close(fd_);
    }
    metrics::add(metrics::registry().httpConnections, -1);
    if (conn_.opened()) metrics::add(metrics::registry().wsConnections, -1);
  }

  // The connection's id in its worker's table (Server::Impl::owned).
  static BareWebSocket* find(Server::Impl& srv, uint32_t worker, net::SlotId id) {
    return static_cast<BareWebSocket*>(srv.owned[worker].find(id));
  }

  void start(net::SlotId id, std::string_view leftover, const Request& request, std::string_view key) {
    id_ = id;
    auto now = SteadyClock::now();
    watch_ = loop_->watch(fd_, kInterest, *this);
    if (!watch_) {
      spdlog::warn("ws: epoll_ctl failed: {}", std::strerror(errno));
      conn_.fail();
      return;
    }
    handler_ = srv_.routes.websocket ? srv_.routes.websocket(*this, request) : nullptr;
    if (!handler_) {
      constexpr std::string_view kBody = "no WebSocket endpoint here\n";
      std::string res =
          "HTTP/1.1 404 Not Found\r\nServer: kaiwa\r\nContent-Type: text/plain; charset=utf-8\r\n"
          "Content-Length: " +
          std::to_string(kBody.size()) + "\r\nConnection: close\r\n\r\n";
      res += kBody;
      conn_.refuse(res, now);
      return;
    }
    std::string res =
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Accept: " +
        ws::acceptKey(key) + "\r\nServer: kaiwa\r\n\r\n";
    if (!conn_.open(res, now)) return;
    metrics::add(metrics::registry().wsConnections, 1);
    handler_->onOpen();
    // What came behind the request (over TLS: also a record partly received, held inside the session).
    bool held = tls_ && tls_->hasBuffered();
    if ((!leftover.empty() || held) && conn_.reading()) {
      std::string first(leftover);
      conn_.receive(first.data(), first.size(), now, held);
    }
    // Bytes that came after the request are reported by the poller: adding a ready socket reports it at once.
  }

  // net::Loop::Watcher
  void onReady(uint32_t events) override {
    KAIWA_ON_LOOP(*loop_);
    if (fd_ < 0) return;
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) onReadable();
    if (fd_ >= 0 && writeWaiting_ && (events & (EPOLLOUT | EPOLLHUP | EPOLLERR))) flush();
  }

  // WsConnection
  SendResult sendText(std::string frame) override { return result(conn_.sendText(frame)); }
  SendResult sendBinary(std::string frame) override { return result(conn_.sendBinary(frame)); }
  void close(uint16_t code, std::string_view reason) override { conn_.close(code, reason, SteadyClock::now()); }
  uint32_t worker() const override { return worker_; }
  std::string remoteAddress() const override {
    tcp::endpoint ep;
    socklen_t len = static_cast<socklen_t>(ep.capacity());
    if (fd_ < 0 || ::getpeername(fd_, ep.data(), &len) != 0) return "?";
    ep.resize(len);
    return ep.address().to_string() + ":" + std::to_string(ep.port());
  }
  uint16_t peerCloseCode() const override { return conn_.peerCloseCode(); }

  bool moveTo(uint32_t worker, std::function<void(uint32_t)> done) override {
    if (conn_.state() != ws::Connection::State::kOpen || !conn_.opened() || conn_.paused() || worker == worker_ ||
        worker >= srv_.pool.size()) {
      return false;
    }
    // Reading stops after the message being handled: the rest of this read (over TLS: the plaintext of the records
    // read) is kept by the connection, and the TLS session, with any partial record inside it, moves along.
    conn_.pause();
    // Leaves once the current call chain (the handler, the reader, the poller's batch) is done with it.
    loop_->post([srv = &srv_, from = worker_, id = id_, worker, done = std::move(done)]() mutable {
      if (auto* ws = find(*srv, from, id)) ws->moveOut(worker, std::move(done));
    });
    return true;
  }

  // SessionBase
  void shutdown(uint16_t code, const std::string& reason) override {
    if (conn_.opened()) {
      conn_.close(code, reason, SteadyClock::now());  // (only while open)
    } else {
      conn_.fail();  // a refusal still draining
    }
  }
  void tick(SteadyClock::time_point now) override {
    conn_.tick(now);
    // Over TLS, the session's vectors (and OpenSSL's buffers, if it kept any) are freed once nothing is in them; at
    // most once a tick, so a busy connection does not allocate per message.
    if (tlsUsed_ && fd_ >= 0 && tls_->releaseBuffers()) tlsUsed_ = false;
  }

 private:
  static SendResult result(ws::Connection::SendResult r) {
    return r == ws::Connection::SendResult::kQueued ? SendResult::kQueued : SendResult::kClosed;
  }

  // --- ws::Link ---
  bool write(std::string_view a, std::string_view b) override {
    if (fd_ < 0) return false;
    if (!tls_) return sendOrQueue(a, b);
    tlsUsed_ = true;
    tls::Status status;
    if (b.empty()) {
      status = tls_->write(bytes(a));
    } else {
      std::string& record = recordScratch();
      record.assign(a);
      record.append(b);
      status = tls_->write(bytes(record));
      record.clear();
      if (record.capacity() > 4 * kReadChunk) std::string().swap(record);
    }
    if (status != tls::Status::kOk) {
      spdlog::debug("ws {}: TLS write failed", remoteAddress());
      return false;
    }
    return pushTls();
  }
  std::size_t queued() const override { return tls_ ? tls_->output().size() : tx_.size() - txSent_; }
  void halfClose() override {
    if (fd_ < 0) return;
    if (tls_) {
      // TLS ends with our close_notify before the TCP half-close (RFC 8446 section 6.1).
      tlsUsed_ = true;
      tls_->shutdown();
      if (!pushTls()) {
        conn_.fail();
        return;
      }
      if (queued() > 0) {
        halfClosePending_ = true;  // flush() half-closes once it is out
        return;
      }
    }
    ::shutdown(fd_, SHUT_WR);
  }
  // Closes the socket (out of the loop first: events of the running batch for it are dropped) and lets its worker's
  // table destroy this object after the current call chain, which may still be inside it; the handler hears of the
  // end then if it has not yet (ws::Connection::finish).
  void closeSocket() override {
    if (fd_ < 0) return;
    loop_->unwatch(watch_, fd_);
    ::close(fd_);
    fd_ = -1;
    std::string().swap(tx_);
    txSent_ = 0;
    loop_->post([srv = &srv_, worker = worker_, id = id_] {
      if (BareWebSocket* ws = find(*srv, worker, id)) {
        ws->conn_.finish();
        srv->owned[worker].erase(id);
      }
    });
  }
  std::string peerName() const override { return remoteAddress(); }

  // --- ws::Events ---
  void onMessage(std::string_view payload, bool binary) override { handler_->onMessage(payload, binary); }
  void onClose() override { handler_->onClose(); }

  // Writes `a` then `b` to the socket now if nothing is queued before them, else queues them. False when the socket
  // failed.
  bool sendOrQueue(std::string_view a, std::string_view b) {
    std::size_t done = 0;
    if (queued() == 0 && !writeWaiting_) {
      iovec iov[2] = {{const_cast<char*>(a.data()), a.size()}, {const_cast<char*>(b.data()), b.size()}};
      msghdr msg{};
      msg.msg_iov = iov;
      msg.msg_iovlen = b.empty() ? 1 : 2;
      ssize_t n;
      do {
        n = ::sendmsg(fd_, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
      } while (n < 0 && errno == EINTR);
      if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) return false;
      done = n < 0 ? 0 : static_cast<std::size_t>(n);
      metrics::count(metrics::Count::kBytesOut, done);
      if (done == a.size() + b.size()) return true;
    }
    // Keep what the socket did not take.
    if (done < a.size()) {
      tx_.append(a.substr(done));
      tx_.append(b);
    } else {
      tx_.append(b.substr(done - a.size()));
    }
    waitWritable();
    return true;
  }

  // TLS: sends what the session wrote (its output is this connection's queue) unless a wait for writability is on.
  // False when the socket failed.
  bool pushTls() {
    if (fd_ < 0) return false;
    std::vector<uint8_t>& out = tls_->output();
    if (out.empty() || writeWaiting_) return true;
    ssize_t n;
    do {
      n = ::send(fd_, out.data(), out.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    } while (n < 0 && errno == EINTR);
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) return false;
    if (n > 0) {
      metrics::count(metrics::Count::kBytesOut, static_cast<uint64_t>(n));
      tls_->consumed(static_cast<std::size_t>(n));
    }
    if (!out.empty()) waitWritable();
    return true;
  }

  // The socket can take more: sends what is queued; once it is all out, the connection hears of it.
  void flush() {
    while (queued() > 0) {
      const char* data = tls_ ? reinterpret_cast<const char*>(tls_->output().data()) : tx_.data() + txSent_;
      ssize_t n = ::send(fd_, data, queued(), MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n > 0) {
        if (tls_) {
          tls_->consumed(static_cast<std::size_t>(n));
        } else {
          txSent_ += static_cast<std::size_t>(n);
        }
        metrics::count(metrics::Count::kBytesOut, static_cast<uint64_t>(n));
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;  // (still watching for writability)
      conn_.fail();
      return;
    }
    tx_.clear();
    txSent_ = 0;
    if (tx_.capacity() > kKeepCapacity) std::string().swap(tx_);
    if (writeWaiting_) {
      writeWaiting_ = false;
      loop_->rewatch(watch_, fd_, kInterest);
    }
    if (halfClosePending_) {
      halfClosePending_ = false;
      ::shutdown(fd_, SHUT_WR);
    }
    conn_.sent(SteadyClock::now());
  }

  void waitWritable() {
    if (writeWaiting_ || fd_ < 0) return;
    writeWaiting_ = true;
    loop_->rewatch(watch_, fd_, kInterest | net::Loop::kWritable);
  }

  void onReadable() {
    char* buffer = readBuffer();
    for (int round = 0; round < kReadsPerTurn; ++round) {
      if (fd_ < 0 || conn_.paused()) return;  // moving: read on once there (moveIn)
      ssize_t n = ::recv(fd_, buffer, kReadChunk, MSG_DONTWAIT);
      if (n > 0) {
        metrics::count(metrics::Count::kBytesIn, static_cast<uint64_t>(n));
        auto now = SteadyClock::now();
        if (tls_ && conn_.reading()) {
          if (!decrypt(buffer, static_cast<std::size_t>(n), now)) return;
        } else {
          conn_.receive(buffer, static_cast<std::size_t>(n), now);  // (draining: only counted)
        }
        if (static_cast<std::size_t>(n) < kReadChunk) return;  // a short read emptied the socket
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
      // The peer closed (0) or the socket failed: nothing more will come or go.
      conn_.receiveEnd();
      return;
    }
    // More is waiting, and no new edge will say so: read on after the others had their turn.
    if (readPosted_) return;
    readPosted_ = true;
    loop_->post([srv = &srv_, worker = worker_, id = id_] {
      BareWebSocket* ws = find(*srv, worker, id);  // (gone, or moved away: it reads on where it is)
      if (!ws) return;
      ws->readPosted_ = false;
      if (ws->fd_ >= 0) ws->onReadable();
    });
  }

  // TLS: hands the received records to the session and the plaintext they hold to the connection. False when the
  // connection ended (the peer's close_notify or a TLS error; the handler has been told).
  bool decrypt(const char* data, std::size_t size, SteadyClock::time_point now) {
    tlsUsed_ = true;
    tls_->feed(bytes({data, size}));
    char* plain = plainBuffer();
    while (conn_.reading()) {
      tls::ReadResult r = tls_->read({reinterpret_cast<uint8_t*>(plain), kReadChunk});
      // What the call wrote (a key update's answer, say) leaves at once.
      if (!pushTls()) {
        conn_.fail();
        return false;
      }
      if (r.status == tls::Status::kOk) {
        conn_.receive(plain, r.bytes, now, tls_->hasBuffered());
        continue;
      }
      if (r.status == tls::Status::kWantRead) {
        // No plaintext (yet): the peer is active, and a record partly here holds a message begun.
        conn_.receive(nullptr, 0, now, tls_->hasBuffered());
        break;
      }
      // close_notify ends the stream as a TCP close would; anything else is a TLS error: no more records can be
      // trusted.
      if (r.status == tls::Status::kError) {
        spdlog::debug("ws {}: TLS error, closing", remoteAddress());
        metrics::registry().drop(metrics::Drop::kTlsBad);
      }
      conn_.receiveEnd();
      return false;
    }
    return fd_ >= 0;
  }

  // net::Loop::Watcher: onReady threw (a handler's bug): the connection ends; the worker goes on.
  void onFailure() noexcept override {
    watch_ = 0;  // (the loop forgot it already)
    conn_.fail();
  }

  // --- moving to another worker (moveTo) ---
  // On the old worker, after the call chain that asked for the move. The connection leaves its worker's table and
  // travels inside the posted task, owned by it: if the workers stop before the task runs (shutdown), the task's
  // destruction closes it (without telling its handler, as at exit).
  void moveOut(uint32_t to, std::function<void(uint32_t)> done) {
    if (conn_.state() != ws::Connection::State::kOpen) {
      // Closed or failed meanwhile: it stays, and so does its handler (onClose follows, or came already).
      done(worker_);
      resumeReading();
      return;
    }
    loop_->unwatch(watch_, fd_);
    watch_ = 0;
    std::unique_ptr<SessionBase> self = srv_.owned[worker_].take(id_);
    srv_.pool.loop(to).post([srv = &srv_, to, self = std::move(self), done = std::move(done)]() mutable {
      auto* ws = static_cast<BareWebSocket*>(self.get());
      net::SlotId id = srv->owned[to].insert(std::move(self));
      ws->moveIn(to, id, std::move(done));
    });
  }

  // On the new worker: from here on every call on the connection happens on this thread.
  void moveIn(uint32_t to, net::SlotId id, std::function<void(uint32_t)> done) {
    worker_ = to;
    id_ = id;
    loop_ = &srv_.pool.loop(to);
    metrics::add(metrics::registry().wsMoves);
    watch_ = loop_->watch(fd_, kInterest | (writeWaiting_ ? net::Loop::kWritable : 0u), *this);
    if (!watch_) {
      spdlog::warn("ws: epoll_ctl failed after a move: {}", std::strerror(errno));
      conn_.fail();
    }
    done(worker_);
    resumeReading();
  }

  // The messages that came behind the one that asked for the move, then the socket (whose edge may be spent).
  void resumeReading() {
    conn_.resume(SteadyClock::now());
    if (fd_ >= 0) onReadable();
  }

  static constexpr uint32_t kInterest = net::Loop::kReadable | net::Loop::kEdge;

  Server::Impl& srv_;
  net::Loop* loop_;     // the worker's
  net::SlotId id_ = 0;  // in the worker's table
  net::Loop::WatchId watch_ = 0;
  std::unique_ptr<WsHandler> handler_;
  ws::Connection conn_;
  std::unique_ptr<tls::Session> tls_;  // TLS, or none (apart: a plain connection does not carry its size)
  AddressTicket ticket_;               // the connection's place in its address's count
  std::string tx_;  // plain TCP: what the socket did not take yet, from txSent_ on (empty while idle)
  std::size_t txSent_ = 0;
  int fd_;  // -1 once closed
  uint32_t worker_;
  bool readPosted_ = false, writeWaiting_ = false, halfClosePending_ = false, tlsUsed_ = false;
};

}  // namespace

void startBareWebSocket(Server::Impl& srv, uint32_t worker, int fd, std::optional<tls::Session> tls,
                        AddressTicket ticket, std::string_view leftover, const Request& request, std::string_view key) {
  auto session = tls ? std::make_unique<tls::Session>(std::move(*tls)) : nullptr;
  auto owned = std::make_unique<BareWebSocket>(srv, worker, fd, std::move(session), std::move(ticket));
  BareWebSocket* ws = owned.get();
  net::SlotId id = srv.owned[worker].insert(std::move(owned));
  ws->start(id, leftover, request, key);
}

std::optional<tls::Session> takeOverTls(SSL* ssl, std::string& pending) {
  // A reference of our own: Asio frees its reference and its half of its BIO pair with its stream.
  if (!ssl || SSL_up_ref(ssl) != 1) return std::nullopt;
  // Records still inside Asio's BIO pair (a client may send its first frames right behind the upgrade request) are
  // decrypted now and their plaintext goes with what Beast read past the request; a record only partly received
  // stays inside the SSL object, and the rest of it comes through the session. Output that Asio has not sent (it
  // only comes from answering a key update while the request was read) would be lost: such a connection is not
  // taken over.
  auto session = tls::Session::adopt(ssl, tls::Buffers::kReleaseWhenEmpty, &pending);
  if (!session) SSL_free(ssl);
  return session;
}

}  // namespace kaiwa::http::detail

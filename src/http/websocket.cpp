// WebSocket on bare descriptors, over plain TCP or TLS: the connection kind that carries nearly all signaling
// traffic, so it is kept lean (docs/architecture.md, "WebSocket connections"):
// - no Asio operation per connection: each connection is registered, edge-triggered, in its worker's loop
//   (net::Loop), and owned by the worker's table of connections (Server::Impl::owned), named by a SlotId;
// - no buffer while idle: a worker reads into one shared buffer, parses every whole frame in place and keeps only a
//   partial frame's bytes; a frame is written at once (one sendmsg for header and payload) when nothing is queued
//   before it, and only what the socket did not take is kept;
// - no timer per connection: the worker ticks its sessions for pings, idle timeouts, the deadline of a message begun
//   (a peer that sends a byte now and then must still finish its message: its partial frame is held meanwhile) and
//   close deadlines;
// - no allocation per message on the way in or out;
// - over TLS, the SSL object of the HTTPS connection (its handshake done by Asio) is taken over at the upgrade and
//   talks to the socket through a BIO over the worker's buffers, and OpenSSL lets go of its record buffers between
//   records: an idle WSS connection keeps its SSL state, not the ~100 KB of buffers of an Asio TLS stream.
// The close follows RFC 6455: our close frame after what is queued, the peer's close frame awaited (bounded), then
// a half-close and a bounded drain of what the peer still sends, so our close frame is not lost to a reset.
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <spdlog/spdlog.h>

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <functional>
#include <stdexcept>
#include <utility>

#include "common/metrics.hpp"
#include "http/server_impl.hpp"
#include "net/loop.hpp"
#include "net/slots.hpp"
#include "ws/frame.hpp"

namespace kaiwa::http::detail {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using SteadyClock = std::chrono::steady_clock;
using std::chrono::seconds;

constexpr std::size_t kReadChunk = 64 * 1024;
constexpr int kReadsPerTurn = 4;               // then other connections get their turn
constexpr auto kCloseTimeout = seconds(5);     // for the peer's close frame after ours
constexpr auto kLingerTime = seconds(3);       // draining after the close handshake
constexpr std::size_t kLingerBytes = 8 << 20;  // ... and at most this much
constexpr std::size_t kKeepCapacity = 4096;    // buffers above this are freed once empty

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

// TLS on a bare descriptor. Every SSL call of a worker runs on its thread, one at a time: the BIO reads the records
// that the connection has just received (tlsIo.in) and appends what OpenSSL writes to tlsIo.out, which the caller
// sends (or queues) right after the call.
struct TlsIo {
  const char* in = nullptr;
  std::size_t inLen = 0;
  std::string out;
  std::string plain;  // one message's header and payload, to go out as one record
};
thread_local TlsIo tlsIo;

int bioWrite(BIO*, const char* data, int len) {
  tlsIo.out.append(data, static_cast<std::size_t>(len));
  return len;
}
int bioRead(BIO* bio, char* data, int len) {
  BIO_clear_retry_flags(bio);
  if (tlsIo.inLen == 0) {
    BIO_set_retry_read(bio);
    return -1;
  }
  std::size_t n = std::min(tlsIo.inLen, static_cast<std::size_t>(len));
  std::memcpy(data, tlsIo.in, n);
  tlsIo.in += n;
  tlsIo.inLen -= n;
  return static_cast<int>(n);
}
long bioCtrl(BIO*, int cmd, long, void*) { return cmd == BIO_CTRL_FLUSH ? 1 : 0; }
int bioCreate(BIO* bio) {
  BIO_set_init(bio, 1);
  return 1;
}
BIO_METHOD* bioMethod() {
  static BIO_METHOD* method = [] {
    BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "kaiwa websocket");
    if (!m || !BIO_meth_set_write(m, bioWrite) || !BIO_meth_set_read(m, bioRead) || !BIO_meth_set_ctrl(m, bioCtrl) ||
        !BIO_meth_set_create(m, bioCreate)) {
      throw std::runtime_error("BIO_meth_new failed");
    }
    return m;
  }();
  return method;
}

// What OpenSSL wrote during the last call, taken out of the worker's buffer (which a nested call may use again).
std::string takeTlsOutput() {
  std::string out;
  out.swap(tlsIo.out);
  return out;
}
// Gives a buffer back for reuse once its bytes are sent or queued.
void returnTlsOutput(std::string&& out) {
  if (tlsIo.out.empty() && tlsIo.out.capacity() < out.capacity() && out.capacity() <= 4 * kReadChunk) {
    out.clear();
    tlsIo.out.swap(out);
  }
}

class BareWebSocket final : public SessionBase, public WsConnection, private ws::FrameSink, private net::Loop::Watcher {
 public:
  // `ssl`, when set, is the connection's TLS state (owned from now on), its handshake done.
  BareWebSocket(Server::Impl& srv, uint32_t worker, int fd, SSL* ssl, AddressTicket ticket)
      : srv_(srv), loop_(&srv.pool.loop(worker)), reader_(srv.options.wsMaxMessageBytes), ssl_(ssl),
        ticket_(std::move(ticket)), fd_(fd), worker_(worker) {}
  // Destroyed by its worker's table: after finalize(), or at exit without telling the handler.
  ~BareWebSocket() override {
    if (fd_ >= 0) {
      loop_->unwatch(watch_, fd_);
      ::close(fd_);
    }
    if (ssl_) SSL_free(ssl_);
    metrics::add(metrics::registry().httpConnections, -1);
    if (opened_) metrics::add(metrics::registry().wsConnections, -1);
  }

  // The connection's id in its worker's table (Server::Impl::owned).
  static BareWebSocket* find(Server::Impl& srv, uint32_t worker, net::SlotId id) {
    return static_cast<BareWebSocket*>(srv.owned[worker].find(id));
  }

  void start(net::SlotId id, std::string_view leftover, const Request& request, std::string_view key) {
    id_ = id;
    watch_ = loop_->watch(fd_, kInterest, *this);
    if (!watch_) {
      spdlog::warn("ws: epoll_ctl failed: {}", std::strerror(errno));
      die();
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
      state_ = State::kDraining;
      queue(res, {});
      return;
    }
    std::string res =
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Accept: " +
        ws::acceptKey(key) + "\r\nServer: kaiwa\r\n\r\n";
    queue(res, {});
    if (state_ != State::kOpen) return;
    opened_ = true;
    lastRx_ = SteadyClock::now();
    metrics::add(metrics::registry().wsConnections, 1);
    handler_->onOpen();
    if (!leftover.empty() && readable()) {
      rx_.assign(leftover);
      uint32_t before = completed_;
      ingest(nullptr, 0);
      trackMessage(before);
    }
    // Bytes that came after the request are reported by the poller: adding a ready socket reports it at once.
  }

  // net::Loop::Watcher
  void onReady(uint32_t events) override {
    KAIWA_ON_LOOP(*loop_);
    if (state_ == State::kDead) return;
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) onReadable();
    if (state_ != State::kDead && writeWaiting_ && (events & (EPOLLOUT | EPOLLHUP | EPOLLERR))) flush();
  }

  // WsConnection
  SendResult sendText(std::string frame) override { return send(frame, ws::Opcode::kText); }
  SendResult sendBinary(std::string frame) override { return send(frame, ws::Opcode::kBinary); }
  void close(uint16_t code, std::string_view reason) override {
    if (state_ != State::kOpen || !opened_) return;
    state_ = State::kClosing;
    deadline_ = SteadyClock::now() + kCloseTimeout;
    queue(ws::closeFrame(code, reason), {});
  }
  uint32_t worker() const override { return worker_; }
  std::string remoteAddress() const override {
    tcp::endpoint ep;
    socklen_t len = static_cast<socklen_t>(ep.capacity());
    if (fd_ < 0 || ::getpeername(fd_, ep.data(), &len) != 0) return "?";
    ep.resize(len);
    return ep.address().to_string() + ":" + std::to_string(ep.port());
  }
  uint16_t peerCloseCode() const override { return peerCloseCode_; }

  bool moveTo(uint32_t worker, std::function<void(uint32_t)> done) override {
    if (state_ != State::kOpen || !opened_ || moving_ || worker == worker_ || worker >= srv_.pool.size()) return false;
    // Reading stops after the message being handled: the rest of this read (over TLS: the plaintext of the records
    // read) is kept in rx_, and the SSL object, with any partial record inside it, moves along.
    moving_ = true;
    // Leaves once the current call chain (the handler, the reader, the poller's batch) is done with it.
    loop_->post([srv = &srv_, from = worker_, id = id_, worker, done = std::move(done)]() mutable {
      if (auto* ws = find(*srv, from, id)) ws->moveOut(worker, std::move(done));
    });
    return true;
  }

  // SessionBase
  void shutdown(uint16_t code, const std::string& reason) override {
    if (state_ == State::kOpen && opened_) {
      close(code, reason);
    } else if (!opened_ && state_ != State::kDead) {
      die();
    }
  }
  void tick(SteadyClock::time_point now) override {
    switch (state_) {
      case State::kOpen: {
        if (!opened_) return;
        if (messageSince_ != SteadyClock::time_point{} && srv_.options.messageTimeout.count() > 0 &&
            now - messageSince_ >= srv_.options.messageTimeout) {
          // A message begun and not finished in time: its bytes are not held any longer.
          spdlog::debug("ws {}: a message unfinished for {} ms, closing", remoteAddress(),
                        srv_.options.messageTimeout.count());
          std::string().swap(rx_);  // (not under the reader: ticks come from the worker's timer)
          messageSince_ = {};
          queue(ws::closeFrame(ws::kClosePolicy, "message too slow"), {});
          enterDraining();
          return;
        }
        auto idle = now - lastRx_;
        if (idle >= srv_.options.pingTimeout) {
          spdlog::debug("ws {}: no data for {} ms, closing", remoteAddress(), srv_.options.pingTimeout.count());
          die();
          notifyClosed();
        } else if (idle >= srv_.options.pingTimeout / 2 && !pingSent_) {
          pingSent_ = true;
          uint8_t ping[2] = {0x89, 0x00};
          queue({reinterpret_cast<const char*>(ping), 2}, {});
        }
        return;
      }
      case State::kClosing:
        if (now >= deadline_) enterDraining();  // no close frame came back: give up waiting
        return;
      case State::kDraining:
        if (halfClosed_ && now >= deadline_) die();
        return;
      case State::kDead:
        return;
    }
  }

 private:
  enum class State : uint8_t {
    kOpen,      // messages flow
    kClosing,   // our close frame is queued; reading (and discarding) until the peer's comes
    kDraining,  // the close handshake is over: flush what is queued, half-close, read until the peer closes too
    kDead,      // socket closed
  };

  int fd() const { return fd_; }
  bool readable() const { return state_ == State::kOpen || state_ == State::kClosing; }
  std::size_t queued() const { return tx_.size() - txSent_; }

  SendResult send(std::string_view payload, ws::Opcode opcode) {
    if (state_ != State::kOpen || !opened_) return SendResult::kClosed;
    uint8_t header[ws::kMaxHeaderBytes];
    std::size_t h = ws::writeHeader(header, opcode, payload.size());
    if (!queue({reinterpret_cast<const char*>(header), h}, payload)) return SendResult::kClosed;
    metrics::count(metrics::Count::kMessagesOut);
    return state_ == State::kDead ? SendResult::kClosed : SendResult::kQueued;
  }

  // Sends `a` then `b` (over TLS: as one record). False when the connection is closed by it (slow consumer, error).
  bool queue(std::string_view a, std::string_view b) {
    if (!ssl_) return queueRaw(a, b);
    if (state_ == State::kDead) return false;
    std::string& plain = tlsIo.plain;
    plain.assign(a);
    plain.append(b);
    ERR_clear_error();
    for (std::size_t done = 0; done < plain.size();) {
      int n =
          SSL_write(ssl_, plain.data() + done, static_cast<int>(std::min<std::size_t>(plain.size() - done, 1 << 20)));
      if (n <= 0) {
        spdlog::debug("ws {}: TLS write failed", remoteAddress());
        ERR_clear_error();
        plain.clear();
        tlsIo.out.clear();  // never to another connection
        broken();
        return false;
      }
      done += static_cast<std::size_t>(n);
    }
    if (plain.capacity() > 4 * kReadChunk) std::string().swap(plain);
    return sendTlsOutput();
  }

  // Sends or queues what OpenSSL wrote during the last call.
  bool sendTlsOutput() {
    if (tlsIo.out.empty()) return state_ != State::kDead;
    std::string out = takeTlsOutput();
    bool ok = queueRaw(out, {});
    returnTlsOutput(std::move(out));
    return ok;
  }

  // Writes `a` then `b` to the socket now if nothing is queued before them, else queues them. False when the queue
  // passed the slow-consumer limit (the connection is then closed).
  bool queueRaw(std::string_view a, std::string_view b) {
    if (state_ == State::kDead) return false;
    std::size_t done = 0;
    if (queued() == 0 && !writeWaiting_) {
      iovec iov[2] = {{const_cast<char*>(a.data()), a.size()}, {const_cast<char*>(b.data()), b.size()}};
      msghdr msg{};
      msg.msg_iov = iov;
      msg.msg_iovlen = b.empty() ? 1 : 2;
      ssize_t n;
      do {
        n = ::sendmsg(fd(), &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
      } while (n < 0 && errno == EINTR);
      if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
        broken();
        return false;
      }
      done = n < 0 ? 0 : static_cast<std::size_t>(n);
      metrics::count(metrics::Count::kBytesOut, done);
      if (done == a.size() + b.size()) {
        afterFlush();
        return true;
      }
    }
    // Keep what the socket did not take.
    if (done < a.size()) {
      tx_.append(a.substr(done));
      tx_.append(b);
    } else {
      tx_.append(b.substr(done - a.size()));
    }
    if (queued() > srv_.options.maxQueuedBytes) {
      spdlog::info("ws {}: closed as a slow consumer ({} bytes queued)", remoteAddress(), queued());
      metrics::registry().drop(metrics::Drop::kSlowConsumer);
      broken();
      return false;
    }
    waitWritable();
    return true;
  }

  void flush() {
    while (queued() > 0) {
      ssize_t n = ::send(fd(), tx_.data() + txSent_, queued(), MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n > 0) {
        txSent_ += static_cast<std::size_t>(n);
        metrics::count(metrics::Count::kBytesOut, static_cast<uint64_t>(n));
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        waitWritable();
        return;
      }
      broken();
      return;
    }
    tx_.clear();
    txSent_ = 0;
    if (tx_.capacity() > kKeepCapacity) std::string().swap(tx_);
    if (writeWaiting_) {
      writeWaiting_ = false;
      loop_->rewatch(watch_, fd_, kInterest);
    }
    afterFlush();
  }

  // Everything queued is out: a draining connection half-closes now.
  void afterFlush() {
    if (state_ != State::kDraining || halfClosed_) return;
    if (ssl_ && !closeNotifySent_) {
      // TLS ends with our close_notify before the TCP half-close (RFC 8446 section 6.1).
      closeNotifySent_ = true;
      ERR_clear_error();
      SSL_shutdown(ssl_);
      ERR_clear_error();
      if (!tlsIo.out.empty()) {
        sendTlsOutput();  // comes back here once it is out
        return;
      }
    }
    halfClosed_ = true;
    ::shutdown(fd(), SHUT_WR);
    deadline_ = SteadyClock::now() + kLingerTime;
  }

  void waitWritable() {
    if (writeWaiting_ || state_ == State::kDead) return;
    writeWaiting_ = true;
    loop_->rewatch(watch_, fd_, kInterest | net::Loop::kWritable);
  }

  void onReadable() {
    char* buffer = readBuffer();
    for (int round = 0; round < kReadsPerTurn; ++round) {
      if (state_ == State::kDead || moving_) return;  // moving: read on once there (moveIn)
      ssize_t n = ::recv(fd(), buffer, kReadChunk, MSG_DONTWAIT);
      if (n > 0) {
        metrics::count(metrics::Count::kBytesIn, static_cast<uint64_t>(n));
        if (state_ == State::kDraining) {
          drained_ += static_cast<std::size_t>(n);
          if (drained_ > kLingerBytes) {
            die();
            return;
          }
        } else {
          lastRx_ = SteadyClock::now();
          pingSent_ = false;
          uint32_t before = completed_;
          if (ssl_) {
            if (!decrypt(buffer, static_cast<std::size_t>(n))) return;
          } else {
            ingest(buffer, static_cast<std::size_t>(n));
          }
          trackMessage(before);
        }
        if (static_cast<std::size_t>(n) < kReadChunk) return;  // a short read emptied the socket
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
      // The peer closed (0) or the socket failed: nothing more will come or go.
      bool wasOpen = readable();
      die();
      if (wasOpen) notifyClosed();
      return;
    }
    // More is waiting, and no new edge will say so: read on after the others had their turn.
    if (readPosted_) return;
    readPosted_ = true;
    loop_->post([srv = &srv_, worker = worker_, id = id_] {
      BareWebSocket* ws = find(*srv, worker, id);  // (gone, or moved away: it reads on where it is)
      if (!ws) return;
      ws->readPosted_ = false;
      if (ws->state_ != State::kDead) ws->onReadable();
    });
  }

  // TLS: hands the received records to OpenSSL and parses the plaintext they hold. False when the connection ended
  // (the peer's close_notify or a TLS error; the handler has been told).
  bool decrypt(const char* data, std::size_t size) {
    char* plain = plainBuffer();
    bool ended = false;
    while (readable()) {
      // The input is handed over for this call only: what it leaves is kept here, not in the worker's TlsIo, which
      // the handler's sends to other connections use meanwhile; and what the call wrote (a key update's answer,
      // say) leaves at once, before any other connection's records can join it in tlsIo.out.
      tlsIo.in = data;
      tlsIo.inLen = size;
      ERR_clear_error();
      int n = SSL_read(ssl_, plain, static_cast<int>(kReadChunk));
      int error = n > 0 ? SSL_ERROR_NONE : SSL_get_error(ssl_, n);
      data = tlsIo.in;
      size = tlsIo.inLen;
      tlsIo.in = nullptr;
      tlsIo.inLen = 0;
      if (!tlsIo.out.empty() && !sendTlsOutput()) return false;
      if (n > 0) {
        ingest(plain, static_cast<std::size_t>(n));
        continue;
      }
      if (error == SSL_ERROR_WANT_READ) break;
      // close_notify (SSL_ERROR_ZERO_RETURN) ends the stream as a TCP close would; anything else is a TLS error:
      // no more records can be trusted.
      if (error != SSL_ERROR_ZERO_RETURN) {
        spdlog::debug("ws {}: TLS error {}, closing", remoteAddress(), error);
        metrics::registry().drop(metrics::Drop::kTlsBad);
      }
      ERR_clear_error();
      ended = true;
      break;
    }
    if (!ended) return state_ != State::kDead;
    bool wasOpen = readable();
    die();
    if (wasOpen) notifyClosed();
    return false;
  }

  // Parses the whole frames in what was read (in place when no partial frame is pending), keeps the rest.
  void ingest(char* data, std::size_t size) {
    if (moving_) {  // parsed on the new worker (resumeReading)
      rx_.append(data, size);
      return;
    }
    if (rx_.empty() && size > 0) {
      std::size_t used = reader_.read(data, size, *this);
      if (used < size && readable() && !reader_.error() && !reader_.closed()) rx_.assign(data + used, size - used);
    } else {
      rx_.append(data, size);
      std::size_t used = reader_.read(rx_.data(), rx_.size(), *this);
      rx_.erase(0, used);
    }
    if (!readable() || reader_.error() || reader_.closed()) rx_.clear();
    if (rx_.empty() && rx_.capacity() > kKeepCapacity) std::string().swap(rx_);
    if (uint16_t code = reader_.error(); code && readable()) {
      if (code == ws::kCloseTooBig) metrics::registry().drop(metrics::Drop::kTooLarge);
      spdlog::debug("ws {}: protocol error, closing with {}", remoteAddress(), code);
      bool wasOpen = state_ == State::kOpen;
      if (wasOpen) queue(ws::closeFrame(code, {}), {});
      enterDraining();
    }
  }

  // Starts or ends the clock of a message begun (ServerOptions::messageTimeout) after a read: bytes of an unfinished
  // frame, of a fragmented message, or of a partial TLS record are held. A message finished during the read
  // (`completed_` moved past `before`) means what is held now began in this read.
  void trackMessage(uint32_t before) {
    if (state_ != State::kOpen) return;
    bool unfinished = !rx_.empty() || reader_.pendingBytes() > 0 || (ssl_ && SSL_has_pending(ssl_));
    if (!unfinished) {
      messageSince_ = {};
    } else if (messageSince_ == SteadyClock::time_point{} || completed_ != before) {
      messageSince_ = SteadyClock::now();
    }
  }

  // ws::FrameSink
  bool onMessage(std::string_view payload, bool binary) override {
    ++completed_;
    if (state_ == State::kOpen) handler_->onMessage(payload, binary);
    return readable() && !moving_;  // while closing, messages are read and dropped until the close frame
  }
  void onPing(std::string_view payload) override {
    if (reader_.pendingBytes() == 0) ++completed_;  // (between the fragments of a message, that message goes on)
    if (!readable()) return;
    uint8_t header[ws::kMaxHeaderBytes];
    std::size_t h = ws::writeHeader(header, ws::Opcode::kPong, payload.size());
    queue({reinterpret_cast<const char*>(header), h}, payload);
  }
  void onClose(uint16_t code, std::string_view) override {
    peerCloseCode_ = code == ws::kCloseNoStatus ? 0 : code;
    if (state_ == State::kOpen) {
      // Echo the close (RFC 6455 section 5.5.1), with its code when it had one.
      if (code == ws::kCloseNoStatus) {
        uint8_t empty[2] = {0x88, 0x00};
        queue({reinterpret_cast<const char*>(empty), 2}, {});
      } else {
        queue(ws::closeFrame(code, {}), {});
      }
    }
    enterDraining();
  }

  void enterDraining() {
    if (state_ == State::kDraining || state_ == State::kDead) return;
    state_ = State::kDraining;
    notifyClosed();
    if (state_ != State::kDead && queued() == 0) afterFlush();
  }

  // The socket failed (or the peer is too slow): close it now; the handler hears of it after the current call,
  // never from inside a send it made.
  void broken() { die(); }  // finalize() tells the handler

  // Closes the socket (out of the loop first: events of the running batch for it are dropped) and lets its worker's
  // table destroy this object after the current call chain, which may still be inside it.
  void die() {
    if (state_ == State::kDead) return;
    state_ = State::kDead;
    loop_->unwatch(watch_, fd_);
    ::close(fd_);
    fd_ = -1;
    std::string().swap(tx_);  // (rx_ may be under the reader right now: ingest() lets it go)
    txSent_ = 0;
    loop_->post([srv = &srv_, worker = worker_, id = id_] {
      if (BareWebSocket* ws = find(*srv, worker, id)) {
        ws->notifyClosed();
        srv->owned[worker].erase(id);
      }
    });
  }

  // net::Loop::Watcher: onReady threw (a handler's bug): the connection ends; the worker goes on.
  void onFailure() noexcept override {
    watch_ = 0;  // (the loop forgot it already)
    die();
  }

  void notifyClosed() {
    if (notified_ || !opened_) return;
    notified_ = true;
    handler_->onClose();
  }

  // --- moving to another worker (moveTo) ---
  // On the old worker, after the call chain that asked for the move. The connection leaves its worker's table and
  // travels inside the posted task, owned by it: if the workers stop before the task runs (shutdown), the task's
  // destruction closes it (without telling its handler, as at exit).
  void moveOut(uint32_t to, std::function<void(uint32_t)> done) {
    if (state_ != State::kOpen) {
      // Closed or failed meanwhile: it stays, and so does its handler (onClose follows, from die() or the close).
      moving_ = false;
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
    moving_ = false;
    metrics::add(metrics::registry().wsMoves);
    watch_ = loop_->watch(fd_, kInterest | (writeWaiting_ ? net::Loop::kWritable : 0u), *this);
    if (!watch_) {
      spdlog::warn("ws: epoll_ctl failed after a move: {}", std::strerror(errno));
      die();
    }
    done(worker_);
    resumeReading();
  }

  // The messages that came behind the one that asked for the move, then the socket (whose edge may be spent).
  void resumeReading() {
    if (!rx_.empty() && readable()) {
      uint32_t before = completed_;
      ingest(nullptr, 0);
      trackMessage(before);
    }
    if (state_ != State::kDead) onReadable();
  }

  static constexpr uint32_t kInterest = net::Loop::kReadable | net::Loop::kEdge;

  Server::Impl& srv_;
  net::Loop* loop_;     // the worker's
  net::SlotId id_ = 0;  // in the worker's table
  net::Loop::WatchId watch_ = 0;
  std::unique_ptr<WsHandler> handler_;
  ws::FrameReader reader_;
  SSL* ssl_;              // TLS, or nullptr
  AddressTicket ticket_;  // the connection's place in its address's count
  std::string rx_;        // a partial frame (empty while idle)
  std::string tx_;        // what the socket did not take yet, from txSent_ on (empty while idle)
  std::size_t txSent_ = 0;
  std::size_t drained_ = 0;
  SteadyClock::time_point lastRx_{};
  SteadyClock::time_point deadline_{};      // kClosing: for the peer's close; kDraining: for the peer's FIN
  SteadyClock::time_point messageSince_{};  // when the unfinished message held began; {} when none is
  uint32_t completed_ = 0;                  // messages (and pings outside a fragmented message) read so far
  int fd_;
  uint32_t worker_;
  uint16_t peerCloseCode_ = 0;
  State state_ = State::kOpen;
  bool opened_ = false, notified_ = false, readPosted_ = false, writeWaiting_ = false, pingSent_ = false,
       halfClosed_ = false, closeNotifySent_ = false, moving_ = false;
};

}  // namespace

void startBareWebSocket(Server::Impl& srv, uint32_t worker, int fd, SSL* ssl, AddressTicket ticket,
                        std::string_view leftover, const Request& request, std::string_view key) {
  auto owned = std::make_unique<BareWebSocket>(srv, worker, fd, ssl, std::move(ticket));
  BareWebSocket* ws = owned.get();
  net::SlotId id = srv.owned[worker].insert(std::move(owned));
  ws->start(id, leftover, request, key);
}

SSL* takeOverTls(SSL* ssl, std::string& pending) {
  BIO* rbio = SSL_get_rbio(ssl);
  BIO* wbio = SSL_get_wbio(ssl);
  if (!rbio || !wbio) return nullptr;
  // What is still inside Asio's TLS stream — records received and not decrypted, plaintext decrypted and not read
  // (a client may send its first frames right behind the upgrade request) — is read out now, through Asio's BIO
  // pair, and goes with what Beast read past the request. A record only partly received stays inside the SSL object,
  // which moves along; the rest of it comes through the new BIO.
  char buffer[16 * 1024];
  while (SSL_has_pending(ssl) || BIO_ctrl_pending(rbio) > 0) {
    ERR_clear_error();
    int n = SSL_read(ssl, buffer, sizeof buffer);
    if (n > 0) {
      pending.append(buffer, static_cast<std::size_t>(n));
      continue;
    }
    int error = SSL_get_error(ssl, n);
    ERR_clear_error();
    if (error == SSL_ERROR_WANT_READ) break;
    return nullptr;  // close_notify, an alert, a bad record: nothing more to serve
  }
  // Output that Asio has not sent would be lost with its BIO pair (it only comes from answering a key update while
  // the request was read): such a connection is not taken over.
  if (BIO_ctrl_wpending(wbio) != 0) return nullptr;
  BIO* bio = BIO_new(bioMethod());
  if (!bio || SSL_up_ref(ssl) != 1) {
    if (bio) BIO_free(bio);
    return nullptr;
  }
  SSL_set_bio(ssl, bio, bio);  // frees Asio's half of its BIO pair; Asio frees the other half and drops its reference
  SSL_clear_mode(ssl, SSL_MODE_ENABLE_PARTIAL_WRITE);
  SSL_set_mode(ssl, SSL_MODE_RELEASE_BUFFERS);
  SSL_set_options(ssl, SSL_OP_NO_RENEGOTIATION);
  return ssl;
}

}  // namespace kaiwa::http::detail

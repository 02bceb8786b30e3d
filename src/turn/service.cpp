#include "turn/service.hpp"

#include "net/accept_backoff.hpp"

#include <linux/sock_diag.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <spdlog/spdlog.h>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>

#include <array>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <random>
#include <unordered_map>

#include "common/metrics.hpp"
#include "net/loop.hpp"
#include "net/slots.hpp"
#include "net/udp_socket.hpp"
#include "net/worker_pool.hpp"
#include "stun/saslprep.hpp"
#include "tls/session.hpp"
#include "turn/stream_connection.hpp"

namespace kaiwa::turn {

namespace asio = boost::asio;
using stun::Address;

static_assert(metrics::kTurnQuotaNames.size() == size_t(QuotaRefusal::kCount));

namespace {
constexpr int kDrainRounds = 16;  // recvmmsg batches per socket per wake-up
// One recv of TLS records per connection and readiness: up to a full record and its header, and a second one's start.
constexpr size_t kTlsReadChunk = 17 * 1024 + 512;

asio::ip::tcp::endpoint toEndpoint(const Address& a) {
  sockaddr_storage ss{};
  unsigned len = a.toSockaddr(ss);
  asio::ip::tcp::endpoint ep;
  std::memcpy(ep.data(), &ss, len);
  ep.resize(len);
  return ep;
}

std::optional<Address> fromEndpoint(const asio::ip::tcp::endpoint& ep) {
  sockaddr_storage ss{};
  std::memcpy(&ss, ep.data(), std::min<size_t>(ep.size(), sizeof ss));
  return Address::fromSockaddr(reinterpret_cast<sockaddr*>(&ss));
}

// A TCP socket bound to `local`: a relay's listener (bound without SO_REUSEPORT, so a port some other socket holds
// is not shared, then given it so the relay's outgoing connections can bind the same port), or an outgoing
// connection from the relayed address (SO_REUSEPORT before the bind). -1 on failure.
int tcpRelaySocket(const Address& local, bool listener) {
  int fd =
      ::socket(local.family == stun::Family::kV4 ? AF_INET : AF_INET6, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (local.family == stun::Family::kV6) ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  if (!listener) ::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  sockaddr_storage ss{};
  unsigned len = local.toSockaddr(ss);
  bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&ss), len) == 0;
  if (ok && listener) ok = ::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) == 0 && ::listen(fd, 64) == 0;
  if (!ok) {
    ::close(fd);
    return -1;
  }
  return fd;
}

bool isUnspecified(const Address& a) {
  for (size_t i = 0; i < a.ipLength(); ++i)
    if (a.ip[i]) return false;
  return true;
}
}  // namespace

class TurnService::Worker : public TurnIo {
 private:
  // A UDP relay socket, registered with the worker's loop (not in asio's reactor).
  struct Relay final : net::Loop::Watcher {
    Relay(Worker& worker, int fd, RelayId id) : worker(worker), fd(fd), id(id) {}
    ~Relay() {
      worker.loop_.unwatch(watch, fd);
      ::close(fd);
    }
    Relay(const Relay&) = delete;
    Relay& operator=(const Relay&) = delete;
    // Last thing it does: the drain may close this relay (the server removes an allocation).
    void onReady(uint32_t) override { worker.drainRelay(id, Clock::now()); }
    Worker& worker;
    int fd;
    RelayId id;
    net::Loop::WatchId watch = 0;
  };
  // The worker's listening UDP socket.
  struct Listener final : net::Loop::Watcher {
    explicit Listener(Worker& worker) : worker(worker) {}
    void onReady(uint32_t) override { worker.drainListen(Clock::now(), std::time(nullptr)); }
    Worker& worker;
  };
  using SlotId = net::SlotId;  // a connection's or peer connection's id in this worker (net::Slots)
  // A TURN TCP/TLS client connection: the socket, and the sans-I/O rest (framing, TLS, deadlines, pipe decisions).
  // Owned by connections_; everything that outlives a call (asio handlers, timers, posted tasks) holds its id (also
  // tuple.connection) and looks it up again. The loop calls it directly, while it is registered (watch).
  struct Connection final : net::Loop::Watcher {
    Connection(Worker& worker, asio::ip::tcp::socket s, StreamConnection st)
        : worker(worker), socket(std::move(s)), stream(std::move(st)) {}
    // Last thing it does: reading may close this connection.
    void onReady(uint32_t) override { worker.readReady(tuple.connection); }
    Worker& worker;
    asio::ip::tcp::socket socket;
    StreamConnection stream;
    ClientTuple tuple;
    std::vector<uint8_t> writing;  // given to an asio write that has not completed
    bool dirty = false;            // in dirty_, to be written at the flush
    net::Loop::WatchId watch = 0;  // registered with the worker's loop: read when readable
    bool failed = false;           // a TLS write failed: close at the next flush
    bool continuing = false;       // a task is posted to pipe what OpenSSL holds (no readiness announces it)
    bool active = false;           // read or written since the last tick
    bool holdsBuffers = true;      // TLS record buffers may be held (releaseIdleBuffers)
    ConnectionId pipe = 0;         // RFC 6062 data connection: its peer connection's CONNECTION-ID, 0 once gone
    net::Loop::TimerId timer = 0;  // bandwidth pause or linger of a data connection
  };
  // A peer data connection of a TCP allocation (accepted on the relay or made for a Connect request). Owned by
  // peers_; found by CONNECTION-ID through peerIds_.
  struct PeerConn {
    PeerConn(asio::ip::tcp::socket s, ConnectionId id) : socket(std::move(s)), id(id) {}
    asio::ip::tcp::socket socket;
    net::Loop::TimerId timer = 0;  // bandwidth pause or linger
    ConnectionId id;
    SlotId client = 0;                  // the bound client data connection (connections_), 0 before or once gone
    std::vector<uint8_t> in;            // read buffer
    std::vector<uint8_t> out, writing;  // to the peer
    PipeSide side;
    bool reading = false;  // an asio read is in flight
  };
  struct TcpRelay {
    explicit TcpRelay(asio::io_context& ctx) : acceptor(ctx) {}
    asio::ip::tcp::acceptor acceptor;
    Address local;
  };
  // A client connection moved to the worker that owns the CONNECTION-ID of its ConnectionBind.
  struct Handoff {
    int fd = -1;
    std::optional<tls::Session> tls;
    ClientTuple tuple;
    std::vector<uint8_t> bytes;  // received and not yet handled, from the ConnectionBind on
  };

 public:
  Worker(TurnService& service, uint32_t index)
      : service_(service), loop_(service.pool_.loop(index)), ctx_(loop_.context()), acceptor_(ctx_), tlsAcceptor_(ctx_),
        index_(index), rng_(std::random_device{}() ^ index),
        server_(*this, service.credentials_, service.filter_, service.options_.limits, service.quotas_,
                service.reservations_) {
    tlsRecord_.reserve(kTcpMaxFrame + 4);
    server_.setWorkerIndex(index);
  }

  ~Worker() override {
    destroying_ = true;  // what closes from here on (the TurnServer's allocations) goes at once, not in a task
    boost::system::error_code ec;
    loop_.cancel(tick_);
    loop_.cancel(acceptPause_.timer);
    loop_.cancel(tlsAcceptPause_.timer);
    acceptor_.close(ec);
    tlsAcceptor_.close(ec);
    loop_.unwatch(listenWatch_, udpFd_);
    if (udpFd_ >= 0) ::close(udpFd_);
    connections_.forEach([&](SlotId, Connection& c) {
      unwatch(c);
      loop_.cancel(c.timer);
      c.socket.close(ec);
    });
    for (auto& [id, r] : tcpRelays_) r->acceptor.close(ec);
    peers_.forEach([&](SlotId, PeerConn& p) {
      loop_.cancel(p.timer);
      p.socket.close(ec);
    });
  }

  std::optional<std::string> bind(const Address& listen) {
    std::string error;
    net::UdpBindOptions o;
    o.reusePort = true;
    o.receiveBuffer = o.sendBuffer = 4 << 20;
    int fd = net::bindUdp(listen, o, &error);
    if (fd < 0) return "TURN UDP " + error;
    if (int got = net::receiveBufferSize(fd); got > 0 && got < o.receiveBuffer && index_ == 0)
      spdlog::warn(
          "turn: the UDP receive buffer is {} KiB, not {} KiB (net.core.rmem_max): bursts the workers do not "
          "read at once are dropped sooner; raise net.core.rmem_max or give kaiwa CAP_NET_ADMIN",
          got / 1024, o.receiveBuffer / 1024);
    udpFd_ = fd;
    // Every UDP socket of this worker (this one and the relays) is registered, level-triggered, with the worker's
    // loop: one wake-up drains every ready socket, with one re-arm of the loop's set instead of one per socket.
    listenWatch_ = loop_.watch(fd, EPOLLIN, listener_);
    if (!listenWatch_) return std::string("TURN epoll: ") + std::strerror(errno);
    int tfd = net::listenTcp(listen, true, &error);
    if (tfd < 0) return "TURN TCP " + error;
    acceptor_.assign(listen.family == stun::Family::kV4 ? asio::ip::tcp::v4() : asio::ip::tcp::v6(), tfd);
    accept(acceptor_, false);
    tick_ = loop_.every(std::chrono::seconds(1), [this](TimePoint t) {
      server_.tick(t);
      checkTimeouts(t);
      releaseIdleBuffers();
      publish();
      checkSocketDrops();
    });
    return std::nullopt;
  }

  std::optional<std::string> bindTls(const Address& listen) {
    std::string error;
    int tfd = net::listenTcp(listen, true, &error);
    if (tfd < 0) return "TURN TLS " + error;
    tlsAcceptor_.assign(listen.family == stun::Family::kV4 ? asio::ip::tcp::v4() : asio::ip::tcp::v6(), tfd);
    accept(tlsAcceptor_, true);
    return std::nullopt;
  }

  // TurnIo
  std::optional<OpenedRelay> openRelay(const RelayRequest& r) override {
    const Address* ip = nullptr;
    for (const auto& a : service_.options_.relayIps)
      if (a.family == r.family) ip = &a;
    if (!ip) return std::nullopt;
    uint32_t lo = service_.options_.minPort, hi = service_.options_.maxPort;
    uint32_t span = hi - lo + 1;
    uint32_t start = std::uniform_int_distribution<uint32_t>(0, span - 1)(rng_);
    if (r.tcp) return openTcpRelay(*ip, lo, span, start);
    net::UdpBindOptions o;
    o.dontFragment = r.dontFragment;
    o.receiveBuffer = o.sendBuffer = 1 << 20;
    for (uint32_t tries = 0; tries < std::min<uint32_t>(span, 64); ++tries) {
      uint32_t port = lo + (start + tries * (r.evenPort ? 2 : 1)) % span;
      if (r.evenPort && port % 2) port = port + 1 > hi ? port - 1 : port + 1;
      if (port < lo || port > hi || (r.reserveNext && port + 1 > hi)) continue;
      Address local = *ip;
      local.port = uint16_t(port);
      int fd = net::bindUdp(local, o, nullptr);
      if (fd < 0) continue;
      OpenedRelay out;
      out.id = addRelay(fd, local);
      out.address = advertised(local);
      if (r.reserveNext) {
        Address next = local;
        next.port = uint16_t(port + 1);
        int fd2 = net::bindUdp(next, o, nullptr);
        if (fd2 < 0) {
          closeRelay(out.id);
          continue;
        }
        // Not read from until adopted (by whichever worker the Allocate with the token reaches).
        out.reserved = ReservedRelay(fd2);
        out.reservedAddress = advertised(next);
      }
      return out;
    }
    return std::nullopt;
  }

  void closeRelay(RelayId id) override {
    if (auto t = tcpRelays_.find(id); t != tcpRelays_.end()) {
      boost::system::error_code ec;
      t->second->acceptor.close(ec);
      tcpRelays_.erase(t);
      return;
    }
    relays_.erase(id);  // leaves the loop and closes the socket
  }

  std::optional<RelayId> adoptRelay(ReservedRelay reserved) override {
    int fd = int(reserved);
    // What reached the port while it was reserved came without a permission: drop it.
    std::array<uint8_t, 2048> discard;
    for (int i = 0; i < 1024 && ::recv(fd, discard.data(), discard.size(), MSG_DONTWAIT) >= 0; ++i) {
    }
    return addRelay(fd, Address{});
  }

  void releaseReserved(ReservedRelay reserved) override { ::close(int(reserved)); }

  void sendToClient(const ClientTuple& to, std::span<const uint8_t> head, std::span<const uint8_t> body,
                    size_t pad) override {
    if (to.transport == Transport::kUdp) {
      if (!send_.add(udpFd_, to.client, head, body, pad)) ++sendFailures_;
      scheduleFlush();
      return;
    }
    if (Connection* c = connections_.find(to.connection)) enqueue(*c, head, body, pad);
  }

  // Appends a message (or piped bytes) to a client connection's output, written at this loop turn's flush: what one
  // batch relayed goes out in one write. Over TLS each message is its own record (StreamConnection::send).
  void enqueue(Connection& c, std::span<const uint8_t> head, std::span<const uint8_t> body, size_t pad) {
    c.active = true;
    switch (c.stream.send(head, body, pad, tlsRecord_)) {
      case StreamConnection::SendResult::kQueued:
        break;
      case StreamConnection::SendResult::kOverflow:
        ++sendFailures_;
        return;
      case StreamConnection::SendResult::kFailed:
        c.failed = true;  // closed at the flush, not from inside the TURN server's call
        break;
    }
    markDirty(c);
  }

  void markDirty(Connection& c) {
    if (!c.dirty) {
      c.dirty = true;
      dirty_.push_back(c.tuple.connection);
    }
    scheduleFlush();
  }

  void sendToPeer(RelayId from, const Address& peer, std::span<const uint8_t> data) override {
    auto it = relays_.find(from);
    if (it == relays_.end()) return;
    if (!send_.add(it->second->fd, peer, data)) ++sendFailures_;
    scheduleFlush();
  }

  bool connectToPeer(RelayId from, ConnectionId id, const Address& peer) override {
    auto r = tcpRelays_.find(from);
    if (r == tcpRelays_.end() || peer.family != r->second->local.family) return false;
    int fd = tcpRelaySocket(r->second->local, false);
    if (fd < 0) return false;
    auto p = std::make_unique<PeerConn>(asio::ip::tcp::socket(ctx_), id);
    boost::system::error_code ec;
    p->socket.assign(peer.family == stun::Family::kV4 ? asio::ip::tcp::v4() : asio::ip::tcp::v6(), fd, ec);
    if (ec) {
      ::close(fd);
      return false;
    }
    PeerConn& conn = *p;
    SlotId pid = addPeer(std::move(p));
    conn.socket.async_connect(toEndpoint(peer), [this, pid](const boost::system::error_code& ec) {
      PeerConn* p = peers_.find(pid);
      if (!p) return;
      boost::system::error_code e2;
      if (!ec) p->socket.set_option(asio::ip::tcp::no_delay(true), e2);
      server_.onPeerConnected(p->id, !ec, now());  // on failure the server closes it (closeTcpConnection)
    });
    return true;
  }

  void bindConnection(ConnectionId id, const ClientTuple& client) override {
    SlotId pid = peerSlot(id);
    PeerConn* p = peers_.find(pid);
    Connection* c = connections_.find(client.connection);
    if (!p || !c) {
      if (p) closePeer(pid);
      server_.onTcpConnectionClosed(id);
      return;
    }
    p->client = client.connection;
    c->pipe = id;
    // The server still reads the ConnectionBind frame: the connection's buffer stays as it is until the frame loop
    // (handleFrames) sees the switch and pipes what came after it.
    c->stream.startPipe();
    // What the peer sent before the bind waits in the socket's buffer: start reading it.
    updatePeerRead(pid);
  }

  void closeTcpConnection(ConnectionId id) override {
    SlotId pid = peerSlot(id);
    PeerConn* p = peers_.find(pid);
    if (!p) return;
    SlotId client = p->client;
    closePeer(pid);
    if (Connection* c = connections_.find(client)) {
      c->pipe = 0;
      closeConnection(client, false);
    }
  }

 private:
  Address advertised(const Address& local) const {
    const auto& ext = service_.options_.externalIp;
    if (ext && ext->family == local.family) {
      Address a = *ext;
      a.port = local.port;
      return a;
    }
    return local;
  }

  RelayId addRelay(int fd, const Address&) {
    RelayId id = nextRelay_++;
    auto relay = std::make_unique<Relay>(*this, fd, id);
    relay->watch = loop_.watch(fd, EPOLLIN, *relay);
    if (!relay->watch) spdlog::warn("turn: epoll_ctl for a relay socket: {}", std::strerror(errno));
    relays_.emplace(id, std::move(relay));
    return id;
  }

  TimePoint now() const { return Clock::now(); }

  void scheduleFlush() {
    if (flushPosted_) return;
    flushPosted_ = true;
    asio::post(ctx_, [this] {
      flushPosted_ = false;
      send_.flush();
      flushing_.swap(dirty_);
      for (SlotId id : flushing_) {
        if (Connection* c = connections_.find(id)) {
          c->dirty = false;
          writeTcp(id);
        }
      }
      flushing_.clear();
    });
  }

  // Connections and peer connections closed in this loop turn are destroyed in a task of their own, after every call
  // that may still read one of their buffers (the frame the TurnServer is handling) has returned.
  void bury(std::unique_ptr<Connection> c) {
    deadConnections_.push_back(std::move(c));
    scheduleBurial();
  }
  void bury(std::unique_ptr<PeerConn> p) {
    deadPeers_.push_back(std::move(p));
    scheduleBurial();
  }
  void scheduleBurial() {
    if (destroying_) {
      deadConnections_.clear();
      deadPeers_.clear();
      return;
    }
    if (burialPosted_) return;
    burialPosted_ = true;
    asio::post(ctx_, [this] {
      burialPosted_ = false;
      deadConnections_.clear();
      deadPeers_.clear();
    });
  }

  // The loop calls these when a UDP socket is readable: each drains its socket (up to kDrainRounds batches; a socket
  // with more stays ready in the level-triggered set and is taken again at the next turn). The replies and relayed
  // datagrams of every socket ready in that turn go out in the one flush that follows.
  void drainListen(TimePoint t, int64_t unix) {
    KAIWA_ON_LOOP(loop_);
    for (int round = 0; round < kDrainRounds; ++round) {
      size_t n = recv_.receive(udpFd_);
      for (size_t i = 0; i < n; ++i) {
        auto from = recv_.from(i);
        if (!from || recv_.truncated(i)) {
          ++truncated_;
          continue;
        }
        server_.onClientPacket(ClientTuple{*from, 0, Transport::kUdp}, recv_.data(i), t, unix);
      }
      if (n < net::RecvBatch::kSlots) break;
    }
  }

  void drainRelay(RelayId id, TimePoint t) {
    KAIWA_ON_LOOP(loop_);
    for (int round = 0; round < kDrainRounds; ++round) {
      auto it = relays_.find(id);
      if (it == relays_.end()) return;
      size_t n = recv_.receive(it->second->fd);
      for (size_t i = 0; i < n; ++i) {
        auto from = recv_.from(i);
        if (!from || recv_.truncated(i)) {
          ++truncated_;
          continue;
        }
        server_.onPeerPacket(id, *from, recv_.data(i), t);
      }
      if (n < net::RecvBatch::kSlots) break;
    }
  }

  // (First called from bind, on the thread that starts the service; its completions run on the worker.)
  void accept(asio::ip::tcp::acceptor& acceptor, bool tls) {
    acceptor.async_accept([this, &acceptor, tls](const boost::system::error_code& ec, asio::ip::tcp::socket socket) {
      if (ec == asio::error::operation_aborted || !acceptor.is_open()) return;
      KAIWA_ON_LOOP(loop_);
      AcceptPause& pause = tls ? tlsAcceptPause_ : acceptPause_;
      if (ec) return acceptFailed(acceptor, tls, ec);
      pause.backoff.succeeded();
      boost::system::error_code e2;
      socket.set_option(asio::ip::tcp::no_delay(true), e2);
      auto ep = socket.remote_endpoint(e2);
      auto client = e2 ? std::nullopt : fromEndpoint(ep);
      std::optional<tls::Session> session;
      // Record buffers are kept while the connection is busy and freed once it is quiet (releaseIdleBuffers): with
      // SSL_MODE_RELEASE_BUFFERS every record would cost a malloc and a free.
      if (tls) session = tls::Session::accept(service_.tls_, tls::Buffers::kKeepUntilReleased);
      if (client && (!tls || session)) {
        auto c = std::make_unique<Connection>(*this, std::move(socket), StreamConnection(now(), std::move(session)));
        c->tuple = ClientTuple{*client, 0, tls ? Transport::kTls : Transport::kTcp};
        SlotId id = addConnection(std::move(c));
        watch(id);
      }
      accept(acceptor, tls);
    });
  }

  SlotId addConnection(std::unique_ptr<Connection> c) {
    Connection& conn = *c;
    SlotId id = connections_.insert(std::move(c));
    conn.tuple.connection = id;
    return id;
  }

  SlotId addPeer(std::unique_ptr<PeerConn> p) {
    ConnectionId cid = p->id;
    SlotId pid = peers_.insert(std::move(p));
    peerIds_[cid] = pid;
    return pid;
  }

  SlotId peerSlot(ConnectionId id) const {
    auto it = peerIds_.find(id);
    return it == peerIds_.end() ? 0 : it->second;
  }

  PeerConn* peerOf(const Connection& c) { return c.pipe ? peers_.find(peerSlot(c.pipe)) : nullptr; }

  // Closes a client connection (its id is dead at once; the object goes at the end of the loop turn). A data
  // connection's peer connection gets what is queued for it, then closes too.
  void closeConnection(SlotId id, bool notify = true) {
    std::unique_ptr<Connection> c = connections_.take(id);
    if (!c) return;
    unwatch(*c);
    boost::system::error_code ec;
    c->socket.close(ec);
    loop_.cancel(c->timer);
    if (SlotId pid = c->pipe ? peerSlot(c->pipe) : 0; PeerConn* p = peers_.find(pid)) {
      server_.onTcpConnectionClosed(p->id);
      p->client = 0;
      p->side.otherClosed(now());
      armPeerTimer(pid);
      writePeer(pid);
    }
    ClientTuple tuple = c->tuple;
    bury(std::move(c));
    if (notify) server_.onConnectionClosed(tuple);
  }

  // A connection is read when the worker's epoll set says it is readable: one recv per ready connection and loop
  // turn, and none that only finds the socket empty (asio's async_read_some tries a recv before every wait).
  void watch(SlotId id) {
    Connection* c = connections_.find(id);
    if (!c || c->watch) return;
    c->watch = loop_.watch(c->socket.native_handle(), EPOLLIN, *c);
    if (!c->watch) {
      spdlog::debug("turn: epoll_ctl for a TCP connection: {}", std::strerror(errno));
      return closeConnection(id);
    }
  }

  void unwatch(Connection& c) {
    loop_.unwatch(c.watch, c.socket.native_handle());
    c.watch = 0;
  }

  // The worker's epoll set says a connection is readable.
  void readReady(SlotId id) {
    KAIWA_ON_LOOP(loop_);
    Connection* c = connections_.find(id);
    if (!c || !c->watch) return;
    c->active = true;
    ssize_t n;
    if (c->stream.isTls()) {
      n = ::recv(c->socket.native_handle(), readBuffer_.data(), readBuffer_.size(), MSG_DONTWAIT);
      if (n > 0) c->stream.received({readBuffer_.data(), size_t(n)});
    } else {
      auto space = c->stream.receiveSpace();
      if (space.empty()) return closeConnection(id);
      n = ::recv(c->socket.native_handle(), space.data(), space.size(), MSG_DONTWAIT);
      if (n > 0) c->stream.receivedInPlace(size_t(n));
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
    if (n <= 0) return closeConnection(id);
    if (c->stream.isPipe()) return pipeFromClient(id);
    handleFrames(id);
  }

  // Hands the complete frames a control connection holds to the server, one at a time, looking the connection up
  // again after each (the server may have closed it, or bound it to a pipe). Stops at the frame that made it a data
  // connection (then pipes what came after), closed it, or moved it to another worker.
  void handleFrames(SlotId id) {
    TimePoint t = now();
    int64_t unix = std::time(nullptr);
    bool handled = false;
    for (;;) {
      Connection* c = connections_.find(id);
      if (!c) return;
      if (c->stream.isPipe()) break;
      auto next = c->stream.next(t);
      using Kind = StreamConnection::Next::Kind;
      if (next.kind == Kind::kNone) break;
      if (next.kind == Kind::kMalformed) {
        server_.onClientPacket(c->tuple, {}, t, unix);  // counted as malformed
        return closeConnection(id);
      }
      if (next.kind == Kind::kTlsFailed || next.kind == Kind::kClosed) {
        sendNow(*c);  // the alert, if OpenSSL wrote one
        return closeConnection(id);
      }
      // A ConnectionBind for a connection another worker made: the connection moves to that worker (SO_REUSEPORT
      // put it here by its 5-tuple), with this frame and what follows.
      if (auto cid = connectionBindId(next.frame); cid && connectionWorker(*cid) != index_ &&
                                                   connectionWorker(*cid) < service_.workers_.size() &&
                                                   !server_.hasAllocation(c->tuple)) {
        if (handOff(id, connectionWorker(*cid))) return;
      }
      handled = true;
      server_.onClientPacket(c->tuple, next.frame, t, unix);
    }
    Connection* c = connections_.find(id);
    if (!c) return;
    if (handled) c->stream.noteAllocation(server_.hasAllocation(c->tuple));
    if (!c->stream.output().empty()) markDirty(*c);  // handshake records
    if (c->stream.isPipe()) pipeFromClient(id);      // bytes after the ConnectionBind are the peer's already
  }

  // Writes what the connection has to send now, without waiting (before a close: a TLS alert).
  void sendNow(Connection& c) {
    auto& out = c.stream.output();
    if (out.empty() || !c.writing.empty()) return;
    [[maybe_unused]] ssize_t n = ::send(c.socket.native_handle(), out.data(), out.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
  }

  bool handOff(SlotId id, uint32_t target) {
    Connection* c = connections_.find(id);
    // Only a connection with nothing on its way out (a fresh one: the ConnectionBind is its first request).
    if (!c->writing.empty() || c->stream.queued() != 0) return false;
    unwatch(*c);
    boost::system::error_code ec;
    int fd = c->socket.release(ec);
    if (ec || fd < 0) {
      watch(id);
      return false;
    }
    Handoff h;
    h.fd = fd;
    h.tls = c->stream.takeTls();  // records OpenSSL still holds go with it
    h.tuple = c->tuple;
    auto rest = c->stream.fromLastFrame();
    h.bytes.assign(rest.begin(), rest.end());
    bury(connections_.take(id));
    ++handoffs_;
    Worker* to = service_.workers_[target].get();
    asio::post(to->ctx_, [to, h = std::move(h)]() mutable { to->adopt(std::move(h)); });
    return true;
  }

  void adopt(Handoff h) {
    KAIWA_ON_LOOP(loop_);
    asio::ip::tcp::socket socket(ctx_);
    boost::system::error_code ec;
    socket.assign(h.tuple.client.family == stun::Family::kV4 ? asio::ip::tcp::v4() : asio::ip::tcp::v6(), h.fd, ec);
    if (ec) {
      ::close(h.fd);
      return;
    }
    auto c = std::make_unique<Connection>(*this, std::move(socket), StreamConnection(now(), std::move(h.tls)));
    c->tuple = h.tuple;
    c->stream.receivedPlaintext(h.bytes);
    SlotId id = addConnection(std::move(c));
    watch(id);
    handleFrames(id);
  }

  void acceptFailed(asio::ip::tcp::acceptor& acceptor, bool tls, const boost::system::error_code& ec) {
    metrics::add(metrics::registry().turnAcceptErrors);
    AcceptPause& pause = tls ? tlsAcceptPause_ : acceptPause_;
    auto f = pause.backoff.failed(now());
    if (f.log)
      spdlog::warn(
          "turn: worker {}: accepting a TURN {} connection failed: {} ({} more failures since the last "
          "message); accepting again in {} ms",
          index_, tls ? "TLS" : "TCP", ec.message(), f.suppressed,
          std::chrono::duration_cast<std::chrono::milliseconds>(f.pause).count());
    loop_.cancel(pause.timer);
    pause.timer = loop_.at(now() + f.pause, [this, &acceptor, tls](TimePoint) {
      if (acceptor.is_open()) accept(acceptor, tls);
    });
  }

  // --- TCP allocations: the byte pipes ---

  std::optional<OpenedRelay> openTcpRelay(const Address& ip, uint32_t lo, uint32_t span, uint32_t start) {
    for (uint32_t tries = 0; tries < std::min<uint32_t>(span, 64); ++tries) {
      Address local = ip;
      local.port = uint16_t(lo + (start + tries) % span);
      int fd = tcpRelaySocket(local, true);
      if (fd < 0) continue;
      auto relay = std::make_unique<TcpRelay>(ctx_);
      boost::system::error_code ec;
      relay->acceptor.assign(local.family == stun::Family::kV4 ? asio::ip::tcp::v4() : asio::ip::tcp::v6(), fd, ec);
      if (ec) {
        ::close(fd);
        continue;
      }
      relay->local = local;
      RelayId id = nextRelay_++;
      tcpRelays_.emplace(id, std::move(relay));
      acceptPeer(id);
      OpenedRelay out;
      out.id = id;
      out.address = advertised(local);
      return out;
    }
    return std::nullopt;
  }

  void acceptPeer(RelayId id) {
    KAIWA_ON_LOOP(loop_);
    auto it = tcpRelays_.find(id);
    if (it == tcpRelays_.end()) return;
    it->second->acceptor.async_accept([this, id](const boost::system::error_code& ec, asio::ip::tcp::socket socket) {
      if (ec == asio::error::operation_aborted || !tcpRelays_.count(id)) return;
      if (!ec) {
        boost::system::error_code e2;
        auto ep = socket.remote_endpoint(e2);
        auto peer = e2 ? std::nullopt : fromEndpoint(ep);
        std::optional<ConnectionId> cid;
        if (peer) cid = server_.onPeerAccepted(id, *peer, now());  // nullopt: no permission, closed
        if (cid) {
          socket.set_option(asio::ip::tcp::no_delay(true), e2);
          addPeer(std::make_unique<PeerConn>(std::move(socket), *cid));
        } else {
          socket.close(e2);
        }
      }
      acceptPeer(id);
    });
  }

  static size_t queuedToClient(const Connection& c) { return c.stream.queued() + c.writing.size(); }
  static size_t queuedToPeer(const PeerConn& p) { return p.out.size() + p.writing.size(); }

  void closePeer(SlotId pid) {
    std::unique_ptr<PeerConn> p = peers_.take(pid);
    if (!p) return;
    if (auto it = peerIds_.find(p->id); it != peerIds_.end() && it->second == pid) peerIds_.erase(it);
    boost::system::error_code ec;
    p->socket.close(ec);
    loop_.cancel(p->timer);
    bury(std::move(p));
  }

  // Client → peer: what the client data connection delivered goes to the peer connection's queue.
  void pipeFromClient(SlotId id) {
    Connection* c = connections_.find(id);
    if (!c) return;
    bool failed = false;
    auto bytes = c->stream.pipeBytes(failed);
    SlotId pid = c->pipe ? peerSlot(c->pipe) : 0;
    PeerConn* p = peers_.find(pid);
    if (p && !bytes.empty()) {
      p->out.insert(p->out.end(), bytes.begin(), bytes.end());
      c->stream.pipeSide().pauseUntil(server_.onTcpRelayed(p->id, bytes.size(), true, now()));
      writePeer(pid);
    }
    if (failed) return closeConnection(id);  // a bad TLS record, or the client's close_notify
    updateClientRead(id);
  }

  // Starts or stops reading a client data connection, as its PipeSide decides.
  void updateClientRead(SlotId id) {
    Connection* c = connections_.find(id);
    if (!c || !c->stream.isPipe()) return;
    PeerConn* p = peerOf(*c);
    TimePoint t = now();
    // The peer side gone: nothing more is read (what comes is discarded by the kernel's close), the client's queue
    // is written out.
    auto decision = p ? c->stream.pipeSide().mayRead(queuedToPeer(*p), t) : PipeSide::Read::kNever;
    switch (decision) {
      case PipeSide::Read::kNow:
        watch(id);
        // Records OpenSSL already holds do not make the socket readable again.
        if (c->stream.hasBuffered() && !c->continuing) {
          c->continuing = true;
          asio::post(ctx_, [this, id] {
            Connection* c = connections_.find(id);
            if (!c) return;
            c->continuing = false;
            if (c->watch) pipeFromClient(id);
          });
        }
        return;
      case PipeSide::Read::kAtDeadline:
        unwatch(*c);
        armClientTimer(id);
        return;
      case PipeSide::Read::kWhenOtherDrains:  // writePeer calls again once the peer took some
      case PipeSide::Read::kNever:
        unwatch(*c);
        return;
    }
  }

  // A data connection's timer: the end of a bandwidth pause (read again) or of its linger (close).
  void armClientTimer(SlotId id) {
    Connection* c = connections_.find(id);
    if (!c) return;
    auto deadline = c->stream.pipeSide().deadline(now());
    if (!deadline) return;
    if (c->timer && loop_.reschedule(c->timer, *deadline)) return;
    c->timer = loop_.at(*deadline, [this, id](TimePoint) {
      Connection* c = connections_.find(id);
      if (!c) return;
      c->timer = 0;
      if (c->stream.pipeSide().shouldClose(queuedToClient(*c), now())) return closeConnection(id, false);
      updateClientRead(id);
    });
  }

  void armPeerTimer(SlotId pid) {
    PeerConn* p = peers_.find(pid);
    if (!p) return;
    auto deadline = p->side.deadline(now());
    if (!deadline) return;
    if (p->timer && loop_.reschedule(p->timer, *deadline)) return;
    p->timer = loop_.at(*deadline, [this, pid](TimePoint) {
      PeerConn* p = peers_.find(pid);
      if (!p) return;
      p->timer = 0;
      if (p->side.shouldClose(queuedToPeer(*p), now())) return closePeer(pid);
      updatePeerRead(pid);
    });
  }

  // Peer → client.
  void readPeer(SlotId pid) {
    KAIWA_ON_LOOP(loop_);
    PeerConn* p = peers_.find(pid);
    if (p->in.size() < kPipeChunk) p->in.resize(kPipeChunk);
    p->reading = true;
    p->socket.async_read_some(asio::buffer(p->in), [this, pid](const boost::system::error_code& ec, size_t n) {
      PeerConn* p = peers_.find(pid);
      if (!p) return;
      p->reading = false;
      Connection* c = connections_.find(p->client);
      if (!c) return;  // the client side closed: p only writes out what is queued for it
      if (ec) return peerClosed(pid);
      p->side.pauseUntil(server_.onTcpRelayed(p->id, n, false, now()));
      enqueue(*c, {p->in.data(), n}, {}, 0);
      updatePeerRead(pid);
    });
  }

  // Starts reading a peer connection again if its PipeSide allows it (reads are asio operations, one at a time).
  void updatePeerRead(SlotId pid) {
    PeerConn* p = peers_.find(pid);
    if (!p || p->reading) return;
    Connection* c = connections_.find(p->client);
    if (!c) return;
    switch (p->side.mayRead(queuedToClient(*c), now())) {
      case PipeSide::Read::kNow:
        return readPeer(pid);
      case PipeSide::Read::kAtDeadline:
        return armPeerTimer(pid);
      case PipeSide::Read::kWhenOtherDrains:  // writeTcp calls again once the client took some
      case PipeSide::Read::kNever:
        return;
    }
  }

  // The peer closed (or failed): the client data connection gets what is queued for it, then closes.
  void peerClosed(SlotId pid) {
    PeerConn* p = peers_.find(pid);
    if (!p) return;
    server_.onTcpConnectionClosed(p->id);
    SlotId client = p->client;
    closePeer(pid);
    Connection* c = connections_.find(client);
    if (!c) return;
    c->pipe = 0;
    c->stream.pipeSide().otherClosed(now());
    unwatch(*c);
    if (queuedToClient(*c) == 0) return closeConnection(client, false);
    armClientTimer(client);
  }

  void writePeer(SlotId pid) {
    KAIWA_ON_LOOP(loop_);
    PeerConn* p = peers_.find(pid);
    if (!p || !p->writing.empty()) return;
    if (p->out.empty()) return peerFlushed(pid);
    ssize_t sent = ::send(p->socket.native_handle(), p->out.data(), p->out.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    if (sent == ssize_t(p->out.size())) {
      p->out.clear();
      return peerFlushed(pid);
    }
    if (sent < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return peerClosed(pid);
    std::swap(p->writing, p->out);
    if (sent > 0) p->writing.erase(p->writing.begin(), p->writing.begin() + sent);
    asio::async_write(p->socket, asio::buffer(p->writing), [this, pid](const boost::system::error_code& ec, size_t) {
      PeerConn* p = peers_.find(pid);
      if (!p) return;
      if (ec) return peerClosed(pid);
      p->writing.clear();
      writePeer(pid);
    });
  }

  void peerFlushed(SlotId pid) {
    PeerConn* p = peers_.find(pid);
    if (p->side.shouldClose(queuedToPeer(*p), now())) return closePeer(pid);
    if (p->client) updateClientRead(p->client);
  }

  void writeTcp(SlotId id) {
    KAIWA_ON_LOOP(loop_);
    Connection* c = connections_.find(id);
    if (!c) return;
    if (c->failed) return closeConnection(id);
    if (!c->writing.empty()) return;  // the asio write in flight calls again
    auto& out = c->stream.output();
    if (out.empty()) return clientFlushed(id);
    // Usually the socket takes it all at once: send directly, without an asio operation and its completion.
    ssize_t sent = ::send(c->socket.native_handle(), out.data(), out.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    if (sent == ssize_t(out.size())) {
      out.clear();
      return clientFlushed(id);
    }
    if (sent < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return closeConnection(id);
    std::swap(c->writing, out);
    if (sent > 0) c->writing.erase(c->writing.begin(), c->writing.begin() + sent);
    asio::async_write(c->socket, asio::buffer(c->writing), [this, id](const boost::system::error_code& ec, size_t) {
      Connection* c = connections_.find(id);
      if (!c) return;
      if (ec) return closeConnection(id);
      c->writing.clear();
      writeTcp(id);
    });
  }

  void clientFlushed(SlotId id) {
    Connection* c = connections_.find(id);
    if (c->stream.pipeSide().shouldClose(queuedToClient(*c), now())) return closeConnection(id, false);
    if (PeerConn* p = peerOf(*c)) updatePeerRead(peerSlot(p->id));
  }

  // TLS connections quiet since the last tick give their record buffers back: an idle connection keeps only its TLS
  // state, a busy one allocates nothing per record.
  void releaseIdleBuffers() {
    connections_.forEach([](SlotId, Connection& c) {
      if (c.active) {
        c.active = false;
        c.holdsBuffers = true;
      } else if (c.holdsBuffers && c.stream.releaseBuffers()) {
        c.holdsBuffers = false;
      }
    });
  }

  // Closes the TCP/TLS client connections past a deadline (TcpTimeouts; after server_.tick, so an allocation that
  // expired is gone). RFC 6062 data connections are left alone: their pipe decides.
  void checkTimeouts(TimePoint t) {
    KAIWA_ON_LOOP(loop_);
    const TcpTimeouts& limits = service_.options_.timeouts;
    expired_.clear();
    connections_.forEach([&](SlotId id, Connection& c) {
      if (auto why = c.stream.expired(t, server_.hasAllocation(c.tuple), limits)) expired_.emplace_back(id, *why);
    });
    for (auto& [id, why] : expired_) {
      Connection* c = connections_.find(id);
      if (!c) continue;
      metrics::add(metrics::registry().turnTimeouts[size_t(why)]);
      spdlog::debug("turn: closing {} connection from {}: {} timeout", c->stream.isTls() ? "TLS" : "TCP",
                    c->tuple.client.toString(), metrics::kTurnTimeoutNames[size_t(why)]);
      closeConnection(id);
    }
    expired_.clear();
  }

  void checkSocketDrops() {
    std::array<uint32_t, SK_MEMINFO_VARS> info{};
    socklen_t len = sizeof info;
    if (::getsockopt(udpFd_, SOL_SOCKET, SO_MEMINFO, info.data(), &len) != 0 || len <= SK_MEMINFO_DROPS * 4) return;
    uint32_t drops = info[SK_MEMINFO_DROPS];
    if (drops == lastSocketDrops_) return;
    metrics::add(metrics::registry().turnDropped[metrics::kTurnDropSocketBuffer], uint32_t(drops - lastSocketDrops_));
    unreportedSocketDrops_ += uint32_t(drops - lastSocketDrops_);
    lastSocketDrops_ = drops;
    if (now() - lastDropWarning_ < std::chrono::minutes(1)) return;
    lastDropWarning_ = now();
    spdlog::warn(
        "turn: worker {}: the kernel dropped {} datagrams on the TURN UDP socket (receive buffer full: this "
        "worker is behind, the machine is short of CPU)",
        index_, unreportedSocketDrops_);
    unreportedSocketDrops_ = 0;
  }

  // Adds what changed since the last call to the process-wide metrics.
  void publish() {
    auto& r = metrics::registry();
    const TurnStats& s = server_.stats();
    auto delta = [](std::atomic<uint64_t>& to, uint64_t now, uint64_t& last) {
      if (now > last) metrics::add(to, now - last);
      last = now;
    };
    delta(r.turnChannelDataIn, s.channelDataIn, last_.channelDataIn);
    delta(r.turnChannelDataOut, s.channelDataOut, last_.channelDataOut);
    delta(r.turnSendIndications, s.sendIndications, last_.sendIndications);
    delta(r.turnDataIndications, s.dataIndications, last_.dataIndications);
    delta(r.turnBytesToPeers, s.bytesToPeers, last_.bytesToPeers);
    delta(r.turnBytesToClients, s.bytesToClients, last_.bytesToClients);
    delta(r.turnAuthFailures, s.authFailures, last_.authFailures);
    delta(r.turnBindingRequests, s.bindingRequests, last_.bindingRequests);
    delta(r.turnTcpConnectionsTotal, s.tcpConnections, last_.tcpConnections);
    delta(r.turnTcpBinds, s.tcpBinds, last_.tcpBinds);
    delta(r.turnTcpBytesToPeers, s.tcpBytesToPeers, last_.tcpBytesToPeers);
    delta(r.turnTcpBytesToClients, s.tcpBytesToClients, last_.tcpBytesToClients);
    for (size_t i = 0; i < s.drops.size(); ++i) delta(r.turnDropped[i], s.drops[i], last_.drops[i]);
    for (size_t i = 0; i < s.quotaRefusals.size(); ++i)
      delta(r.turnQuotaRefused[i], s.quotaRefusals[i], last_.quotaRefusals[i]);
    uint64_t sendFailed = sendFailures_ + send_.dropped() + truncated_;
    delta(r.turnDropped[size_t(TurnDrop::kCount)], sendFailed, lastSendFailed_);
    auto gauge = [](std::atomic<int64_t>& g, int64_t now, int64_t& last) {
      metrics::add(g, now - last);
      last = now;
    };
    gauge(r.turnAllocations, int64_t(server_.allocationCount()), lastAllocations_);
    gauge(r.turnPermissions, int64_t(server_.permissionCount()), lastPermissions_);
    gauge(r.turnChannels, int64_t(server_.channelCount()), lastChannels_);
    gauge(r.turnTcpConnections, int64_t(server_.tcpConnectionCount()), lastTcpConnections_);
  }
  TurnService& service_;

  net::Loop& loop_;  // the worker's: its UDP sockets and TCP/TLS client connections, its timers
  asio::io_context& ctx_;
  int udpFd_ = -1;
  Listener listener_{*this};
  net::Loop::WatchId listenWatch_ = 0;
  asio::ip::tcp::acceptor acceptor_;
  asio::ip::tcp::acceptor tlsAcceptor_;
  struct AcceptPause {
    net::Loop::TimerId timer = 0;
    net::AcceptBackoff backoff;
  };
  AcceptPause acceptPause_, tlsAcceptPause_;
  net::Loop::TimerId tick_ = 0;  // once a second: the server's tick, the timeouts, the metrics
  uint32_t index_;               // this worker's place in TurnService::workers_ (and in the pool)
  std::mt19937 rng_;
  net::RecvBatch recv_;
  net::SendBatch send_;
  bool flushPosted_ = false;
  std::unordered_map<RelayId, std::unique_ptr<Relay>> relays_;
  RelayId nextRelay_ = 1;
  net::Slots<Connection> connections_;
  std::vector<SlotId> dirty_, flushing_;                // connections to write at the flush
  std::vector<std::pair<SlotId, TcpTimeout>> expired_;  // checkTimeouts' closing list
  std::vector<uint8_t> tlsRecord_;                      // one message's plaintext for a TLS record (reserved once)
  std::array<uint8_t, kTlsReadChunk> readBuffer_{};     // TLS records received, until the session takes them
  std::vector<std::unique_ptr<Connection>> deadConnections_;  // closed in this loop turn (bury)
  std::vector<std::unique_ptr<PeerConn>> deadPeers_;
  bool burialPosted_ = false;
  bool destroying_ = false;
  uint64_t sendFailures_ = 0, truncated_ = 0;
  TurnStats last_;
  uint64_t lastSendFailed_ = 0;
  int64_t lastAllocations_ = 0, lastPermissions_ = 0, lastChannels_ = 0, lastTcpConnections_ = 0;
  // TCP allocations (RFC 6062).
  std::unordered_map<RelayId, std::unique_ptr<TcpRelay>> tcpRelays_;
  net::Slots<PeerConn> peers_;
  std::unordered_map<ConnectionId, SlotId> peerIds_;  // the server's CONNECTION-IDs → peers_
  uint64_t handoffs_ = 0;
  uint32_t lastSocketDrops_ = 0;  // SK_MEMINFO_DROPS of udpFd_ (wraps)
  uint64_t unreportedSocketDrops_ = 0;
  TimePoint lastDropWarning_{};
  // Last, so destroyed first: its destructor closes the remaining relays through closeRelay(), which needs relays_.
  TurnServer server_;
};

TurnService::TurnService(net::WorkerPool& pool, TurnServiceOptions options)
    : pool_(pool), options_(std::move(options)), quotas_(std::make_shared<Quotas>()) {
  credentials_ = std::make_shared<CredentialsSlot>(
      std::make_shared<Credentials>(options_.realm, options_.users, options_.secrets));
  auto own = net::interfaceAddresses();
  for (const auto& a : options_.relayIps) own.push_back(a);
  if (options_.externalIp) own.push_back(*options_.externalIp);
  own.push_back(options_.listen);
  filter_ = std::make_shared<PeerFilter>(options_.allowPeers, options_.denyPeers, std::move(own));
  if (options_.relayIps.empty()) {
    // Relay on the listen address; on a wildcard listen, on the first non-loopback IPv4 interface address.
    if (!isUnspecified(options_.listen)) {
      options_.relayIps.push_back(options_.listen);
    } else {
      for (const auto& a : net::interfaceAddresses())
        if (a.family == stun::Family::kV4 && a.ip[0] != 127) {
          options_.relayIps.push_back(a);
          break;
        }
      if (options_.relayIps.empty()) options_.relayIps.push_back(*Address::parse("127.0.0.1", true));
    }
  }
}

std::optional<std::string> TurnService::reloadCredentials(std::vector<std::pair<std::string, std::string>> users,
                                                          std::vector<std::string> secrets) {
  for (const auto& [name, password] : users) {
    if (!stun::saslprep(name, stun::PrepMode::kStored) || !stun::saslprep(password, stun::PrepMode::kStored))
      return "TURN user '" + name + "': SASLprep (RFC 4013) refuses its name or password";
  }
  credentials_->store(credentials_->load()->withUsers(users, std::move(secrets)));
  return std::nullopt;
}

TurnService::~TurnService() {
  workers_.clear();
  if (tls_) SSL_CTX_free(tls_);
}

namespace {
// An SSL_CTX for the server from PEM text (certificate chain and key), or nullptr with `error` set.
SSL_CTX* makeTlsContext(const std::string& chainPem, const std::string& keyPem, std::string& error) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
  if (!ctx) return error = "TLS: SSL_CTX_new failed", nullptr;
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  // AES-128-GCM first (AES-NI makes GCM the cheapest; 128 does fewer rounds than 256), ChaCha20 for clients
  // without AES hardware that list it first (PRIORITIZE_CHACHA); otherwise the server's order wins. No renegotiation.
  SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_PRIORITIZE_CHACHA | SSL_OP_NO_RENEGOTIATION);
  SSL_CTX_set_ciphersuites(ctx, "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256");
  SSL_CTX_set_cipher_list(ctx, "ECDHE+AES128+AESGCM:ECDHE+AESGCM:ECDHE+CHACHA20");
  // Take all the records the memory BIO holds in one read instead of header and body separately.
  SSL_CTX_set_read_ahead(ctx, 1);
  BIO* b = BIO_new_mem_buf(chainPem.data(), int(chainPem.size()));
  X509* cert = PEM_read_bio_X509(b, nullptr, nullptr, nullptr);
  bool ok = cert && SSL_CTX_use_certificate(ctx, cert) == 1;
  X509_free(cert);
  while (ok) {
    X509* extra = PEM_read_bio_X509(b, nullptr, nullptr, nullptr);
    if (!extra) break;
    if (SSL_CTX_add_extra_chain_cert(ctx, extra) != 1) X509_free(extra);
  }
  BIO_free(b);
  b = BIO_new_mem_buf(keyPem.data(), int(keyPem.size()));
  EVP_PKEY* key = PEM_read_bio_PrivateKey(b, nullptr, nullptr, nullptr);
  ok = ok && key && SSL_CTX_use_PrivateKey(ctx, key) == 1 && SSL_CTX_check_private_key(ctx) == 1;
  EVP_PKEY_free(key);
  BIO_free(b);
  ERR_clear_error();
  if (!ok) {
    SSL_CTX_free(ctx);
    error = "TURN TLS: the certificate or key cannot be used";
    return nullptr;
  }
  return ctx;
}
}  // namespace

std::optional<std::string> TurnService::start() {
  // SO_REUSEPORT would let a second process share the port silently: probe without it first.
  std::string error;
  Address listen = options_.listen;
  int probe = net::bindUdp(listen, net::UdpBindOptions{}, &error);
  if (probe < 0) return "TURN UDP " + error;
  if (listen.port == 0) listen.port = net::localAddress(probe).value_or(listen).port;
  int tprobe = net::listenTcp(listen, false, &error);
  ::close(probe);
  if (tprobe < 0) return "TURN TCP " + error;
  ::close(tprobe);
  std::optional<Address> tlsListen = options_.tlsListen;
  if (tlsListen) {
    int probeTls = net::listenTcp(*tlsListen, false, &error);
    if (probeTls < 0) return "TURN TLS " + error;
    if (tlsListen->port == 0) tlsListen->port = net::localAddress(probeTls).value_or(*tlsListen).port;
    ::close(probeTls);
    tls_ = makeTlsContext(options_.tlsCertificateChainPem, options_.tlsPrivateKeyPem, error);
    if (!tls_) return error;
  }
  for (uint32_t i = 0; i < pool_.size(); ++i) {
    workers_.push_back(std::make_unique<Worker>(*this, i));
    auto e = workers_.back()->bind(listen);
    if (!e && tlsListen) e = workers_.back()->bindTls(*tlsListen);
    if (e) {
      workers_.clear();
      return e;
    }
  }
  if (tlsListen) tlsPort_ = tlsListen->port;
  port_ = listen.port;
  return std::nullopt;
}

}  // namespace kaiwa::turn

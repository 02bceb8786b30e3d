#include "turn/service.hpp"

#include <ifaddrs.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <net/if.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <spdlog/spdlog.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <random>
#include <unordered_map>

#include "common/metrics.hpp"
#include "net/udp_socket.hpp"
#include "net/worker_pool.hpp"

namespace kaiwa::turn {

namespace asio = boost::asio;
using stun::Address;

std::vector<Address> interfaceAddresses() {
  std::vector<Address> out;
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) return out;
  for (ifaddrs* i = list; i; i = i->ifa_next) {
    if (!i->ifa_addr || !(i->ifa_flags & IFF_UP)) continue;
    if (auto a = Address::fromSockaddr(i->ifa_addr)) {
      a->port = 0;
      out.push_back(*a);
    }
  }
  freeifaddrs(list);
  return out;
}

namespace {
constexpr size_t kMaxTcpBuffered = 1 << 20;  // per connection, both ways
constexpr int kDrainRounds = 16;             // recvmmsg batches per socket per wake-up
constexpr size_t kTcpInitialBuffer = 2048;   // grows to the largest frame seen (64 KiB + header at most)
constexpr size_t kTcpMaxFrame = 65536 + 8;

bool isUnspecified(const Address& a) {
  for (size_t i = 0; i < a.ipLength(); ++i)
    if (a.ip[i]) return false;
  return true;
}
}  // namespace

class TurnService::Worker : public TurnIo {
 public:
  Worker(TurnService& service, uint32_t index)
      : service_(service),
        ctx_(service.pool_.context(index)),
        udp_(ctx_),
        acceptor_(ctx_),
        tlsAcceptor_(ctx_),
        timer_(ctx_),
        rng_(std::random_device{}() ^ index),
        server_(*this, service.credentials_, service.filter_, service.options_.limits, service.quotas_,
                service.reservations_) {
    tlsRecord_.reserve(kTcpMaxFrame + 4);
  }

  ~Worker() override {
    boost::system::error_code ec;
    timer_.cancel();
    acceptor_.close(ec);
    tlsAcceptor_.close(ec);
    udp_.close(ec);
    for (auto& [id, c] : connections_) c->socket.close(ec);
  }

  std::optional<std::string> bind(const Address& listen) {
    std::string error;
    net::UdpBindOptions o;
    o.reusePort = true;
    o.receiveBuffer = o.sendBuffer = 4 << 20;
    int fd = net::bindUdp(listen, o, &error);
    if (fd < 0) return "TURN UDP " + error;
    udpFd_ = fd;
    udp_.assign(fd);
    int tfd = net::listenTcp(listen, true, &error);
    if (tfd < 0) return "TURN TCP " + error;
    acceptor_.assign(listen.family == stun::Family::kV4 ? asio::ip::tcp::v4() : asio::ip::tcp::v6(), tfd);
    armUdp();
    accept(acceptor_, false);
    armTimer();
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
    auto it = relays_.find(id);
    if (it == relays_.end()) return;
    boost::system::error_code ec;
    it->second->descriptor.close(ec);
    relays_.erase(it);
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
    auto it = connections_.find(to.connection);
    if (it == connections_.end()) return;
    Connection& c = *it->second;
    size_t size = head.size() + body.size() + pad;
    if (c.ssl && c.pending.empty() && SSL_is_init_finished(c.ssl)) {
      // TLS: one record per message, encrypted now into the write BIO; the records of this loop turn go out in one
      // socket write at the flush. (A record holding several messages is valid TLS, but coturn's turnutils_uclient
      // takes each SSL_read as one message and silently drops the rest.)
      if (c.cipherOut.size() + BIO_ctrl_pending(SSL_get_wbio(c.ssl)) + size > kMaxTcpBuffered) {
        ++sendFailures_;
        return;
      }
      tlsRecord_.assign(head.begin(), head.end());
      tlsRecord_.insert(tlsRecord_.end(), body.begin(), body.end());
      tlsRecord_.insert(tlsRecord_.end(), pad, 0);
      if (SSL_write(c.ssl, tlsRecord_.data(), int(tlsRecord_.size())) <= 0) {
        ERR_clear_error();
        c.failed = true;  // closed at the flush, not from inside the TURN server's call
      }
    } else {
      if (c.pending.size() + size > kMaxTcpBuffered) {
        ++sendFailures_;
        return;
      }
      c.pending.insert(c.pending.end(), head.begin(), head.end());
      c.pending.insert(c.pending.end(), body.begin(), body.end());
      c.pending.insert(c.pending.end(), pad, 0);
    }
    // Written once this loop turn's ready sockets are handled: what one batch relayed goes out in one write.
    if (!c.dirty) {
      c.dirty = true;
      dirty_.push_back(it->second);
    }
    scheduleFlush();
  }

  void sendToPeer(RelayId from, const Address& peer, std::span<const uint8_t> data) override {
    auto it = relays_.find(from);
    if (it == relays_.end()) return;
    if (!send_.add(it->second->fd, peer, data)) ++sendFailures_;
    scheduleFlush();
  }

 private:
  struct Relay {
    Relay(asio::io_context& ctx, int fd) : descriptor(ctx, fd), fd(fd) {}
    asio::posix::stream_descriptor descriptor;
    int fd;
  };
  struct Connection {
    explicit Connection(asio::ip::tcp::socket s) : socket(std::move(s)) {}
    ~Connection() {
      if (ssl) SSL_free(ssl);
    }
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;
    asio::ip::tcp::socket socket;
    ClientTuple tuple;
    std::vector<uint8_t> in;
    size_t used = 0;
    std::vector<uint8_t> pending, writing;
    SSL* ssl = nullptr;             // TLS (RFC 8656 over TLS): memory BIOs between the socket and OpenSSL
    std::vector<uint8_t> cipherIn;  // TLS records as read from the socket
    std::vector<uint8_t> cipherOut; // TLS records to write
    bool closed = false;
    bool failed = false;  // SSL_write failed: close at the next flush
    bool dirty = false;   // in dirty_, to be written at the flush
  };

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
    relays_.emplace(id, std::make_unique<Relay>(ctx_, fd));
    armRelay(id);
    return id;
  }

  TimePoint now() const { return Clock::now(); }

  void scheduleFlush() {
    if (flushPosted_) return;
    flushPosted_ = true;
    asio::post(ctx_, [this] {
      flushPosted_ = false;
      send_.flush();
      for (auto& c : dirty_) {
        c->dirty = false;
        writeTcp(c);
      }
      dirty_.clear();
    });
  }

  void armUdp() {
    udp_.async_wait(asio::posix::stream_descriptor::wait_read, [this](const boost::system::error_code& ec) {
      if (ec) return;
      TimePoint t = now();
      int64_t unix = std::time(nullptr);
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
      armUdp();
    });
  }

  void armRelay(RelayId id) {
    auto it = relays_.find(id);
    if (it == relays_.end()) return;
    it->second->descriptor.async_wait(asio::posix::stream_descriptor::wait_read,
                                      [this, id](const boost::system::error_code& ec) {
                                        if (ec) return;
                                        auto it = relays_.find(id);
                                        if (it == relays_.end()) return;
                                        int fd = it->second->fd;
                                        TimePoint t = now();
                                        for (int round = 0; round < kDrainRounds; ++round) {
                                          size_t n = recv_.receive(fd);
                                          for (size_t i = 0; i < n; ++i) {
                                            auto from = recv_.from(i);
                                            if (!from || recv_.truncated(i)) {
                                              ++truncated_;
                                              continue;
                                            }
                                            server_.onPeerPacket(id, *from, recv_.data(i), t);
                                          }
                                          // The allocation may have gone meanwhile (it cannot from a peer packet,
                                          // but stay safe).
                                          if (n < net::RecvBatch::kSlots || !relays_.count(id)) break;
                                        }
                                        armRelay(id);
                                      });
  }

  void accept(asio::ip::tcp::acceptor& acceptor, bool tls) {
    acceptor.async_accept([this, &acceptor, tls](const boost::system::error_code& ec, asio::ip::tcp::socket socket) {
      if (ec == asio::error::operation_aborted || !acceptor.is_open()) return;
      if (!ec) {
        boost::system::error_code e2;
        socket.set_option(asio::ip::tcp::no_delay(true), e2);
        auto ep = socket.remote_endpoint(e2);
        if (!e2) {
          auto c = std::make_shared<Connection>(std::move(socket));
          uint32_t id = nextConnection_++;
          if (nextConnection_ == 0) nextConnection_ = 1;
          sockaddr_storage ss{};
          std::memcpy(&ss, ep.data(), std::min<size_t>(ep.size(), sizeof ss));
          c->tuple = ClientTuple{*Address::fromSockaddr(reinterpret_cast<sockaddr*>(&ss)), id,
                                 tls ? Transport::kTls : Transport::kTcp};
          c->in.resize(kTcpInitialBuffer);
          if (tls) {
            c->ssl = SSL_new(service_.tls_);
            if (!c->ssl) return accept(acceptor, tls);
            SSL_set_bio(c->ssl, BIO_new(BIO_s_mem()), BIO_new(BIO_s_mem()));
            SSL_set_accept_state(c->ssl);
            c->cipherIn.resize(16384);
          }
          connections_[id] = c;
          readTcp(c);
        }
      }
      accept(acceptor, tls);
    });
  }

  void closeConnection(const std::shared_ptr<Connection>& c) {
    if (c->closed) return;
    c->closed = true;
    boost::system::error_code ec;
    c->socket.close(ec);
    server_.onConnectionClosed(c->tuple);
    connections_.erase(c->tuple.connection);
  }

  // TLS: hands `n` bytes of records to OpenSSL and moves the plaintext into c->in. False: close the connection.
  bool decrypt(const std::shared_ptr<Connection>& c, size_t n) {
    if (BIO_write(SSL_get_rbio(c->ssl), c->cipherIn.data(), int(n)) != int(n)) return false;
    for (;;) {
      if (c->used == c->in.size()) c->in.resize(std::min(kTcpMaxFrame + 4096, c->in.size() * 2));
      if (c->used == c->in.size()) return false;
      int r = SSL_read(c->ssl, c->in.data() + c->used, int(c->in.size() - c->used));
      if (r > 0) {
        c->used += size_t(r);
        continue;
      }
      int err = SSL_get_error(c->ssl, r);
      ERR_clear_error();
      writeTcp(c);  // handshake records, alerts
      return err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE;
    }
  }

  void readTcp(const std::shared_ptr<Connection>& c) {
    auto buffer = c->ssl ? asio::buffer(c->cipherIn) : asio::buffer(c->in.data() + c->used, c->in.size() - c->used);
    c->socket.async_read_some(buffer,
                              [this, c](const boost::system::error_code& ec, size_t n) {
                                if (ec || c->closed) return closeConnection(c);
                                if (c->ssl) {
                                  if (!decrypt(c, n)) return closeConnection(c);
                                } else {
                                  c->used += n;
                                }
                                TimePoint t = now();
                                int64_t unix = std::time(nullptr);
                                size_t pos = 0;
                                while (!c->closed) {
                                  std::span<const uint8_t> rest(c->in.data() + pos, c->used - pos);
                                  auto len = tcpFrameLength(rest);
                                  if (!len) break;
                                  if (*len == 0 || *len > kTcpMaxFrame) {
                                    server_.onClientPacket(c->tuple, {}, t, unix);  // counted as malformed
                                    return closeConnection(c);
                                  }
                                  if (rest.size() < *len) {
                                    if (*len > c->in.size()) c->in.resize(*len);  // a large frame: room for it
                                    break;
                                  }
                                  server_.onClientPacket(c->tuple, rest.subspan(0, *len), t, unix);
                                  pos += *len;
                                }
                                if (c->closed) return;
                                std::memmove(c->in.data(), c->in.data() + pos, c->used - pos);
                                c->used -= pos;
                                readTcp(c);
                              });
  }

  void writeTcp(const std::shared_ptr<Connection>& c) {
    if (c->closed) return;
    if (c->ssl) {
      if (c->failed) return closeConnection(c);
      // Plaintext queued before the handshake finished: one record per message (see sendToClient).
      if (!c->pending.empty() && SSL_is_init_finished(c->ssl)) {
        size_t pos = 0;
        while (pos < c->pending.size()) {
          std::span<const uint8_t> rest(c->pending.data() + pos, c->pending.size() - pos);
          size_t len = rest.size();
          if (auto frame = tcpFrameLength(rest); frame && *frame > 0 && *frame <= rest.size()) len = *frame;
          if (SSL_write(c->ssl, rest.data(), int(len)) <= 0) {
            ERR_clear_error();
            return closeConnection(c);
          }
          pos += len;
        }
        c->pending.clear();
      }
      BIO* out = SSL_get_wbio(c->ssl);
      while (size_t waiting = BIO_ctrl_pending(out)) {
        size_t at = c->cipherOut.size();
        c->cipherOut.resize(at + waiting);
        int r = BIO_read(out, c->cipherOut.data() + at, int(waiting));
        c->cipherOut.resize(at + size_t(std::max(r, 0)));
        if (r <= 0) break;
      }
    }
    auto& out = c->ssl ? c->cipherOut : c->pending;
    if (!c->writing.empty() || out.empty()) return;
    // Usually the socket takes it all at once: send directly, without an asio operation and its completion.
    ssize_t sent = ::send(c->socket.native_handle(), out.data(), out.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    if (sent == ssize_t(out.size())) {
      out.clear();
      return;
    }
    if (sent < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return closeConnection(c);
    std::swap(c->writing, out);
    if (sent > 0) c->writing.erase(c->writing.begin(), c->writing.begin() + sent);
    asio::async_write(c->socket, asio::buffer(c->writing),
                      [this, c](const boost::system::error_code& ec, size_t) {
                        if (ec) return closeConnection(c);
                        c->writing.clear();
                        writeTcp(c);
                      });
  }

  void armTimer() {
    timer_.expires_after(std::chrono::seconds(1));
    timer_.async_wait([this](const boost::system::error_code& ec) {
      if (ec) return;
      server_.tick(now());
      publish();
      armTimer();
    });
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
    for (size_t i = 0; i < s.drops.size(); ++i) delta(r.turnDropped[i], s.drops[i], last_.drops[i]);
    uint64_t sendFailed = sendFailures_ + send_.dropped() + truncated_;
    delta(r.turnDropped[size_t(TurnDrop::kCount)], sendFailed, lastSendFailed_);
    auto gauge = [](std::atomic<int64_t>& g, int64_t now, int64_t& last) {
      metrics::add(g, now - last);
      last = now;
    };
    gauge(r.turnAllocations, int64_t(server_.allocationCount()), lastAllocations_);
    gauge(r.turnPermissions, int64_t(server_.permissionCount()), lastPermissions_);
    gauge(r.turnChannels, int64_t(server_.channelCount()), lastChannels_);
  }

  TurnService& service_;

  asio::io_context& ctx_;
  int udpFd_ = -1;
  asio::posix::stream_descriptor udp_;
  asio::ip::tcp::acceptor acceptor_;
  asio::ip::tcp::acceptor tlsAcceptor_;
  asio::steady_timer timer_;
  std::mt19937 rng_;
  net::RecvBatch recv_;
  net::SendBatch send_;
  bool flushPosted_ = false;
  std::unordered_map<RelayId, std::unique_ptr<Relay>> relays_;
  RelayId nextRelay_ = 1;
  std::unordered_map<uint32_t, std::shared_ptr<Connection>> connections_;
  std::vector<std::shared_ptr<Connection>> dirty_;
  std::vector<uint8_t> tlsRecord_;  // one message's plaintext for SSL_write (capacity reserved once)
  uint32_t nextConnection_ = 1;
  uint64_t sendFailures_ = 0, truncated_ = 0;
  TurnStats last_;
  uint64_t lastSendFailed_ = 0;
  int64_t lastAllocations_ = 0, lastPermissions_ = 0, lastChannels_ = 0;
  // Last, so destroyed first: its destructor closes the remaining relays through closeRelay(), which needs relays_.
  TurnServer server_;
};

TurnService::TurnService(net::WorkerPool& pool, TurnServiceOptions options)
    : pool_(pool), options_(std::move(options)), quotas_(std::make_shared<Quotas>()) {
  credentials_ = std::make_shared<Credentials>(options_.realm, options_.users, options_.secrets);
  auto own = interfaceAddresses();
  for (const auto& a : options_.relayIps) own.push_back(a);
  if (options_.externalIp) own.push_back(*options_.externalIp);
  own.push_back(options_.listen);
  filter_ = std::make_shared<PeerFilter>(options_.allowPeers, options_.denyPeers, std::move(own));
  if (options_.relayIps.empty()) {
    // Relay on the listen address; on a wildcard listen, on the first non-loopback IPv4 interface address.
    if (!isUnspecified(options_.listen)) {
      options_.relayIps.push_back(options_.listen);
    } else {
      for (const auto& a : interfaceAddresses())
        if (a.family == stun::Family::kV4 && a.ip[0] != 127) {
          options_.relayIps.push_back(a);
          break;
        }
      if (options_.relayIps.empty()) options_.relayIps.push_back(*Address::parse("127.0.0.1", true));
    }
  }
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

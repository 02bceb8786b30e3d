// The one translation unit that instantiates Boost.Beast's HTTP and WebSocket templates (compile time matters on
// 2-core machines). Sessions are shared_ptr-owned, as Beast's asynchronous style requires; everything a session
// touches belongs to its worker.
#include "http/server.hpp"

#include <spdlog/spdlog.h>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket/rfc6455.hpp>

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <deque>
#include <limits>
#include <stdexcept>
#include <unordered_set>

#include "common/metrics.hpp"
#include "http/beast_request.hpp"
#include "http/server_impl.hpp"
#include "tls/session.hpp"
#include "ws/frame.hpp"

namespace kaiwa::http {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace websocket = boost::beast::websocket;
using tcp = asio::ip::tcp;
using PlainStream = beast::tcp_stream;
using TlsStream = beast::ssl_stream<beast::tcp_stream>;
using detail::AddressTicket;
using detail::SessionBase;

namespace {

constexpr std::string_view kServerName = "kaiwa";
constexpr auto kTlsHandshakeTimeout = std::chrono::seconds(10);
constexpr std::size_t kShedPerTurn = 64;  // waiting connections closed per failed accept

// What a connection refused at accept is told (plain HTTP only; over TLS there is no cheap way to say it).
std::string refusalResponse(unsigned status, std::string_view reason, std::string_view body) {
  return "HTTP/1.1 " + std::to_string(status) + " " + std::string(reason) +
         "\r\nServer: kaiwa\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: " +
         std::to_string(body.size()) + "\r\nConnection: close\r\nRetry-After: 1\r\n\r\n" + std::string(body);
}

// The client's address as Request::remoteAddress has it: IPv4-mapped IPv6 as IPv4, no brackets, no zone.
std::string clientIp(const asio::ip::address& a) {
  if (!a.is_v6()) return a.to_string();
  auto v6 = a.to_v6();
  if (v6.is_v4_mapped()) return asio::ip::make_address_v4(asio::ip::v4_mapped, v6).to_string();
  v6.scope_id(0);
  return v6.to_string();
}

}  // namespace

namespace {

bhttp::response<bhttp::string_body> toBeast(Response&& res, unsigned version, bool keepAlive, bool head) {
  bhttp::response<bhttp::string_body> out{static_cast<bhttp::status>(res.status), version};
  out.set(bhttp::field::server, kServerName);
  out.set(bhttp::field::content_type, res.contentType);
  out.set("X-Content-Type-Options", "nosniff");
  for (auto& [k, v] : res.headers) out.set(k, v);
  out.keep_alive(keepAlive);
  out.body() = std::move(res.body);
  out.prepare_payload();
  if (head) out.body().clear();  // Content-Length stays that of the GET
  return out;
}

template <typename Stream>
class HttpSession final : public SessionBase, public std::enable_shared_from_this<HttpSession<Stream>> {
 public:
  HttpSession(Server::Impl& srv, uint32_t worker, Stream&& stream, AddressTicket ticket)
      : srv_(srv), worker_(worker), stream_(std::move(stream)), ticket_(std::move(ticket)) {
    srv_.live[worker_].insert(this);
    metrics::add(metrics::registry().httpConnections, 1);
  }
  ~HttpSession() override {
    srv_.live[worker_].erase(this);
    if (!handedOver_) metrics::add(metrics::registry().httpConnections, -1);
  }

  void start() {
    if constexpr (std::is_same_v<Stream, TlsStream>) {
      beast::get_lowest_layer(stream_).expires_after(kTlsHandshakeTimeout);
      stream_.async_handshake(asio::ssl::stream_base::server, [self = this->shared_from_this()](beast::error_code ec) {
        if (ec) {
          spdlog::debug("tls handshake failed: {}", ec.message());
          return;
        }
        self->readRequest();
      });
    } else {
      readRequest();
    }
  }

  void shutdown(uint16_t, const std::string&) override {
    beast::error_code ec;
    beast::get_lowest_layer(stream_).socket().shutdown(tcp::socket::shutdown_both, ec);
  }

 private:
  Request request(const bhttp::request<bhttp::string_body>& req, uint32_t worker) const {
    Request r = toRequest(req, worker);
    r.remoteAddress = ticket_.ip();
    return r;
  }

  void readRequest() {
    parser_.emplace();
    parser_->header_limit(static_cast<uint32_t>(srv_.options.maxHeaderBytes));
    parser_->body_limit(srv_.options.maxBodyBytes);
    beast::get_lowest_layer(stream_).expires_after(srv_.options.requestTimeout);
    bhttp::async_read(stream_, buffer_, *parser_,
                      [self = this->shared_from_this()](beast::error_code ec, size_t) { self->onRead(ec); });
  }

  void onRead(beast::error_code ec) {
    if (ec == bhttp::error::end_of_stream) {
      closeSend();
      return;
    }
    if (ec) {
      if (ec.category() == bhttp::make_error_code(bhttp::error::bad_target).category()) {
        // A protocol error (not a socket error): answer 400/413/431 and close.
        metrics::registry().drop(metrics::Drop::kHttpBad);
        unsigned status = ec == bhttp::error::body_limit ? 413 : ec == bhttp::error::header_limit ? 431 : 400;
        respond(Response::text(status, "bad request: " + ec.message() + "\n"), 11, false, false);
      }
      return;
    }
    metrics::add(metrics::registry().httpRequests);
    auto& req = parser_->get();
    if (websocket::is_upgrade(req)) {
      // kaiwa's own lean WebSocket (websocket.cpp); the handshake is checked here, as Beast would.
      auto version = req[bhttp::field::sec_websocket_version];
      if (version != "13") {
        Response res = Response::text(426, "WebSocket version 13 only\n");
        res.headers.emplace_back("Sec-WebSocket-Version", "13");
        respond(std::move(res), req.version(), false, false);
        return;
      }
      if (req.version() != 11 || !ws::validClientKey(req[bhttp::field::sec_websocket_key])) {
        respond(Response::text(400, "bad WebSocket upgrade\n"), req.version(), false, false);
        return;
      }
      if (auto* limits = srv_.options.addressLimits; limits && !limits->allowHandshake(ticket_.ip(), Clock::now())) {
        Response res = Response::text(429, "too many WebSocket handshakes from this address\n");
        res.headers.emplace_back("Retry-After", "1");
        respond(std::move(res), req.version(), false, false);
        return;
      }
      beast::get_lowest_layer(stream_).expires_never();  // the request timer's wait would outlive the session
      std::optional<tls::Session> tls;
      std::string pending;  // plaintext that TLS had decrypted, or could, past what Beast read
      if constexpr (std::is_same_v<Stream, TlsStream>) {
        tls = detail::takeOverTls(stream_.native_handle(), pending);
        if (!tls) {
          // The peer's close_notify or a TLS error came with the request, or OpenSSL has output Asio did not send
          // yet (a key update answered while the request was read): the connection cannot go on and is closed.
          spdlog::debug("ws upgrade over TLS: the TLS state cannot be taken over, closing");
          metrics::registry().drop(metrics::Drop::kTlsBad);
          return;
        }
      }
      handedOver_ = true;
      uint32_t target = worker_;
      if (srv_.routes.websocketWorker) {
        auto t = srv_.routes.websocketWorker(request(req, worker_));
        if (t && *t < srv_.pool.size()) target = *t;
      }
      handOver(target, std::move(tls), pending);
      return;
    }
    Request r = request(req, worker_);
    bool head = req.method() == bhttp::verb::head;
    if (srv_.routes.deferred) {
      // The responder may run, and be destroyed, on any thread (a Socket.IO poll is answered by the worker that owns
      // its session); it carries the response back to this worker. Its reference to the session is given back on
      // this worker too: the last reference may be the responder's, and the session must not be destroyed on
      // another worker (its stream belongs to this worker's io_context, its entry to this worker's live set). A
      // thread that is no worker lets go at once: that is the main thread tearing the front doors down after the
      // workers stopped, when a task posted now would outlive the server.
      asio::io_context& home = srv_.pool.context(worker_);
      std::shared_ptr<HttpSession> self(this, [keep = this->shared_from_this(), &home](HttpSession* s) mutable {
        uint32_t here = net::WorkerPool::current();
        if (here == s->worker_ || here == net::WorkerPool::kNotAWorker) return keep.reset();
        asio::post(home, [keep = std::move(keep)] {});
      });
      Responder respond = [self = std::move(self), &home, version = req.version(), keepAlive = req.keep_alive(),
                           head](Response res) mutable {
        asio::post(home, [self, res = std::move(res), version, keepAlive, head]() mutable {
          self->respond(std::move(res), version, keepAlive, head);
        });
      };
      bool taken = false;
      try {
        taken = srv_.routes.deferred(r, respond);
      } catch (const std::exception& e) {
        spdlog::error("http {} {}: {}", r.method, r.path, e.what());
        respond(Response::text(500, "internal error\n"));
        return;
      }
      if (taken) return;
    }
    std::optional<Response> res;
    try {
      if (srv_.routes.api) res = srv_.routes.api(r);
      if (!res && srv_.routes.files && (head || req.method() == bhttp::verb::get)) {
        if (head) r.method = "GET";
        res = srv_.routes.files(r);
      }
    } catch (const std::exception& e) {
      spdlog::error("http {} {}: {}", r.method, r.path, e.what());
      res = Response::text(500, "internal error\n");
    }
    if (!res) res = Response::text(404, "not found\n");
    respond(std::move(*res), req.version(), req.keep_alive(), head);
  }

  // Starts the WebSocket of this connection on worker `target`: here, or moved there (its descriptor, its TLS state,
  // what was read past the request, and the request), so that its room's messages need no hop between threads.
  void handOver(uint32_t target, std::optional<tls::Session> tls, std::string_view pending) {
    beast::error_code ec;
    tcp::socket socket = beast::get_lowest_layer(stream_).release_socket();
    int fd = socket.release(ec);  // out of Asio's reactor: the WebSocket layer has its own (websocket.cpp)
    if (ec || fd < 0) {
      metrics::add(metrics::registry().httpConnections, -1);  // the peer is gone already; nothing to hand over
      return;
    }
    auto data = buffer_.cdata();
    std::string leftover(static_cast<const char*>(data.data()), data.size());
    leftover += pending;
    auto& req = parser_->get();
    std::string key(req[bhttp::field::sec_websocket_key]);
    if (target == worker_) {
      Request r = request(req, worker_);
      detail::startBareWebSocket(srv_, worker_, fd, std::move(tls), std::move(ticket_), leftover, r, key);
      return;
    }
    metrics::add(metrics::registry().wsHandovers);
    // The request before the ticket moves (a lambda's captures are initialized in no set order).
    Request r = request(req, target);
    // (If the workers stop before the task runs, the ticket goes with it; the descriptor goes with the process.)
    srv_.pool.post(target, [srv = &srv_, target, fd, tls = std::move(tls), leftover = std::move(leftover),
                            r = std::move(r), key = std::move(key), ticket = std::move(ticket_)]() mutable {
      detail::startBareWebSocket(*srv, target, fd, std::move(tls), std::move(ticket), leftover, r, key);
    });
  }

  void respond(Response&& res, unsigned version, bool keepAlive, bool head) {
    res_.emplace(toBeast(std::move(res), version, keepAlive, head));
    beast::get_lowest_layer(stream_).expires_after(srv_.options.requestTimeout);  // a long poll may have held it
    bhttp::async_write(stream_, *res_, [self = this->shared_from_this(), keepAlive](beast::error_code ec, size_t) {
      if (ec) return;
      if (!keepAlive) {
        self->closeSend();
        return;
      }
      self->readRequest();
    });
  }

  void closeSend() {
    if constexpr (std::is_same_v<Stream, TlsStream>) {
      beast::get_lowest_layer(stream_).expires_after(std::chrono::seconds(5));
      stream_.async_shutdown([self = this->shared_from_this()](beast::error_code) {});
    } else {
      beast::error_code ec;
      stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    }
  }

  Server::Impl& srv_;
  uint32_t worker_;
  Stream stream_;
  beast::flat_buffer buffer_;
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
  std::optional<bhttp::response<bhttp::string_body>> res_;
  AddressTicket ticket_;  // moves to the WebSocket at an upgrade
  bool handedOver_ = false;
};

// A TLS context for a server certificate chain and key. Throws std::runtime_error if either is not usable.
std::shared_ptr<asio::ssl::context> makeSslContext(const TlsConfig& tls) {
  auto ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_server);
  ctx->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                   asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 | asio::ssl::context::no_tlsv1_1 |
                   asio::ssl::context::single_dh_use);
  // An idle connection gives its record buffers (~34 KB) back to OpenSSL until its next record: signaling
  // connections are mostly idle, and WSS is how kaiwa faces the internet without a proxy.
  SSL_CTX_set_mode(ctx->native_handle(), SSL_MODE_RELEASE_BUFFERS);
  try {
    ctx->use_certificate_chain(asio::buffer(tls.certificateChainPem));
    ctx->use_private_key(asio::buffer(tls.privateKeyPem), asio::ssl::context::pem);
  } catch (const std::exception& e) {
    throw std::runtime_error(std::string("TLS certificate or key not usable: ") + e.what());
  }
  if (SSL_CTX_check_private_key(ctx->native_handle()) != 1) {
    throw std::runtime_error("TLS certificate or key not usable: the key does not belong to the certificate");
  }
  return ctx;
}

}  // namespace

void Server::Impl::startTicking(uint32_t worker) {
  tickers[worker] = pool.loop(worker).every(
      tickPeriod(), [this, worker](TimePoint now) { forEachSession(worker, [now](SessionBase& s) { s.tick(now); }); });
}

Server::Impl::~Impl() {
  abandonAll();
  for (auto& st : acceptStates) {
    if (st.spare >= 0) ::close(st.spare);
  }
}

void Server::Impl::accept(uint32_t worker) {
  acceptors[worker]->async_accept(pool.context(worker), [this, worker](beast::error_code ec, tcp::socket socket) {
    if (ec == asio::error::operation_aborted) return;  // stopAccepting
    if (ec) {
      acceptFailed(worker, ec);  // accepts again after a pause
      return;
    }
    acceptStates[worker].backoff.succeeded();
    admit(worker, std::move(socket));
    accept(worker);
  });
}

void Server::Impl::admit(uint32_t worker, tcp::socket socket) {
  beast::error_code ec;
  auto remote = socket.remote_endpoint(ec);
  if (ec) return;  // the client is gone already
  std::string ip = clientIp(remote.address());
  AddressTicket ticket(nullptr, ip);
  if (common::AddressLimits* limits = options.addressLimits) {
    if (!limits->openConnection(ip, Clock::now())) {
      // Over the address's concurrent or rate limit (counted in kaiwa_address_refused_total): closed at once.
      if (!tls) {
        static const std::string kRefused =
            refusalResponse(429, "Too Many Requests", "too many connections from this address\n");
        [[maybe_unused]] auto n =
            ::send(socket.native_handle(), kRefused.data(), kRefused.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
      }
      socket.shutdown(tcp::socket::shutdown_send, ec);
      socket.close(ec);
      return;
    }
    ticket = AddressTicket(limits, std::move(ip));
  }
  socket.set_option(tcp::no_delay(true), ec);
  if (tls) {
    auto ctx = sslContext();  // the current certificate (SIGHUP may have swapped it)
    std::make_shared<HttpSession<TlsStream>>(*this, worker, TlsStream(std::move(socket), *ctx), std::move(ticket))
        ->start();
  } else {
    std::make_shared<HttpSession<PlainStream>>(*this, worker, PlainStream(std::move(socket)), std::move(ticket))
        ->start();
  }
}

void Server::Impl::acceptFailed(uint32_t worker, const beast::error_code& ec) {
  auto& st = acceptStates[worker];
  bool outOfDescriptors = ec == asio::error::no_descriptors ||
                          (ec.category() == asio::error::get_system_category() && ec.value() == ENFILE);
  if (outOfDescriptors) st.shedUnlogged += shedPending(worker);
  // The listener stays readable while connections wait: retrying at once would spin. Pause, longer each time, and
  // log at most once every 10 s per listener.
  TimePoint now = Clock::now();
  net::AcceptBackoff::Failure f = st.backoff.failed(now);
  if (f.log) {
    spdlog::warn(
        "accept failed: {} ({} more failures not logged since the last report, {} waiting connections closed "
        "unserved); the listener pauses and retries",
        ec.message(), f.suppressed, std::exchange(st.shedUnlogged, 0));
  }
  st.retry = pool.loop(worker).at(now + f.pause, [this, worker](TimePoint) {
    acceptStates[worker].retry = 0;
    if (acceptors[worker]->is_open()) accept(worker);  // (closed: stopAccepting)
  });
}

// Out of descriptors: gives up the spare one for a moment to take the connections waiting on this worker's listener
// and close them at once, so that their clients are told (plain HTTP: a 503) instead of waiting in the backlog.
std::size_t Server::Impl::shedPending(uint32_t worker) {
  auto& st = acceptStates[worker];
  if (st.spare >= 0) {
    ::close(st.spare);
    st.spare = -1;
  }
  static const std::string kBusy = refusalResponse(503, "Service Unavailable", "the server is out of resources\n");
  int listener = acceptors[worker]->native_handle();
  std::size_t shed = 0;
  while (shed < kShedPerTurn) {
    pollfd p{listener, POLLIN, 0};
    if (::poll(&p, 1, 0) != 1 || !(p.revents & POLLIN)) break;  // none waiting (never blocks in accept)
    int fd = ::accept4(listener, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      break;  // EMFILE still (another thread took the spare's slot), or none waiting
    }
    if (!tls) {
      [[maybe_unused]] auto n = ::send(fd, kBusy.data(), kBusy.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    }
    ::close(fd);
    ++shed;
  }
  st.spare = ::open("/dev/null", O_RDONLY | O_CLOEXEC);  // may fail while descriptors are short: next time
  return shed;
}

Server::Server(net::WorkerPool& pool, ServerOptions options, Routes routes)
    : impl_(std::make_unique<Impl>(pool, std::move(options), std::move(routes))) {
  if (impl_->options.tls) {
    impl_->tls = true;
    impl_->sslCurrent = makeSslContext(*impl_->options.tls);
    impl_->options.tls->privateKeyPem.clear();  // held by OpenSSL from now on
  }
}

Server::~Server() = default;

bool Server::tls() const { return impl_->tls; }

std::optional<std::string> Server::reloadTls(const TlsConfig& tls) {
  if (!impl_->tls) return std::string("this server does not serve TLS");
  std::shared_ptr<asio::ssl::context> ctx;
  try {
    ctx = makeSslContext(tls);
  } catch (const std::exception& e) {
    return std::string(e.what());
  }
  std::lock_guard lock(impl_->sslMutex);
  impl_->sslCurrent.swap(ctx);  // the old context goes once the last connection made with it closes
  return std::nullopt;
}

uint16_t Server::start() {
  beast::error_code ec;
  auto address = asio::ip::make_address(impl_->options.host, ec);
  if (ec) throw std::runtime_error("bad listen address '" + impl_->options.host + "'");
  uint16_t port = impl_->options.port;
  if (port != 0) {
    // SO_REUSEPORT would let this server share a port another process (a second kaiwa) listens on, each getting
    // part of the clients. A probe bound without it fails if anyone listens there.
    tcp::acceptor probe(impl_->pool.context(0));
    tcp::endpoint ep(address, port);
    probe.open(ep.protocol(), ec);
    if (!ec) probe.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) probe.bind(ep, ec);
    if (ec) {
      throw std::runtime_error("cannot listen on " + impl_->options.host + ":" + std::to_string(port) + ": " +
                               ec.message());
    }
  }
  for (uint32_t w = 0; w < impl_->pool.size(); ++w) {
    auto acc = std::make_unique<tcp::acceptor>(impl_->pool.context(w));
    tcp::endpoint ep(address, port);
    acc->open(ep.protocol(), ec);
    if (!ec) acc->set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) acc->set_option(asio::detail::socket_option::boolean<SOL_SOCKET, SO_REUSEPORT>(true), ec);
    if (!ec) acc->bind(ep, ec);
    if (!ec) acc->listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
      throw std::runtime_error("cannot listen on " + impl_->options.host + ":" + std::to_string(port) + ": " +
                               ec.message());
    }
    port = acc->local_endpoint().port();  // port 0: the others share the first one's port
    impl_->acceptors.push_back(std::move(acc));
  }
  for (uint32_t w = 0; w < impl_->pool.size(); ++w) {
    auto& st = impl_->acceptStates[w];
    st.spare = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (st.spare < 0) throw std::runtime_error(std::string("cannot open /dev/null: ") + std::strerror(errno));
  }
  for (uint32_t w = 0; w < impl_->pool.size(); ++w) {
    impl_->pool.post(w, [this, w] {
      impl_->accept(w);
      impl_->startTicking(w);
    });
  }
  return port;
}

void Server::stopAccepting() {
  for (uint32_t w = 0; w < impl_->acceptors.size(); ++w) {
    impl_->pool.post(w, [this, w] {
      beast::error_code ec;
      impl_->acceptors[w]->close(ec);
      impl_->pool.loop(w).cancel(std::exchange(impl_->acceptStates[w].retry, 0));
    });
  }
}

void Server::closeAll(uint16_t code, std::string reason) {
  for (uint32_t w = 0; w < impl_->pool.size(); ++w) {
    impl_->pool.post(
        w, [this, w, code, reason] { impl_->forEachSession(w, [&](SessionBase& s) { s.shutdown(code, reason); }); });
  }
}

}  // namespace kaiwa::http

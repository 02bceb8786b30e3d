// `kaiwa serve`: wires the worker pool, the HTTP server, the signaling hub and the routes together, and runs until
// SIGINT/SIGTERM; SIGHUP reloads what can change without dropping anyone (docs/configuration.md, "Reloading").
#include <sys/resource.h>

#include <csignal>
#include <cstring>
#include <filesystem>
#include <functional>
#include <optional>
#include <thread>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <boost/json.hpp>

#include "app/config.hpp"
#include "app/ice_servers.hpp"
#include "cluster/node.hpp"
#include "common/metrics.hpp"
#include "common/random.hpp"
#include "http/server.hpp"
#include "http/static_files.hpp"
#include "http/tls.hpp"
#include "media/service.hpp"
#include "net/worker_pool.hpp"
#include "signal/hub.hpp"
#include "signal/names.hpp"
#include "signal/native/session.hpp"
#include "signal/peerjs/session.hpp"
#include "signal/socketio/session.hpp"
#include "stun/saslprep.hpp"
#include "turn/credentials.hpp"
#include "turn/service.hpp"
#include "ws/close_code.hpp"

#ifndef KAIWA_DEFAULT_WEB_ROOT
#define KAIWA_DEFAULT_WEB_ROOT ""
#endif

namespace kaiwa::app {
namespace fs = std::filesystem;

namespace {

fs::path defaultWebRoot() {
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    fs::path beside = exe.parent_path() / "web";
    if (fs::is_regular_file(beside / "index.html", ec)) return beside;
  }
  return fs::path(KAIWA_DEFAULT_WEB_ROOT);
}

// Set by runServer when the TURN service runs: what /api/ice-servers advertises with fresh REST credentials.
std::optional<TurnIce> turnIce;
// The running TURN service: its REST secrets in force (SIGHUP may replace them) sign what /api/ice-servers hands out.
const turn::TurnService* runningTurn = nullptr;

std::string iceServersJson(const ServeConfig& c, std::string_view requestHost = {}) {
  if (turnIce && runningTurn) {
    auto credentials = runningTurn->credentials();  // one consistent snapshot, whichever thread reloads
    if (!credentials->secrets().empty()) {
      TurnIce now = *turnIce;
      now.secret = credentials->secrets().front();
      return app::iceServersJson(now, c.iceServers, requestHost, wallMillis() / 1000);
    }
  }
  return app::iceServersJson(turnIce, c.iceServers, requestHost, wallMillis() / 1000);
}

http::Routes makeRoutes(const ServeConfig& config, signal::Hub& hub, http::StaticFiles& files,
                        signal::peerjs::Service& peerjs, signal::socketio::Service& socketio, media::Service* sfu,
                        signal::native::SfuBridge& bridge, const std::unique_ptr<cluster::Node>& node) {
  http::Routes routes;
  routes.deferred = [&socketio, &peerjs, sfu](const http::Request& req, http::Responder& respond) {
    if (sfu && sfu->http(req, respond)) return true;  // WHIP/WHEP, answered by the room's worker (docs/sfu.md)
    if (peerjs.deferred(req, respond)) return true;  // /{key}/peers in a cluster, from the key's node (docs/cluster.md)
    return socketio.http(req, respond);  // Engine.IO polling, answered by the session's worker (docs/socketio.md)
  };
  auto ice = [&config](std::string_view host) { return iceServersJson(config, host); };
  routes.api = [ice, &config, &files, &peerjs, &socketio,
                &node](const http::Request& req) -> std::optional<http::Response> {
    if (auto r = peerjs.http(req)) return r;  // /{key}/id, /{key}/peers (docs/peerjs.md)
    bool get = req.method == "GET" || req.method == "HEAD";
    auto only = [&](auto make) -> std::optional<http::Response> {
      if (!get) {
        auto r = http::Response::text(405, "method not allowed\n");
        r.headers.emplace_back("Allow", "GET, HEAD");
        return r;
      }
      return make();
    };
    if (req.path == "/healthz") {
      return only([&node] {
        // A node cut from Redis serves its own rooms but cannot reach the others: a balancer should send new
        // clients elsewhere (docs/cluster.md, "Failures").
        if (node && !node->redisUp()) return http::Response::text(503, "degraded: redis unreachable\n");
        return http::Response::text(200, "ok\n");
      });
    }
    if (req.path == "/metrics") {
      return only([&node, &socketio] {
        auto r = http::Response::text(
            200, metrics::renderPrometheus() + (node ? node->renderMetrics() + socketio.renderMetrics() : ""));
        r.contentType = "text/plain; version=0.0.4; charset=utf-8";
        r.headers.emplace_back("Cache-Control", "no-store");
        return r;
      });
    }
    if (req.path == "/api/ice-servers") {
      return only([&] {
        // With --auth-secret: TURN credentials only for a holder of a room token (docs/turn.md).
        if (config.authSecret) {
          if (auto why = iceServersRefusal(req.authorization, req.queryParam("token"), req.queryParam("room"),
                                           *config.authSecret, wallMillis() / 1000)) {
            auto r = http::Response::json(
                401, boost::json::serialize(boost::json::object{{"error", "unauthorized"}, {"message", *why}}));
            r.headers.emplace_back("WWW-Authenticate", "Bearer");
            r.headers.emplace_back("Cache-Control", "no-store");
            return r;
          }
        }
        auto r = http::Response::json(200, ice(req.host));
        r.headers.emplace_back("Cache-Control", "no-store");
        return r;
      });
    }
    // The app's own routes all render index.html; the page reads the room from its URL.
    if (get && (req.path == "/" || req.path.starts_with("/room/"))) {
      auto r = files.serveFile("index.html", req);
      if (!r) return http::Response::text(503, "the web app is not built: run the CMake build (npm run build:web)\n");
      if (req.path.starts_with("/room/")) {
        auto name = http::percentDecode(std::string_view(req.path).substr(6));
        // Still the app, which explains what a room name may be, but with the status a crawler should see.
        if (!name || !signal::validRoomName(*name)) r->status = 404;
      }
      return r;
    }
    return std::nullopt;
  };
  routes.files = [&files](const http::Request& req) { return files.serve(req); };
  // A WebSocket lives on the worker that owns its room when the upgrade says which room (docs/architecture.md):
  // native `/ws?room=R` (the SDK adds it), Socket.IO `?room=R`. Not PeerJS: all clients of a key share one room, and
  // one worker for all of them halved the closed-loop throughput (bench/README.md).
  routes.websocketWorker = [&hub, &peerjs, &socketio](const http::Request& req) -> std::optional<uint32_t> {
    if (auto w = peerjs.websocketWorker(req)) return w;
    auto room = req.queryParam("room");
    if (!room || !signal::validRoomName(*room)) return std::nullopt;
    if (req.path == "/ws") return hub.ownerOf(*room);
    if (req.path == socketio.options().path) return hub.ownerOf(signal::socketio::coreRoomName(*room));
    return std::nullopt;
  };
  const auto mediaPolicy = signal::parseMediaPolicy(config.sfu.mediaMode).value_or(signal::MediaPolicy::kAuto);
  routes.websocket = [&hub, &peerjs, &socketio, &bridge, mediaPolicy, &node](
                         http::WsConnection& conn, const http::Request& req) -> std::unique_ptr<http::WsHandler> {
    if (req.path == "/ws")
      return std::make_unique<signal::native::Session>(hub, conn, &bridge, mediaPolicy, node.get());
    if (auto h = peerjs.websocket(conn, req)) return h;
    if (auto h = socketio.websocket(conn, req)) return h;
    return nullptr;
  };
  return routes;
}

// --turn-user NAME:PASSWORD entries, SASLprep'd (RFC 4013) as TURN stores them. An error names the entry it refuses.
std::optional<std::string> turnUsers(const std::vector<std::string>& entries,
                                     std::vector<std::pair<std::string, std::string>>& out) {
  for (const auto& u : entries) {
    auto colon = u.find(':');
    out.emplace_back(u.substr(0, colon), u.substr(colon + 1));
    if (!stun::saslprep(out.back().first, stun::PrepMode::kStored) ||
        !stun::saslprep(out.back().second, stun::PrepMode::kStored))
      return "--turn-user '" + out.back().first + ":…': SASLprep (RFC 4013) refuses its name or password";
  }
  return std::nullopt;
}

// Starts the TURN/STUN service on the pool (before the pool's threads start). nullptr and ok=true when TURN is off
// or when the default port is busy (a warning: another kaiwa may hold it); ok=false on an explicit address that
// cannot be used, or on a bad TURN option.
std::unique_ptr<turn::TurnService> startTurn(const ServeConfig& config, net::WorkerPool& pool, bool& ok) {
  ok = true;
  const TurnConfig& t = config.turn;
  if (!t.enabled) return nullptr;
  auto fail = [&](const std::string& why) -> std::unique_ptr<turn::TurnService> {
    spdlog::error("{}", why);
    ok = false;
    return nullptr;
  };
  turn::TurnServiceOptions o;
  std::string listen = t.listen.empty() ? "[" + config.listenHost + "]:3478" : t.listen;
  if (t.listen.empty() && config.listenHost.find(':') == std::string::npos) listen = config.listenHost + ":3478";
  auto hp = parseListen(listen);
  auto addr = hp ? stun::Address::parse(hp->first, true) : std::nullopt;
  if (!addr) return fail("--turn-listen '" + listen + "' is not ADDR:PORT with a numeric address");
  addr->port = hp->second;
  o.listen = *addr;
  for (const auto& ip : t.relayIps) {
    auto a = stun::Address::parse(ip, true);
    if (!a) return fail("--turn-relay-ip '" + ip + "' is not an IP address");
    a->port = 0;
    o.relayIps.push_back(*a);
  }
  if (!t.externalIp.empty()) {
    o.externalIp = stun::Address::parse(t.externalIp, true);
    if (!o.externalIp) return fail("--turn-external-ip '" + t.externalIp + "' is not an IP address");
  }
  for (const auto& [list, out, flag] : {std::tuple{&t.allowPeers, &o.allowPeers, "--turn-allow-peer"},
                                        std::tuple{&t.denyPeers, &o.denyPeers, "--turn-deny-peer"}}) {
    for (const auto& text : *list) {
      auto cidr = turn::Cidr::parse(text);
      if (!cidr) return fail(std::string(flag) + " '" + text + "' is not a CIDR");
      out->push_back(*cidr);
    }
  }
  o.minPort = t.minPort;
  o.maxPort = t.maxPort;
  o.realm = t.realm;
  if (auto error = turnUsers(t.users, o.users)) return fail(*error);
  if (!stun::saslprep(o.realm, stun::PrepMode::kStored))
    return fail("--turn-realm '" + o.realm + "': SASLprep (RFC 4013) refuses it");
  o.secrets = t.secrets;
  if (o.secrets.empty()) o.secrets.push_back(common::randomToken(32));  // for /api/ice-servers out of the box
  o.limits.maxAllocations = t.maxAllocations;
  o.limits.maxAllocationsPerUser = t.maxAllocationsPerUser;
  o.limits.maxAllocationsPerAddress = t.maxAllocationsPerAddress;
  o.timeouts.tlsHandshake = t.tlsHandshakeTimeout;
  o.timeouts.allocate = t.tcpAllocateTimeout;
  o.timeouts.frame = t.tcpFrameTimeout;
  o.timeouts.idle = t.tcpIdleTimeout;
  o.limits.bytesPerSecond = t.bytesPerSecond;
  o.limits.unauthenticatedPerSecond = t.unauthenticatedRate;
  if (!t.tlsListen.empty()) {
    auto thp = parseListen(t.tlsListen);
    auto taddr = thp ? stun::Address::parse(thp->first, true) : std::nullopt;
    if (!taddr) return fail("--turn-tls-listen '" + t.tlsListen + "' is not ADDR:PORT with a numeric address");
    taddr->port = thp->second;
    o.tlsListen = *taddr;
    try {
      // The HTTP server's certificate (--tls-cert/--tls-key), else a self-signed one (clients that verify will not
      // accept it; coturn's tools do not verify).
      http::TlsConfig pem = !config.tlsCert.empty()
                                ? http::loadTlsFiles(config.tlsCert, config.tlsKey)
                                : http::makeSelfSigned({"localhost", "127.0.0.1", taddr->ipString()});
      o.tlsCertificateChainPem = pem.certificateChainPem;
      o.tlsPrivateKeyPem = pem.privateKeyPem;
    } catch (const std::exception& e) {
      return fail(e.what());
    }
  }
  auto service = std::make_unique<turn::TurnService>(pool, o);
  if (auto error = service->start()) {
    if (!t.listen.empty()) return fail(*error);
    spdlog::warn("{}: TURN/STUN disabled (pass --turn-listen to make this fatal, --no-turn to silence it)", *error);
    return nullptr;
  }
  TurnIce ice;
  ice.host = o.externalIp ? o.externalIp->ipString() : "";
  if (ice.host.empty() && config.listenHost != "0.0.0.0" && config.listenHost != "::" && !t.listen.empty())
    ice.host = o.listen.family == stun::Family::kV6 ? "[" + o.listen.ipString() + "]" : o.listen.ipString();
  ice.port = service->port();
  ice.tlsPort = service->tlsPort();  // turns:, on the name the HTTP certificate is for if there is one
  ice.tlsHost = config.tlsCert.empty() ? ice.host : "";
  ice.secret = o.secrets.front();
  ice.ttl = t.credentialTtl;
  turnIce = ice;
  runningTurn = service.get();
  spdlog::info("TURN/STUN on {} (UDP, TCP){}, relays {}-{}, realm {}", service->options().listen.toString(),
               o.tlsListen ? ", TLS on port " + std::to_string(service->tlsPort()) : std::string(), t.minPort,
               t.maxPort, t.realm);
  return service;
}

// Descriptors are what a server runs out of first (a connection, a TURN relay each): the soft limit goes up to the
// hard one, and both are logged.
void raiseDescriptorLimit() {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return;
  auto text = [](rlim_t v) { return v == RLIM_INFINITY ? std::string("unlimited") : std::to_string(v); };
  rlim_t before = rl.rlim_cur;
  if (rl.rlim_cur != rl.rlim_max) {
    rlimit raised = rl;
    raised.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &raised) == 0) {
      rl = raised;
    } else {
      spdlog::warn("open files: cannot raise the soft limit {} to the hard limit {}: {}", text(before),
                   text(rl.rlim_max), std::strerror(errno));
    }
  }
  spdlog::info("open files: soft limit {}{}, hard limit {}", text(rl.rlim_cur),
               rl.rlim_cur != before ? " (raised from " + text(before) + ")" : std::string(), text(rl.rlim_max));
}

// What SIGHUP reloads besides the server's own settings: one entry per part, each told the configuration as it
// reads now and returning a line for the log ("" if it has nothing to say).
struct Reloadable {
  std::string what;
  std::function<std::string(const ServeConfig& now)> reload;
};

// SIGHUP: reloads, without dropping anyone, what can be reloaded (docs/configuration.md, "Reloading"): the
// configuration is read again (the same command line, the KAIWA_* environment, the --config file as it is now); then
// the log level, the TLS certificate and key (new connections get them; a bad pair keeps the old one), and the
// `extra` parts. One log line per part.
void reload(ServeConfig& running, http::Server* server, std::vector<Reloadable>& extra) {
  std::string error;
  std::optional<ServeConfig> fresh = reloadServeConfig(error);
  if (!fresh) {
    spdlog::error("SIGHUP: configuration not re-read ({}); reloading the TLS files in use only", error);
  } else {
    spdlog::info("SIGHUP: configuration re-read{}", fresh->configFile.empty() ? "" : " (" + fresh->configFile + ")");
    if (fresh->logLevel != running.logLevel) {
      spdlog::info("SIGHUP: log level {} -> {}", running.logLevel, fresh->logLevel);
      spdlog::set_level(spdlog::level::from_str(fresh->logLevel));
      running.logLevel = fresh->logLevel;
    } else {
      spdlog::info("SIGHUP: log level unchanged ({})", running.logLevel);
    }
  }
  if (server && server->tls()) {
    if (running.tlsCert.empty()) {
      spdlog::info("SIGHUP: TLS certificate unchanged (self-signed, made at start-up)");
    } else {
      // New paths from the file are taken too, as long as both are given.
      std::string cert = fresh && !fresh->tlsCert.empty() ? fresh->tlsCert : running.tlsCert;
      std::string key = fresh && !fresh->tlsKey.empty() ? fresh->tlsKey : running.tlsKey;
      std::optional<std::string> failed;
      http::TlsConfig pem;
      try {
        pem = http::loadTlsFiles(cert, key);
        failed = server->reloadTls(pem);
      } catch (const std::exception& e) {
        failed = e.what();
      }
      if (failed) {
        spdlog::error("SIGHUP: TLS certificate not reloaded, the old one stays: {}", *failed);
      } else {
        running.tlsCert = cert;
        running.tlsKey = key;
        spdlog::info("SIGHUP: TLS certificate reloaded from {}: {}; new connections use it", cert,
                     http::describeCertificate(pem.certificateChainPem));
      }
    }
  }
  if (!fresh) return;
  for (auto& part : extra) {
    std::string line = part.reload(*fresh);
    if (!line.empty()) spdlog::info("SIGHUP: {}: {}", part.what, line);
  }
}

// The parts SIGHUP reloads besides the log level and the HTTP server's certificate.
std::vector<Reloadable> reloadables(const ServeConfig& config, turn::TurnService* turnService) {
  std::vector<Reloadable> parts;
  // TURN users and REST secrets: the next authentication on every worker uses the new lists. Without --turn-secret
  // the random secret made at start stays (the credentials /api/ice-servers handed out stay valid).
  std::vector<std::string> startSecrets =
      turnService ? turnService->credentials()->secrets() : std::vector<std::string>{};
  parts.push_back({"TURN users and secrets",
                   [turnService, users = config.turn.users, secrets = config.turn.secrets,
                    startSecrets](const ServeConfig& fresh) mutable -> std::string {
                     if (!turnService) return "";
                     if (fresh.turn.users == users && fresh.turn.secrets == secrets) return "unchanged";
                     std::vector<std::pair<std::string, std::string>> prepared;
                     if (auto error = turnUsers(fresh.turn.users, prepared)) return "not reloaded: " + *error;
                     auto newSecrets = fresh.turn.secrets.empty() ? startSecrets : fresh.turn.secrets;
                     if (auto error = turnService->reloadCredentials(std::move(prepared), newSecrets)) {
                       return "not reloaded: " + *error;
                     }
                     users = fresh.turn.users;
                     secrets = fresh.turn.secrets;
                     return fmt::format("reloaded: {} users, {} REST secrets{}", users.size(), newSecrets.size(),
                                        fresh.turn.secrets.empty() ? " (the one made at start)" : "");
                   }});
  return parts;
}

// Waits for SIGINT/SIGTERM, reloading on every SIGHUP meanwhile. Returns the stop signal.
int waitForStop(const sigset_t& signals, ServeConfig& running, http::Server* server, std::vector<Reloadable>& extra) {
  for (;;) {
    int sig = 0;
    if (sigwait(&signals, &sig) != 0) continue;
    if (sig != SIGHUP) return sig;
    reload(running, server, extra);
  }
}

// `kaiwa serve --only turn`: the TURN/STUN service alone, until SIGINT/SIGTERM.
int runTurnOnly(const ServeConfig& config, net::WorkerPool& pool, const sigset_t& waitSignals) {
  bool ok = true;
  auto service = startTurn(config, pool, ok);
  if (!ok) return 1;
  if (!service) {
    spdlog::error("TURN/STUN could not start");
    return 1;
  }
  pool.start();
  ServeConfig running = config;
  auto extra = reloadables(config, service.get());
  int sig = waitForStop(waitSignals, running, nullptr, extra);
  spdlog::info("{}: shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");
  pool.shutdown();
  service.reset();
  spdlog::info("stopped");
  return 0;
}

}  // namespace

int runServer(const ServeConfig& config) {
  spdlog::set_level(spdlog::level::from_str(config.logLevel));
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");

  // Block the stop signals and SIGHUP before any thread starts, so only the main thread's sigwait sees them.
  sigset_t stopSignals;
  sigemptyset(&stopSignals);
  sigaddset(&stopSignals, SIGINT);
  sigaddset(&stopSignals, SIGTERM);
  sigset_t waitSignals = stopSignals;
  sigaddset(&waitSignals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &waitSignals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);
  raiseDescriptorLimit();

  unsigned workers = config.workers ? config.workers : std::max(1u, std::thread::hardware_concurrency());
  net::WorkerPool pool(workers);
  if (config.only == "turn") return runTurnOnly(config, pool, waitSignals);

  common::AddressLimits addressLimits(config.addressLimits);
  signal::HubOptions hubOptions;
  hubOptions.limits = config.limits;
  hubOptions.addressLimits = &addressLimits;
  hubOptions.authSecret = config.authSecret;
  hubOptions.heartbeat = config.heartbeat;
  signal::Hub hub(pool, hubOptions);
  // Between the native rooms and the SFU. Destroyed before the hub and its rooms: a room calls its observer only from
  // its own calls, which end with the workers (pool.shutdown()).
  signal::native::SfuBridge bridge;
  bridge.setHub(&hub);

  http::StaticFiles files(config.webRoot.empty() ? defaultWebRoot() : fs::path(config.webRoot));
  if (!files.usable()) {
    spdlog::warn("no web app at {} (index.html missing): / will answer 503; build it or pass --web-root",
                 files.root().string());
  }

  http::ServerOptions so;
  so.host = config.listenHost;
  so.port = config.listenPort;
  so.maxQueuedBytes = config.limits.maxQueuedBytes;
  so.wsMaxMessageBytes = std::max<std::size_t>(4 * config.limits.maxMessageBytes, 1 << 20);
  if (config.socketio.enabled) {  // what Socket.IO's handshake advertises gets through; a bit more reaches it to be
    std::size_t sio = config.socketio.maxPayload + (64 << 10);  // refused there, closing its session (socketio.md)
    so.maxBodyBytes = std::max(so.maxBodyBytes, sio);
    so.wsMaxMessageBytes = std::max(so.wsMaxMessageBytes, sio);
  }
  so.pingTimeout = config.pingTimeout;
  so.messageTimeout = config.wsMessageTimeout;
  so.addressLimits = &addressLimits;
  try {
    if (!config.tlsCert.empty()) {
      so.tls = http::loadTlsFiles(config.tlsCert, config.tlsKey);
    } else if (config.tlsSelfSigned) {
      std::vector<std::string> names{"localhost", "127.0.0.1", "::1"};
      if (config.listenHost != "0.0.0.0" && config.listenHost != "::") names.push_back(config.listenHost);
      char host[256] = {};
      if (gethostname(host, sizeof host - 1) == 0 && host[0]) names.emplace_back(host);
      so.tls = http::makeSelfSigned(names);
    }
  } catch (const std::exception& e) {
    spdlog::error("{}", e.what());
    return 1;
  }

  // Declared before the front doors, so destroyed after them: a front door's sessions may hold HTTP responders
  // (Socket.IO's long polls) that point into the server.
  // The SFU (docs/sfu.md): its sockets are bound here, before the workers start.
  cluster::Node* clusterNode = nullptr;  // the cluster's node once made below (WHIP/WHEP ask it where a room lives)
  std::unique_ptr<media::Service> sfu;
  if (config.sfu.enabled) {
    media::Options wo;
    auto listen = config.sfu.listen.empty() ? common::Address::parse(config.listenHost, true)
                                            : common::Address::parse(config.sfu.listen);
    if (!listen) {
      spdlog::error("--sfu-listen: '{}' is not an address",
                    config.sfu.listen.empty() ? config.listenHost : config.sfu.listen);
      return 1;
    }
    if (config.sfu.listen.empty()) listen->port = 7881;
    wo.listen = *listen;
    wo.announceIps = config.sfu.announceIps;
    wo.tcp = config.sfu.tcp;
    wo.authSecret = config.authSecret;
    wo.ownerOf = [&hub](std::string_view room) { return hub.ownerOf(room); };
    wo.validRoomName = [](std::string_view room) { return signal::validRoomName(room); };
    if (!config.cluster.redis.empty()) {
      wo.locate = [&clusterNode](std::string room, std::function<void(media::Placement)> done) {
        if (clusterNode == nullptr) return done({});
        clusterNode->locateUrl(std::move(room), [done = std::move(done)](signal::Placement where, std::string url) {
          using W = media::Placement::Where;
          W w = where == signal::Placement::kHere        ? W::kHere
                : where == signal::Placement::kElsewhere ? W::kElsewhere
                : where == signal::Placement::kFull      ? W::kFull
                                                         : W::kUnavailable;
          done({w, std::move(url)});
        });
      };
    }
    wo.limits.room.publishersPerRoom = config.sfu.maxPublishers;
    wo.limits.room.tracksPerPublisher = config.sfu.maxTracks;
    wo.recordDir = config.sfu.recordDir;
    while (wo.recordDir.size() > 1 && wo.recordDir.back() == '/') wo.recordDir.pop_back();
    wo.limits.record.tracks = config.sfu.recordMaxTracks;
    wo.limits.record.tracksPerRoom = config.sfu.recordMaxRoomTracks;
    wo.limits.record.minFreeBytes = config.sfu.recordMinFreeMb << 20;
    sfu = std::make_unique<media::Service>(pool, wo);
    if (auto e = sfu->start()) {
      if (!config.sfu.listen.empty()) {
        spdlog::error("{} (--no-sfu runs without the SFU)", *e);
        return 1;
      }
      // Like TURN's default port: another kaiwa may hold it.
      spdlog::warn("{}: SFU disabled (pass --sfu-listen to make this fatal, --no-sfu to silence it)", *e);
      sfu.reset();
    }
    if (sfu)
      spdlog::info("SFU media port {} ({}); WHIP at /whip/<room>, WHEP at /whep/<room>",
                   common::Address{wo.listen.family, wo.listen.ip, sfu->port()}.toString(),
                   sfu->tcpPort() ? "UDP and ICE-TCP" : "UDP");
    if (sfu && !wo.recordDir.empty()) spdlog::info("recording into {}", wo.recordDir);
  }
  if (sfu) {
    sfu->setListener(&bridge);
    sfu->setRoster(&bridge);
    bridge.setMedia(sfu.get());
    bridge.setDefaultMedia(signal::parseMediaPolicy(config.sfu.mediaMode).value_or(signal::MediaPolicy::kAuto));
  }
  std::optional<http::Server> server;
  signal::peerjs::Service peerjs(hub, config.peerjs);
  signal::socketio::Service socketio(hub, pool, config.socketio);
  // Made once the port is known (it names the node); the routes read it only once the workers run.
  std::unique_ptr<cluster::Node> node;
  std::optional<cluster::RedisAddress> redis;
  if (!config.cluster.redis.empty() && !(redis = cluster::RedisAddress::parse(config.cluster.redis))) {
    spdlog::error("--redis: '{}' is not redis://HOST:PORT", config.cluster.redis);
    return 1;
  }
  server.emplace(pool, so, makeRoutes(config, hub, files, peerjs, socketio, sfu.get(), bridge, node));
  uint16_t port = 0;
  try {
    port = server->start();
  } catch (const std::exception& e) {
    spdlog::error("{}", e.what());
    return 1;
  }
  if (redis) {
    cluster::NodeOptions no;
    no.redis = *redis;
    no.id = config.cluster.nodeId;
    if (no.id.empty()) {
      char host[256] = {};
      if (gethostname(host, sizeof host - 1) != 0 || !host[0]) std::strcpy(host, "localhost");
      no.id = fmt::format("{}:{}", host, port);
    }
    if (!cluster::validNodeId(no.id)) {
      spdlog::error("--node-id: '{}' is not a node id (1-128 printable characters, no spaces)", no.id);
      return 1;
    }
    std::string hostPart =
        config.listenHost.find(':') != std::string::npos ? "[" + config.listenHost + "]" : config.listenHost;
    no.advertise = config.cluster.advertise.empty()
                       ? fmt::format("{}://{}:{}", server->tls() ? "https" : "http", hostPart, port)
                       : config.cluster.advertise;
    no.maxRooms = config.limits.maxRooms;
    no.addressLimits = &addressLimits;
    auto mediaPolicy = signal::parseMediaPolicy(config.sfu.mediaMode).value_or(signal::MediaPolicy::kAuto);
    node = std::make_unique<cluster::Node>(
        pool, hub, no,
        [&hub, &bridge, mediaPolicy, &socketio, &peerjs](signal::Door door,
                                                         http::WsConnection& conn) -> std::unique_ptr<http::WsHandler> {
          if (door == signal::Door::kSocketIo) return socketio.remote(conn);  // docs/socketio.md, "Across nodes"
          if (door == signal::Door::kPeerjs)
            return peerjs.linkedSession(conn);  // docs/cluster.md, "PeerJS across nodes"
          return std::make_unique<signal::native::Session>(hub, conn, &bridge, mediaPolicy, nullptr, false);
        });
    if (config.socketio.enabled && !socketio.setCluster(node.get())) {
      spdlog::error("--node-id: '{}' is too long for Socket.IO's session ids (at most {} characters; or --no-socketio)",
                    no.id, signal::socketio::Service::kMaxNodeIdInSid);
      return 1;
    }
    peerjs.setRelay(node.get());
    clusterNode = node.get();
    spdlog::info("cluster: node {} ({}) on redis {}:{}", no.id, no.advertise, redis->host, redis->port);
  }
  bool turnOk = true;
  auto turnService = startTurn(config, pool, turnOk);
  if (!turnOk) return 1;
  pool.start();
  hub.start();
  if (node) node->start();
  std::string scheme = server->tls() ? "https" : "http";
  std::string shownHost =
      config.listenHost.find(':') != std::string::npos ? "[" + config.listenHost + "]" : config.listenHost;
  spdlog::info("kaiwa {} serving {}://{}:{}/ with {} workers (web app: {})", KAIWA_VERSION, scheme, shownHost, port,
               workers, files.root().string());

  ServeConfig running = config;
  auto extra = reloadables(config, turnService.get());
  int sig = waitForStop(waitSignals, running, &*server, extra);
  spdlog::info("{}: shutting down (at most {} ms)", sig == SIGINT ? "SIGINT" : "SIGTERM",
               config.shutdownTimeout.count());
  server->stopAccepting();
  hub.shutdown(signal::ByeReason::kShutdown);
  auto deadline = Clock::now() + config.shutdownTimeout;
  timespec step{0, 50'000'000};
  while (Clock::now() < deadline && metrics::registry().wsConnections.load() > 0) {
    siginfo_t info;
    if (sigtimedwait(&stopSignals, &info, &step) > 0) {
      spdlog::warn("second signal: stopping now");
      break;
    }
  }
  server->closeAll(ws::kCloseGoingAway, std::string(toString(signal::ByeReason::kShutdown)));
  if (node) node->stop();
  // Pending operations hold sessions that refer to the server, the hub and the front doors: they go first, while
  // all of those are alive; then the TURN service, the front doors, the server (and the connections that own
  // themselves), and the rest.
  pool.shutdown();
  turnService.reset();
  sfu.reset();
  spdlog::info("stopped");
  return 0;
}

}  // namespace kaiwa::app

#include "app/config.hpp"

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include <charconv>
#include <cstdio>
#include <iostream>

#include "auth/jwt.hpp"
#include "common/clock.hpp"
#include "signal/names.hpp"

#ifndef KAIWA_VERSION
#define KAIWA_VERSION "0.0.0"
#endif

namespace kaiwa::app {

std::optional<Millis> parseDuration(std::string_view text) {
  if (text.empty()) return std::nullopt;
  double value = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || value < 0) return std::nullopt;
  std::string_view unit(ptr, static_cast<size_t>(text.data() + text.size() - ptr));
  double ms = 0;
  if (unit.empty() || unit == "s") {
    ms = value * 1000;
  } else if (unit == "ms") {
    ms = value;
  } else if (unit == "m" || unit == "min") {
    ms = value * 60'000;
  } else if (unit == "h") {
    ms = value * 3'600'000;
  } else {
    return std::nullopt;
  }
  return Millis(static_cast<int64_t>(ms));
}

std::string formatDuration(Millis d) {
  auto ms = d.count();
  if (ms != 0 && ms % 3'600'000 == 0) return std::to_string(ms / 3'600'000) + "h";
  if (ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
  return std::to_string(ms) + "ms";
}

std::optional<std::pair<std::string, uint16_t>> parseListen(std::string_view text) {
  auto colon = text.rfind(':');
  if (colon == std::string_view::npos) return std::nullopt;
  std::string_view host = text.substr(0, colon);
  std::string_view port = text.substr(colon + 1);
  unsigned p = 0;
  auto [ptr, ec] = std::from_chars(port.data(), port.data() + port.size(), p);
  if (ec != std::errc{} || ptr != port.data() + port.size() || p > 65535) return std::nullopt;
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  if (host.empty()) host = "0.0.0.0";
  return std::make_pair(std::string(host), static_cast<uint16_t>(p));
}

std::optional<IceServer> parseIceServer(std::string_view text) {
  IceServer s;
  auto bar = text.find('|');
  s.url = std::string(text.substr(0, bar));
  if (!(s.url.starts_with("stun:") || s.url.starts_with("stuns:") || s.url.starts_with("turn:") ||
        s.url.starts_with("turns:"))) {
    return std::nullopt;
  }
  if (bar != std::string_view::npos) {
    std::string_view rest = text.substr(bar + 1);
    auto bar2 = rest.find('|');
    if (bar2 == std::string_view::npos) return std::nullopt;
    s.username = std::string(rest.substr(0, bar2));
    s.credential = std::string(rest.substr(bar2 + 1));
  }
  return s;
}

std::optional<std::string> inviteLink(std::string_view base, std::string_view room, std::string_view token) {
  if (room.empty() || room.size() > 64) return std::nullopt;
  for (char ch : room) {
    bool ok = (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_' ||
              ch == '.' || ch == '-';
    if (!ok) return std::nullopt;  // "*" (any room) or a name the server would refuse: no link names it
  }
  if (!(base.starts_with("http://") || base.starts_with("https://"))) return std::nullopt;
  while (base.ends_with('/')) base.remove_suffix(1);
  // The token goes in the fragment: browsers never send it to the server, into logs or in a Referer.
  return fmt::format("{}/room/{}#token={}", base, room, token);
}

namespace {

// A CLI11 validator-transform that checks a duration and leaves the text for parseDuration.
CLI::Validator durationCheck() {
  return CLI::Validator(
      [](std::string& s) {
        return parseDuration(s) ? std::string() : "'" + s + "' is not a duration (15s, 500ms, 2m)";
      },
      "DURATION");
}

// The environment variable of flag `--some-name`: KAIWA_SOME_NAME.
std::string envNameOf(std::string_view flag) {
  std::string env = "KAIWA_";
  for (char ch : flag) env.push_back(ch == '-' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(ch))));
  return env;
}

// The config file holds `serve`'s flags at its top level (listen = "..."); CLI11 reads config files for the root
// app, so file keys without a [section] are placed under `serve`. CLI11 lets a file win over the environment; kaiwa's
// order is flags > environment > file, so a key whose KAIWA_* variable is set is left out.
class ServeConfigFile : public CLI::ConfigTOML {
 public:
  std::vector<CLI::ConfigItem> from_config(std::istream& input) const override {
    auto items = CLI::ConfigTOML::from_config(input);
    std::erase_if(items, [](const CLI::ConfigItem& item) { return std::getenv(envNameOf(item.name).c_str()); });
    for (auto& item : items) {
      if (item.parents.empty()) item.parents.emplace_back("serve");
    }
    return items;
  }
};

}  // namespace

namespace {

// The command line of this process, kept for reloadServeConfig.
std::vector<std::string> savedArgs;

// Parses the command line (and the KAIWA_* environment and the config file). Returns -1 with `c` filled for `serve`,
// else the exit code: `token` printed its token, --help/--version printed, or an error (in `error`, unless CLI11
// printed it already; `quiet` prints nothing and puts CLI11's errors in `error` too).
int parseCli(int argc, const char* const* argv, ServeConfig& c, std::string& error, bool quiet) {
  CLI::App app{"kaiwa — signaling, TURN and SFU for WebRTC in one binary", "kaiwa"};
  app.require_subcommand(1);
  app.set_version_flag("--version", KAIWA_VERSION);

  // The flags' defaults are the option structs' (one place each: ServeConfig, signal::Limits, the doors' Options,
  // TurnConfig), written as the text a flag takes.
  const ServeConfig defaults;
  std::string listen = defaults.listenHost + ":" + std::to_string(defaults.listenPort),
              resumeGrace = formatDuration(defaults.limits.resumeGrace), heartbeat = formatDuration(defaults.heartbeat),
              pingTimeout = formatDuration(defaults.pingTimeout),
              shutdownTimeout = formatDuration(defaults.shutdownTimeout),
              wsMessageTimeout = formatDuration(defaults.wsMessageTimeout);
  std::vector<std::string> iceServers;
  std::string authSecret;

  app.config_formatter(std::make_shared<ServeConfigFile>());
  app.set_config("--config", "",
                 "TOML config file for `serve`; its keys are the long flag names (listen = \"0.0.0.0:8080\")")
      ->envname("KAIWA_CONFIG");
  CLI::App* serve = app.add_subcommand("serve", "Run the server (HTTP, WebSocket signaling, web app)");
  serve->fallthrough();  // `kaiwa serve --config FILE` reaches the root's --config
  serve->add_option("--listen", listen, "HTTP(S) address ADDR:PORT; [::]:PORT for IPv6, :PORT for all IPv4")
      ->envname("KAIWA_LISTEN")
      ->capture_default_str();
  serve->add_option("--workers", c.workers, "Worker threads (0: one per core)")
      ->envname("KAIWA_WORKERS")
      ->capture_default_str();
  serve->add_option("--web-root", c.webRoot, "Directory of the built web app (default: the one built with kaiwa)")
      ->envname("KAIWA_WEB_ROOT");
  serve->add_option("--tls-cert", c.tlsCert, "PEM certificate chain: serve HTTPS/WSS")->envname("KAIWA_TLS_CERT");
  serve->add_option("--tls-key", c.tlsKey, "PEM private key for --tls-cert")->envname("KAIWA_TLS_KEY");
  serve
      ->add_flag("--tls-self-signed", c.tlsSelfSigned,
                 "Make a self-signed certificate at start-up (for a phone on the LAN; browsers will warn)")
      ->envname("KAIWA_TLS_SELF_SIGNED");
  serve->add_option("--auth-secret", authSecret, "HMAC secret: joining a room needs a token (see `kaiwa token`)")
      ->envname("KAIWA_AUTH_SECRET");
  serve->add_option("--max-message-bytes", c.limits.maxMessageBytes, "Largest signaling message")
      ->envname("KAIWA_MAX_MESSAGE_BYTES")
      ->capture_default_str()
      ->check(CLI::Range(256, 16 << 20));
  serve->add_option("--rate", c.limits.messagesPerSecond, "Messages per second per connection (0: unlimited)")
      ->envname("KAIWA_RATE")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  serve->add_option("--burst", c.limits.burst, "Messages a connection may send at once above the rate")
      ->envname("KAIWA_BURST")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  serve->add_option("--peers-per-room", c.limits.peersPerRoom, "Members a room may hold")
      ->envname("KAIWA_PEERS_PER_ROOM")
      ->capture_default_str()
      ->check(CLI::Range(1, 100000));
  serve->add_option("--max-rooms", c.limits.maxRooms, "Rooms this server may hold")
      ->envname("KAIWA_MAX_ROOMS")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  // Per client address (common/address_limits.hpp).
  auto& al = c.addressLimits;
  std::vector<std::string> limitExempt;
  serve
      ->add_option("--address-connections", al.connections,
                   "Concurrent connections per client address (an IPv6 client: per /64; 0: no limit)")
      ->envname("KAIWA_ADDRESS_CONNECTIONS")
      ->capture_default_str();
  serve
      ->add_option("--address-connect-rate", al.connectsPerSecond,
                   "New connections per second per client address (0: no limit)")
      ->envname("KAIWA_ADDRESS_CONNECT_RATE")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  serve->add_option("--address-connect-burst", al.connectBurst, "New connections a client address may open at once")
      ->envname("KAIWA_ADDRESS_CONNECT_BURST")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  serve
      ->add_option("--address-handshake-rate", al.handshakesPerSecond,
                   "WebSocket upgrades, Engine.IO handshakes and PeerJS ids per second per client address (0: no "
                   "limit)")
      ->envname("KAIWA_ADDRESS_HANDSHAKE_RATE")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  serve->add_option("--address-handshake-burst", al.handshakeBurst, "Handshakes a client address may make at once")
      ->envname("KAIWA_ADDRESS_HANDSHAKE_BURST")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  serve
      ->add_option("--address-polling-sessions", al.pollingSessions,
                   "Engine.IO polling sessions per client address (0: no limit)")
      ->envname("KAIWA_ADDRESS_POLLING_SESSIONS")
      ->capture_default_str();
  serve
      ->add_option("--max-polling-sessions", al.pollingSessionsTotal,
                   "Engine.IO polling sessions on the whole server (0: no limit)")
      ->envname("KAIWA_MAX_POLLING_SESSIONS")
      ->capture_default_str();
  serve
      ->add_option("--address-room-rate", al.roomsPerMinute,
                   "Rooms a client address may create per minute (0: no limit)")
      ->envname("KAIWA_ADDRESS_ROOM_RATE")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  serve->add_option("--address-room-burst", al.roomBurst, "Rooms a client address may create at once")
      ->envname("KAIWA_ADDRESS_ROOM_BURST")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  serve
      ->add_option("--address-exempt", limitExempt,
                   "Client addresses or CIDRs the per-address limits never apply to, e.g. your reverse proxy "
                   "(repeatable)")
      ->envname("KAIWA_ADDRESS_EXEMPT")
      ->delimiter(',');
  serve
      ->add_option("--max-queued-bytes", c.limits.maxQueuedBytes,
                   "Outgoing bytes queued for one slow connection before it is disconnected")
      ->envname("KAIWA_MAX_QUEUED_BYTES")
      ->capture_default_str()
      ->check(CLI::Range(4096, 1 << 30));
  serve->add_option("--resume-grace", resumeGrace, "How long a dropped peer keeps its place for a resume")
      ->envname("KAIWA_RESUME_GRACE")
      ->capture_default_str()
      ->check(durationCheck());
  serve->add_option("--heartbeat", heartbeat, "Client ping interval advertised in hello")
      ->envname("KAIWA_HEARTBEAT")
      ->capture_default_str()
      ->check(durationCheck());
  serve
      ->add_option("--ping-timeout", pingTimeout,
                   "Close a WebSocket silent this long (a ping is sent after half of it)")
      ->envname("KAIWA_PING_TIMEOUT")
      ->capture_default_str()
      ->check(durationCheck());
  serve
      ->add_option("--ws-message-timeout", wsMessageTimeout,
                   "Close a WebSocket whose message (frame, fragments) is not complete this long after it began "
                   "(0: no limit)")
      ->envname("KAIWA_WS_MESSAGE_TIMEOUT")
      ->capture_default_str()
      ->check(durationCheck());
  serve->add_option("--shutdown-timeout", shutdownTimeout, "On SIGINT/SIGTERM, time given to clients to close")
      ->envname("KAIWA_SHUTDOWN_TIMEOUT")
      ->capture_default_str()
      ->check(durationCheck());
  serve
      ->add_option("--ice-server", iceServers,
                   "An entry of /api/ice-servers: URL or URL|username|credential (repeatable)")
      ->envname("KAIWA_ICE_SERVER")
      ->delimiter(',');
  serve->add_option("--log-level", c.logLevel, "trace, debug, info, warn, error, off")
      ->envname("KAIWA_LOG_LEVEL")
      ->capture_default_str()
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "off"}));

  std::string pjExpire = formatDuration(defaults.peerjs.expireTimeout),
              pjAlive = formatDuration(defaults.peerjs.aliveTimeout);
  serve->add_option("--peerjs-key", c.peerjs.key, "PeerJS: the API key clients must use (docs/peerjs.md)")
      ->envname("KAIWA_PEERJS_KEY")
      ->capture_default_str();
  serve->add_option("--peerjs-path", c.peerjs.path, "PeerJS: where PeerServer's routes are mounted ({path}peerjs)")
      ->envname("KAIWA_PEERJS_PATH")
      ->capture_default_str();
  serve->add_option("--peerjs-expire-timeout", pjExpire, "PeerJS: how long messages for an absent id are held")
      ->envname("KAIWA_PEERJS_EXPIRE_TIMEOUT")
      ->capture_default_str()
      ->check(durationCheck());
  serve->add_option("--peerjs-alive-timeout", pjAlive, "PeerJS: close a client silent (no HEARTBEAT) this long")
      ->envname("KAIWA_PEERJS_ALIVE_TIMEOUT")
      ->capture_default_str()
      ->check(durationCheck());
  serve->add_option("--peerjs-concurrent-limit", c.peerjs.concurrentLimit, "PeerJS: clients connected at once")
      ->envname("KAIWA_PEERJS_CONCURRENT_LIMIT")
      ->capture_default_str()
      ->check(CLI::Range(1, 100'000'000));
  serve->add_flag("--peerjs-discovery", c.peerjs.discovery, "PeerJS: GET /{key}/peers lists connected ids")
      ->envname("KAIWA_PEERJS_DISCOVERY");

  // Socket.IO (docs/socketio.md).
  std::string sioPingInterval = formatDuration(defaults.socketio.pingInterval),
              sioPingTimeout = formatDuration(defaults.socketio.pingTimeout),
              sioUpgradeTimeout = formatDuration(defaults.socketio.upgradeTimeout),
              sioConnectTimeout = formatDuration(defaults.socketio.connectTimeout);
  bool noSocketio = false;
  serve->add_flag("--no-socketio", noSocketio, "Do not serve the Socket.IO front door")->envname("KAIWA_NO_SOCKETIO");
  serve->add_option("--socketio-path", c.socketio.path, "Socket.IO: Engine.IO's mount point")
      ->envname("KAIWA_SOCKETIO_PATH")
      ->capture_default_str();
  serve->add_option("--socketio-ping-interval", sioPingInterval, "Socket.IO: the server pings this often")
      ->envname("KAIWA_SOCKETIO_PING_INTERVAL")
      ->capture_default_str()
      ->check(durationCheck());
  serve->add_option("--socketio-ping-timeout", sioPingTimeout, "Socket.IO: close a session whose pong is this late")
      ->envname("KAIWA_SOCKETIO_PING_TIMEOUT")
      ->capture_default_str()
      ->check(durationCheck());
  serve
      ->add_option("--socketio-upgrade-timeout", sioUpgradeTimeout,
                   "Socket.IO: time a WebSocket probe has to finish the upgrade")
      ->envname("KAIWA_SOCKETIO_UPGRADE_TIMEOUT")
      ->capture_default_str()
      ->check(durationCheck());
  serve
      ->add_option("--socketio-connect-timeout", sioConnectTimeout,
                   "Socket.IO: close an Engine.IO session whose client connects no socket (CONNECT) within this")
      ->envname("KAIWA_SOCKETIO_CONNECT_TIMEOUT")
      ->capture_default_str()
      ->check(durationCheck());
  serve
      ->add_option("--socketio-max-payload", c.socketio.maxPayload,
                   "Socket.IO: largest Engine.IO packet or polling body (bytes); more closes the session")
      ->envname("KAIWA_SOCKETIO_MAX_PAYLOAD")
      ->capture_default_str()
      ->check(CLI::Range(1024, 64 << 20));
  serve
      ->add_option("--socketio-default-room", c.socketio.defaultRoom,
                   "Socket.IO: the room of sockets that joined none (unless the handshake names one: ?room=)")
      ->envname("KAIWA_SOCKETIO_DEFAULT_ROOM")
      ->capture_default_str();
  serve
      ->add_flag("--socketio-relay-unknown", c.socketio.relayUnknownEvents,
                 "Socket.IO: relay events kaiwa does not know to the sender's rooms (else an error ack)")
      ->envname("KAIWA_SOCKETIO_RELAY_UNKNOWN");
  serve
      ->add_option("--socketio-max-forwarded", c.socketio.maxForwarded,
                   "Socket.IO in a cluster: HTTP requests this node forwards to other nodes and that are not yet "
                   "answered (long polls); past it 503")
      ->envname("KAIWA_SOCKETIO_MAX_FORWARDED")
      ->capture_default_str()
      ->check(CLI::Range(1, 1'000'000));

  // TURN/STUN (docs/turn.md).
  std::string turnPorts = std::to_string(defaults.turn.minPort) + "-" + std::to_string(defaults.turn.maxPort),
              turnTtl = formatDuration(defaults.turn.credentialTtl),
              turnTlsHandshake = formatDuration(defaults.turn.tlsHandshakeTimeout),
              turnTcpAllocate = formatDuration(defaults.turn.tcpAllocateTimeout),
              turnTcpFrame = formatDuration(defaults.turn.tcpFrameTimeout),
              turnTcpIdle = formatDuration(defaults.turn.tcpIdleTimeout);
  bool noTurn = false;
  bool noSfu = false;
  bool noSfuTcp = false;
  serve->add_flag("--no-sfu", noSfu, "Do not run the SFU (media port, WHIP/WHEP)")->envname("KAIWA_NO_SFU");
  serve
      ->add_option("--sfu-listen", c.sfu.listen,
                   "SFU media port, ADDR:PORT for UDP and ICE-TCP (default: the --listen host, port 7881)")
      ->envname("KAIWA_SFU_LISTEN");
  serve->add_flag("--no-sfu-tcp", noSfuTcp, "No ICE-TCP on the SFU's media port (UDP only)")
      ->envname("KAIWA_NO_SFU_TCP");
  serve->add_option("--sfu-announce-ip", c.sfu.announceIps, "Address put in the SFU's candidates (repeatable)")
      ->envname("KAIWA_SFU_ANNOUNCE_IP");
  serve
      ->add_option("--media-mode", c.sfu.mediaMode,
                   "Media of a native room whose first join names none: auto (mesh up to 2 members, SFU from 3), sfu, "
                   "mesh")
      ->check(CLI::IsMember({"auto", "sfu", "mesh"}))
      ->envname("KAIWA_MEDIA_MODE");
  serve->add_option("--redis", c.cluster.redis, "Run as a node of a cluster on this Redis: redis://HOST:PORT")
      ->envname("KAIWA_REDIS");
  serve->add_option("--node-id", c.cluster.nodeId, "This node's name in the cluster (default: host name and port)")
      ->envname("KAIWA_NODE_ID");
  serve->add_option("--advertise", c.cluster.advertise, "URL other nodes and redirects reach this node at")
      ->envname("KAIWA_ADVERTISE");
  serve->add_option("--sfu-max-publishers", c.sfu.maxPublishers, "Publishers in one SFU room")
      ->check(CLI::Range(size_t(1), size_t(1000)))
      ->envname("KAIWA_SFU_MAX_PUBLISHERS");
  serve->add_option("--sfu-max-tracks", c.sfu.maxTracks, "Tracks of one publisher in an SFU room")
      ->check(CLI::Range(size_t(1), size_t(16)))
      ->envname("KAIWA_SFU_MAX_TRACKS");
  serve
      ->add_option("--record-dir", c.sfu.recordDir,
                   "Directory for SFU rooms' recordings (record-start); without it recording is refused")
      ->envname("KAIWA_RECORD_DIR")
      ->check(CLI::ExistingDirectory);
  serve->add_option("--record-max-tracks", c.sfu.recordMaxTracks, "Tracks recorded at once on the server")
      ->check(CLI::Range(size_t(1), size_t(10000)))
      ->envname("KAIWA_RECORD_MAX_TRACKS")
      ->capture_default_str();
  serve->add_option("--record-max-room-tracks", c.sfu.recordMaxRoomTracks, "Tracks recorded at once in one room")
      ->check(CLI::Range(size_t(1), size_t(1000)))
      ->envname("KAIWA_RECORD_MAX_ROOM_TRACKS")
      ->capture_default_str();
  serve
      ->add_option("--record-min-free-mb", c.sfu.recordMinFreeMb,
                   "Free space (MiB) kept on the recording disk: under it recordings stop and none start")
      ->envname("KAIWA_RECORD_MIN_FREE_MB")
      ->capture_default_str();
  serve->add_flag("--no-turn", noTurn, "Do not run the TURN/STUN service")->envname("KAIWA_NO_TURN");
  serve->add_option("--only", c.only, "Run one part alone: turn")
      ->envname("KAIWA_ONLY")
      ->check(CLI::IsMember({"turn"}));
  serve
      ->add_option("--turn-listen", c.turn.listen,
                   "TURN/STUN UDP+TCP address ADDR:PORT (default: the --listen host, port 3478)")
      ->envname("KAIWA_TURN_LISTEN");
  serve
      ->add_option("--turn-tls-listen", c.turn.tlsListen,
                   "TURN over TLS address ADDR:PORT (certificate: --tls-cert/--tls-key, else self-signed)")
      ->envname("KAIWA_TURN_TLS_LISTEN");
  serve->add_option("--turn-realm", c.turn.realm, "TURN realm")->envname("KAIWA_TURN_REALM")->capture_default_str();
  serve->add_option("--turn-user", c.turn.users, "TURN long-term user NAME:PASSWORD (repeatable)")
      ->envname("KAIWA_TURN_USER")
      ->delimiter(',');
  serve
      ->add_option("--turn-secret", c.turn.secrets,
                   "TURN REST secret (repeatable, for rotation; default: a random one per process)")
      ->envname("KAIWA_TURN_SECRET")
      ->delimiter(',');
  serve->add_option("--turn-allow-peer", c.turn.allowPeers, "Peer CIDR TURN may relay to although special")
      ->envname("KAIWA_TURN_ALLOW_PEER")
      ->delimiter(',');
  serve->add_option("--turn-deny-peer", c.turn.denyPeers, "Peer CIDR TURN never relays to")
      ->envname("KAIWA_TURN_DENY_PEER")
      ->delimiter(',');
  serve->add_option("--turn-ports", turnPorts, "Relay port range LO-HI")
      ->envname("KAIWA_TURN_PORTS")
      ->capture_default_str();
  serve->add_option("--turn-relay-ip", c.turn.relayIps, "Address relay sockets bind to (one per family)")
      ->envname("KAIWA_TURN_RELAY_IP")
      ->delimiter(',');
  serve->add_option("--turn-external-ip", c.turn.externalIp, "Public address advertised for relays (behind NAT)")
      ->envname("KAIWA_TURN_EXTERNAL_IP");
  serve->add_option("--turn-credential-ttl", turnTtl, "Validity of the TURN credentials /api/ice-servers hands out")
      ->envname("KAIWA_TURN_CREDENTIAL_TTL")
      ->capture_default_str()
      ->check(durationCheck());
  serve->add_option("--turn-max-allocations", c.turn.maxAllocations, "TURN allocations in total")
      ->envname("KAIWA_TURN_MAX_ALLOCATIONS")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  serve
      ->add_option("--turn-user-quota", c.turn.maxAllocationsPerUser,
                   "TURN allocations per user (each /api/ice-servers answer is a user of its own)")
      ->envname("KAIWA_TURN_USER_QUOTA")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  serve
      ->add_option("--turn-address-quota", c.turn.maxAllocationsPerAddress,
                   "TURN allocations per client IP address, IPv6 per /64 (0: unlimited)")
      ->envname("KAIWA_TURN_ADDRESS_QUOTA")
      ->capture_default_str();
  serve
      ->add_option("--turn-tls-handshake-timeout", turnTlsHandshake,
                   "Close a TURN TLS connection whose handshake is not done within this (0: never)")
      ->envname("KAIWA_TURN_TLS_HANDSHAKE_TIMEOUT")
      ->capture_default_str()
      ->check(durationCheck());
  serve
      ->add_option("--turn-tcp-allocate-timeout", turnTcpAllocate,
                   "Close a TURN TCP/TLS connection without an allocation this long after it opened (0: never)")
      ->envname("KAIWA_TURN_TCP_ALLOCATE_TIMEOUT")
      ->capture_default_str()
      ->check(durationCheck());
  serve
      ->add_option("--turn-tcp-frame-timeout", turnTcpFrame,
                   "Close a TURN TCP/TLS connection holding part of a message this long (0: never)")
      ->envname("KAIWA_TURN_TCP_FRAME_TIMEOUT")
      ->capture_default_str()
      ->check(durationCheck());
  serve
      ->add_option("--turn-tcp-idle-timeout", turnTcpIdle,
                   "Close a TURN TCP/TLS connection whose allocation is gone after this long without a message "
                   "(0: never)")
      ->envname("KAIWA_TURN_TCP_IDLE_TIMEOUT")
      ->capture_default_str()
      ->check(durationCheck());
  serve->add_option("--turn-bandwidth", c.turn.bytesPerSecond, "Bytes per second per allocation (0: unlimited)")
      ->envname("KAIWA_TURN_BANDWIDTH")
      ->capture_default_str();
  serve
      ->add_option("--turn-unauthenticated-rate", c.turn.unauthenticatedRate,
                   "Unauthenticated STUN/TURN requests answered per second per client IP (0: unlimited)")
      ->envname("KAIWA_TURN_UNAUTHENTICATED_RATE")
      ->capture_default_str();

  std::string tokRoom, tokUser, tokTtl = "1h", tokSecret;
  CLI::App* token = app.add_subcommand("token", "Print a room access token (JWT HS256) for --auth-secret servers");
  token->add_option("--room", tokRoom, "Room name, or * for any room")->required();
  token->add_option("--user", tokUser, "User name (the `sub` claim; the default display name)")->required();
  token->add_option("--ttl", tokTtl, "Validity")->capture_default_str()->check(durationCheck());
  std::string tokUrl;
  token->add_option("--url", tokUrl, "Print the web app's invite link BASE/room/<room>#token=<token> instead");
  bool tokRecord = false;
  token->add_flag("--record", tokRecord, "Let the holder start and stop the room's recording (the `record` claim)");
  token->add_option("--secret", tokSecret, "The server's --auth-secret")->envname("KAIWA_AUTH_SECRET")->required();

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (quiet) {
      error = e.what();
      return e.get_exit_code() ? e.get_exit_code() : 2;
    }
    return app.exit(e);
  }
  auto fail = [&](std::string why) {
    error = std::move(why);
    return 2;
  };

  if (*token) {
    int64_t now = wallMillis() / 1000;
    auth::RoomClaims claims{tokRoom, tokUser, now + parseDuration(tokTtl)->count() / 1000, now, tokRecord};
    std::string jwt = auth::signRoomToken(claims, tokSecret);
    if (!tokUrl.empty()) {
      auto link = inviteLink(tokUrl, tokRoom, jwt);
      if (!link) {
        std::cerr << "kaiwa: --url needs an http(s):// base and a --room that names one room (not *)\n";
        return 2;
      }
      std::cout << *link << "\n";
      return 0;
    }
    std::cout << jwt << "\n";
    return 0;
  }

  auto hostPort = parseListen(listen);
  if (!hostPort) return fail("--listen '" + listen + "' is not ADDR:PORT");
  c.listenHost = hostPort->first;
  c.listenPort = hostPort->second;
  c.limits.resumeGrace = *parseDuration(resumeGrace);
  c.heartbeat = *parseDuration(heartbeat);
  c.pingTimeout = *parseDuration(pingTimeout);
  c.wsMessageTimeout = *parseDuration(wsMessageTimeout);
  c.shutdownTimeout = *parseDuration(shutdownTimeout);
  c.peerjs.expireTimeout = *parseDuration(pjExpire);
  c.peerjs.aliveTimeout = *parseDuration(pjAlive);
  c.socketio.enabled = !noSocketio;
  c.socketio.pingInterval = *parseDuration(sioPingInterval);
  c.socketio.pingTimeout = *parseDuration(sioPingTimeout);
  c.socketio.upgradeTimeout = *parseDuration(sioUpgradeTimeout);
  c.socketio.connectTimeout = *parseDuration(sioConnectTimeout);
  if (!signal::validRoomName(c.socketio.defaultRoom))
    return fail("--socketio-default-room '" + c.socketio.defaultRoom + "' is not a valid room name");
  if (!authSecret.empty()) c.authSecret = authSecret;
  for (const auto& text : limitExempt) {
    auto cidr = common::parseCidr(text);
    if (!cidr) return fail("--address-exempt '" + text + "' is not an address or CIDR");
    c.addressLimits.exempt.push_back(*cidr);
  }
  if (c.tlsCert.empty() != c.tlsKey.empty()) return fail("--tls-cert and --tls-key go together");
  c.turn.enabled = !noTurn;
  c.sfu.enabled = !noSfu;
  c.sfu.tcp = !noSfuTcp;
  if (!c.sfu.listen.empty() && !parseListen(c.sfu.listen))
    return fail("--sfu-listen '" + c.sfu.listen + "' is not ADDR:PORT");
  c.turn.credentialTtl = *parseDuration(turnTtl);
  c.turn.tlsHandshakeTimeout = *parseDuration(turnTlsHandshake);
  c.turn.tcpAllocateTimeout = *parseDuration(turnTcpAllocate);
  c.turn.tcpFrameTimeout = *parseDuration(turnTcpFrame);
  c.turn.tcpIdleTimeout = *parseDuration(turnTcpIdle);
  {
    unsigned lo = 0, hi = 0;
    char dash = 0;
    if (std::sscanf(turnPorts.c_str(), "%u%c%u", &lo, &dash, &hi) != 3 || dash != '-' || lo < 1 || hi > 65535 ||
        lo > hi) {
      return fail("--turn-ports '" + turnPorts + "' is not LO-HI");
    }
    c.turn.minPort = static_cast<uint16_t>(lo);
    c.turn.maxPort = static_cast<uint16_t>(hi);
  }
  for (const auto& u : c.turn.users) {
    if (u.find(':') == std::string::npos || u.front() == ':')
      return fail("--turn-user '" + u + "' is not NAME:PASSWORD");
  }
  if (!c.turn.listen.empty() && !parseListen(c.turn.listen))
    return fail("--turn-listen '" + c.turn.listen + "' is not ADDR:PORT");
  if (!c.turn.tlsListen.empty() && !parseListen(c.turn.tlsListen))
    return fail("--turn-tls-listen '" + c.turn.tlsListen + "' is not ADDR:PORT");
  if (c.only == "turn" && !c.turn.enabled) return fail("--only turn and --no-turn contradict each other");
  for (const auto& s : iceServers) {
    auto parsed = parseIceServer(s);
    if (!parsed) return fail("--ice-server '" + s + "' is not a stun:/turn: URL (optionally |username|credential)");
    c.iceServers.push_back(*parsed);
  }
  if (auto* file = app.get_config_ptr(); file && file->count() > 0) c.configFile = file->as<std::string>();
  return -1;
}

}  // namespace

int runCli(int argc, char** argv) {
  savedArgs.assign(argv, argv + argc);
  ServeConfig c;
  std::string error;
  int code = parseCli(argc, argv, c, error, false);
  if (code >= 0) {
    if (!error.empty()) std::cerr << "kaiwa: " << error << "\n";
    return code;
  }
  return runServer(c);
}

std::optional<ServeConfig> reloadServeConfig(std::string& error) { return parseServeConfig(savedArgs, error); }

std::optional<ServeConfig> parseServeConfig(const std::vector<std::string>& args, std::string& error) {
  std::vector<const char*> argv;
  for (const auto& a : args) argv.push_back(a.c_str());
  ServeConfig c;
  int code = parseCli(static_cast<int>(argv.size()), argv.data(), c, error, true);
  if (code >= 0) {
    if (error.empty()) error = "the command line does not parse any more (exit code " + std::to_string(code) + ")";
    return std::nullopt;
  }
  return c;
}

}  // namespace kaiwa::app

#pragma once
// `kaiwa serve` configuration: built-in defaults < TOML config file < KAIWA_* environment < command-line flags.
#include <optional>
#include <string>
#include <vector>
#include "sfu/room.hpp"

#include "common/address_limits.hpp"
#include "common/clock.hpp"
#include "http/options.hpp"
#include "signal/limits.hpp"
#include "signal/peerjs/options.hpp"
#include "signal/socketio/options.hpp"
#include "turn/service.hpp"

namespace kaiwa::app {

struct IceServer {
  std::string url;
  std::string username;
  std::string credential;
};

// TURN/STUN (docs/turn.md). Strings are validated by runCli and converted in app/server.cpp. The defaults are the
// TURN service's own (turn::TurnServiceOptions, TurnLimits, TcpTimeouts).
struct TurnConfig {
  bool enabled = true;
  std::string listen;     // ADDR:PORT for UDP and TCP; empty: the HTTP listen host, port 3478 (a busy port: warn)
  std::string tlsListen;  // TURN over TLS ADDR:PORT; empty: none
  std::string realm = turn::TurnServiceOptions{}.realm;
  std::vector<std::string> users;                  // NAME:PASSWORD
  std::vector<std::string> secrets;                // REST secrets; none: a random one per process, for /api/ice-servers
  std::vector<std::string> allowPeers, denyPeers;  // CIDRs
  uint16_t minPort = turn::TurnServiceOptions{}.minPort, maxPort = turn::TurnServiceOptions{}.maxPort;
  std::vector<std::string> relayIps;
  std::string externalIp;
  Millis credentialTtl{3'600'000};  // REST credentials handed out by /api/ice-servers
  uint32_t maxAllocations = turn::TurnLimits{}.maxAllocations;
  uint32_t maxAllocationsPerUser = turn::TurnLimits{}.maxAllocationsPerUser;  // each /api/ice-servers answer is a user
  uint32_t maxAllocationsPerAddress = turn::TurnLimits{}.maxAllocationsPerAddress;  // IPv6: /64; 0: unlimited
  uint64_t bytesPerSecond = turn::TurnLimits{}.bytesPerSecond;                      // per allocation; 0: unlimited
  uint32_t unauthenticatedRate = turn::TurnLimits{}.unauthenticatedPerSecond;       // per client IP
  // TCP/TLS client connections (docs/turn.md, "Timeouts"); 0: none.
  Millis tlsHandshakeTimeout = turn::TcpTimeouts{}.tlsHandshake;  // the TLS handshake is done within this
  Millis tcpAllocateTimeout = turn::TcpTimeouts{}.allocate;       // a connection has made an allocation within this
  Millis tcpFrameTimeout = turn::TcpTimeouts{}.frame;             // a message begun is complete within this
  Millis tcpIdleTimeout = turn::TcpTimeouts{}.idle;               // a connection whose allocation is gone, silent
};

// The SFU's media port and WHIP/WHEP (docs/sfu.md). Limits: media::Limits.
struct SfuConfig {
  bool enabled = true;
  std::string listen;                    // ADDR:PORT (UDP, and TCP for ICE-TCP); empty: the HTTP listen host, port 7881
  bool tcp = true;                       // passive ICE-TCP on the media port's number (--no-sfu-tcp: off)
  std::vector<std::string> announceIps;  // put in candidates; none: the listen address
  std::string mediaMode = "auto";        // the policy of a native room whose creating join names none
  size_t maxPublishers = sfu::RoomLimits{}.publishersPerRoom;  // per native SFU room
  size_t maxTracks = sfu::RoomLimits{}.tracksPerPublisher;     // per publisher
  // Recording (docs/sfu.md, "Recording"): off without a directory. Limits: media::RecordLimits.
  std::string recordDir;
  size_t recordMaxTracks = 32;     // tracks recorded at once on the server
  size_t recordMaxRoomTracks = 8;  // in one room
  uint64_t recordMinFreeMb = 256;  // free space kept on the recording disk
};

// Several nodes on Redis (docs/cluster.md). No redis: one node, as ever.
struct ClusterConfig {
  std::string redis;      // redis://HOST:PORT
  std::string nodeId;     // empty: HOST:PORT of this node (the host name and the HTTP port)
  std::string advertise;  // how other nodes and redirects reach this node; empty: http(s)://LISTEN-HOST:PORT
};

struct ServeConfig {
  std::string listenHost = http::ServerOptions{}.host;
  uint16_t listenPort = http::ServerOptions{}.port;
  unsigned workers = 0;  // 0: one per core
  std::string webRoot;   // empty: the web app built next to the binary
  std::string tlsCert, tlsKey;
  bool tlsSelfSigned = false;
  std::optional<std::string> authSecret;
  SfuConfig sfu;
  signal::Limits limits;
  common::AddressLimitOptions addressLimits;  // per client address (docs/configuration.md, "Limits per address")
  Millis heartbeat = signal::kHeartbeat;
  Millis pingTimeout = http::ServerOptions{}.pingTimeout;
  Millis wsMessageTimeout =
      http::ServerOptions{}.messageTimeout;  // a WebSocket message must be complete within; 0: none
  Millis shutdownTimeout{5000};
  std::vector<IceServer> iceServers;
  std::string logLevel = "info";
  TurnConfig turn;
  std::string only;                    // "": everything; "turn": the TURN/STUN service alone
  signal::peerjs::Options peerjs;      // the PeerJS front door (docs/peerjs.md)
  signal::socketio::Options socketio;  // the Socket.IO front door (docs/socketio.md)
  std::string configFile;              // the --config file read, if any
  ClusterConfig cluster;
};

// "15s", "500ms", "2m", "1h"; a bare number is seconds. nullopt for anything else or a negative value.
std::optional<Millis> parseDuration(std::string_view text);
// The text parseDuration reads back as `d`: whole hours, else seconds, else milliseconds ("1h", "90s", "250ms").
std::string formatDuration(Millis d);
// "HOST:PORT", "[V6]:PORT" or ":PORT" (all interfaces). nullopt when malformed.
std::optional<std::pair<std::string, uint16_t>> parseListen(std::string_view text);
// "URL" or "URL|username|credential".
std::optional<IceServer> parseIceServer(std::string_view text);
// The web app's invite link for a room token: "BASE/room/ROOM#token=TOKEN" (trailing slashes of BASE dropped).
// nullopt when BASE is not http(s):// or ROOM is not one room name (e.g. "*").
std::optional<std::string> inviteLink(std::string_view base, std::string_view room, std::string_view token);

// The kaiwa command line: `serve`, `token`, `version`. Returns the process exit code.
int runCli(int argc, char** argv);
// Runs the server until SIGINT/SIGTERM (app/server.cpp).
int runServer(const ServeConfig& config);
// The configuration as it reads now (SIGHUP): the command line runCli was given, parsed again over the current
// KAIWA_* environment and the config file as it is now. nullopt, with `error`, if it no longer parses.
std::optional<ServeConfig> reloadServeConfig(std::string& error);
// `args` (argv[0] first) parsed as reloadServeConfig parses the saved command line.
std::optional<ServeConfig> parseServeConfig(const std::vector<std::string>& args, std::string& error);

}  // namespace kaiwa::app

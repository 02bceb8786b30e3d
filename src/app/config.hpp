#pragma once
// `kaiwa serve` configuration: built-in defaults < TOML config file < KAIWA_* environment < command-line flags.
#include <optional>
#include <string>
#include <vector>

#include "common/address_limits.hpp"
#include "common/clock.hpp"
#include "signal/limits.hpp"
#include "signal/peerjs/options.hpp"
#include "signal/socketio/options.hpp"

namespace kaiwa::app {

struct IceServer {
  std::string url;
  std::string username;
  std::string credential;
};

// TURN/STUN (docs/turn.md). Strings are validated by runCli and converted in app/server.cpp.
struct TurnConfig {
  bool enabled = true;
  std::string listen;     // ADDR:PORT for UDP and TCP; empty: the HTTP listen host, port 3478 (a busy port: warn)
  std::string tlsListen;  // TURN over TLS ADDR:PORT; empty: none
  std::string realm = "kaiwa";
  std::vector<std::string> users;                  // NAME:PASSWORD
  std::vector<std::string> secrets;                // REST secrets; none: a random one per process, for /api/ice-servers
  std::vector<std::string> allowPeers, denyPeers;  // CIDRs
  uint16_t minPort = 49152, maxPort = 65535;
  std::vector<std::string> relayIps;
  std::string externalIp;
  Millis credentialTtl{3'600'000};  // REST credentials handed out by /api/ice-servers
  uint32_t maxAllocations = 10000;
  uint32_t maxAllocationsPerUser = 32;      // per user: each /api/ice-servers answer is a user of its own
  uint32_t maxAllocationsPerAddress = 512;  // per client IP (IPv6: /64); 0: unlimited
  uint64_t bytesPerSecond = 0;              // per allocation; 0: unlimited
  uint32_t unauthenticatedRate = 100;       // unauthenticated requests answered per second per client IP
  // TCP/TLS client connections (docs/turn.md, "Timeouts"); 0: none.
  Millis tlsHandshakeTimeout{10'000};  // the TLS handshake must be done within this of the connection
  Millis tcpAllocateTimeout{30'000};   // a connection must have made an allocation within this
  Millis tcpFrameTimeout{10'000};      // a message begun must be complete within this
  Millis tcpIdleTimeout{30'000};       // a connection whose allocation is gone, silent this long
};

struct ServeConfig {
  std::string listenHost = "127.0.0.1";
  uint16_t listenPort = 8080;
  unsigned workers = 0;  // 0: one per core
  std::string webRoot;   // empty: the web app built next to the binary
  std::string tlsCert, tlsKey;
  bool tlsSelfSigned = false;
  std::optional<std::string> authSecret;
  signal::Limits limits;
  common::AddressLimitOptions addressLimits;  // per client address (docs/configuration.md, "Limits per address")
  Millis heartbeat{10000};
  Millis pingTimeout{30000};
  Millis wsMessageTimeout{10000};  // a WebSocket message begun must be complete within this; 0: no limit
  Millis shutdownTimeout{5000};
  std::vector<IceServer> iceServers;
  std::string logLevel = "info";
  TurnConfig turn;
  std::string only;                    // "": everything; "turn": the TURN/STUN service alone
  signal::peerjs::Options peerjs;      // the PeerJS front door (docs/peerjs.md)
  signal::socketio::Options socketio;  // the Socket.IO front door (docs/socketio.md)
  std::string configFile;              // the --config file read, if any
};

// "15s", "500ms", "2m", "1h"; a bare number is seconds. nullopt for anything else or a negative value.
std::optional<Millis> parseDuration(std::string_view text);
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

}  // namespace kaiwa::app

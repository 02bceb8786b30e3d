#pragma once
// The body of GET /api/ice-servers: kaiwa's own STUN/TURN URLs with fresh TURN REST credentials, or the configured
// --ice-server entries instead.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "app/config.hpp"

namespace kaiwa::app {

// kaiwa's own TURN/STUN service as /api/ice-servers advertises it (set once the service runs).
struct TurnIce {
  std::string host;     // empty: the request's Host
  uint16_t port = 0;    // UDP and TCP
  std::string tlsHost;  // for turns: (the name the TLS certificate is for); empty: the request's Host
  uint16_t tlsPort = 0; // TURN over TLS; 0: none, no turns: URL
  std::string secret;   // REST secret the credentials are made with
  Millis ttl{3'600'000};
};

// JSON {"iceServers": [...], "ttl": seconds}. `turn` absent (TURN off) or `configured` not empty: the configured
// entries only. The REST username is "EXPIRY:kaiwa" with EXPIRY = nowUnix + ttl.
std::string iceServersJson(const std::optional<TurnIce>& turn, const std::vector<IceServer>& configured,
                           std::string_view requestHost, int64_t nowUnix);

}  // namespace kaiwa::app

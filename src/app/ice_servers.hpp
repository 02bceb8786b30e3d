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
  std::string host;      // empty: the request's Host
  uint16_t port = 0;     // UDP and TCP
  std::string tlsHost;   // for turns: (the name the TLS certificate is for); empty: the request's Host
  uint16_t tlsPort = 0;  // TURN over TLS; 0: none, no turns: URL
  std::string secret;    // REST secret the credentials are made with
  Millis ttl{3'600'000};
};

// JSON {"iceServers": [...], "ttl": seconds}. `turn` absent (TURN off) or `configured` not empty: the configured
// entries only. The REST username is "EXPIRY:ID" with EXPIRY = nowUnix + ttl and ID 16 random characters
// [A-Za-z0-9], new for every answer: TURN's per-user quota then applies per answer (per browser), not to every web
// user at once.
std::string iceServersJson(const std::optional<TurnIce>& turn, const std::vector<IceServer>& configured,
                           std::string_view requestHost, int64_t nowUnix);

// With --auth-secret (`secret`), /api/ice-servers answers only a request with a valid room token (auth/jwt.hpp), in
// `Authorization: Bearer TOKEN` or else `?token=TOKEN`, for room `room` (`?room=`) or for any room (a token for "*";
// without `?room=` only such a token is accepted). nullopt: allowed; else why not (for the 401's message).
std::optional<std::string> iceServersRefusal(std::string_view authorization, const std::optional<std::string>& token,
                                             const std::optional<std::string>& room, std::string_view secret,
                                             int64_t nowUnix);

}  // namespace kaiwa::app

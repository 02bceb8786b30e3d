#include "app/ice_servers.hpp"

#include <boost/json.hpp>

#include <cctype>

#include "auth/jwt.hpp"
#include "common/random.hpp"
#include "turn/credentials.hpp"

namespace kaiwa::app {

namespace {
// The Host header without its port: the name the browser already reaches this server by.
std::string hostOf(std::string_view requestHost) {
  std::string_view h = requestHost;
  if (!h.empty() && h.front() == '[') {
    h = h.substr(0, h.find(']') + 1);
  } else if (auto colon = h.rfind(':'); colon != std::string_view::npos) {
    h = h.substr(0, colon);
  }
  return h.empty() ? "127.0.0.1" : std::string(h);
}
}  // namespace

std::string iceServersJson(const std::optional<TurnIce>& turn, const std::vector<IceServer>& configured,
                           std::string_view requestHost, int64_t nowUnix) {
  boost::json::array list;
  int64_t ttlSeconds = turn ? turn->ttl.count() / 1000 : 3600;
  // kaiwa's own STUN/TURN, unless --ice-server entries replace them.
  if (turn && configured.empty()) {
    std::string hp = (turn->host.empty() ? hostOf(requestHost) : turn->host) + ":" + std::to_string(turn->port);
    std::string user = std::to_string(nowUnix + ttlSeconds) + ":" + common::randomToken(16);
    std::string password = turn::Credentials::restPassword(turn->secret, user);
    list.push_back(boost::json::object{{"urls", boost::json::array{boost::json::value("stun:" + hp)}}});
    boost::json::array urls{boost::json::value("turn:" + hp + "?transport=udp"),
                            boost::json::value("turn:" + hp + "?transport=tcp")};
    if (turn->tlsPort) {
      std::string host = turn->tlsHost.empty() ? hostOf(requestHost) : turn->tlsHost;
      urls.emplace_back("turns:" + host + ":" + std::to_string(turn->tlsPort) + "?transport=tcp");
    }
    list.push_back(boost::json::object{{"urls", std::move(urls)}, {"username", user}, {"credential", password}});
  }
  for (const auto& s : configured) {
    boost::json::object o{{"urls", boost::json::array{boost::json::value(s.url)}}};
    if (!s.username.empty()) {
      o["username"] = s.username;
      o["credential"] = s.credential;
    }
    list.push_back(std::move(o));
  }
  return boost::json::serialize(boost::json::object{{"iceServers", std::move(list)}, {"ttl", ttlSeconds}});
}

std::optional<std::string> iceServersRefusal(std::string_view authorization, const std::optional<std::string>& token,
                                             const std::optional<std::string>& room, std::string_view secret,
                                             int64_t nowUnix) {
  std::string_view presented;
  if (!authorization.empty()) {
    // "Bearer" (any case), spaces, the token.
    constexpr std::string_view kScheme = "bearer";
    bool bearer = authorization.size() > kScheme.size() && authorization[kScheme.size()] == ' ';
    for (size_t i = 0; bearer && i < kScheme.size(); ++i)
      bearer = std::tolower(static_cast<unsigned char>(authorization[i])) == kScheme[i];
    if (!bearer) return std::string("the Authorization header is not a Bearer token");
    presented = authorization.substr(kScheme.size());
    while (!presented.empty() && presented.front() == ' ') presented.remove_prefix(1);
    while (!presented.empty() && presented.back() == ' ') presented.remove_suffix(1);
  } else if (token) {
    presented = *token;
  }
  if (presented.empty()) return std::string("a room token is required (Authorization: Bearer TOKEN, or ?token=)");
  auto verified = auth::verifyRoomToken(presented, secret, room.value_or("*"), nowUnix);
  if (!verified.claims) return std::string(auth::toString(verified.error));
  return std::nullopt;
}

}  // namespace kaiwa::app

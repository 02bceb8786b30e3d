// GET /api/ice-servers' body: kaiwa's own STUN/TURN URLs (turns: with a TLS listener), REST credentials that expire
// --turn-credential-ttl from now, and the configured entries instead of them.
#include "app/ice_servers.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <set>

#include <boost/json.hpp>

#include "auth/jwt.hpp"
#include "turn/credentials.hpp"

namespace kaiwa::app {
namespace {

constexpr int64_t kNow = 1'700'000'000;

TurnIce turnIce(uint16_t tlsPort = 0) {
  TurnIce t;
  t.host = "203.0.113.7";
  t.port = 3478;
  t.tlsHost = "turn.example.org";
  t.tlsPort = tlsPort;
  t.secret = "s3cr3t";
  t.ttl = Millis(900'000);  // 15 min
  return t;
}

boost::json::object parse(const std::string& text) { return boost::json::parse(text).as_object(); }

std::vector<std::string> urlsOf(const boost::json::object& server) {
  std::vector<std::string> out;
  for (const auto& u : server.at("urls").as_array()) out.emplace_back(u.as_string());
  return out;
}

TEST(IceServers, TurnCredentialsLiveForTheConfiguredTtl) {
  auto body = parse(iceServersJson(turnIce(), {}, "example.org:8080", kNow));
  EXPECT_EQ(body.at("ttl").as_int64(), 900);
  const auto& list = body.at("iceServers").as_array();
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(urlsOf(list[0].as_object()), std::vector<std::string>{"stun:203.0.113.7:3478"});
  const auto& turn = list[1].as_object();
  EXPECT_EQ(urlsOf(turn),
            (std::vector<std::string>{"turn:203.0.113.7:3478?transport=udp", "turn:203.0.113.7:3478?transport=tcp"}));
  std::string user(turn.at("username").as_string());
  EXPECT_TRUE(user.starts_with(std::to_string(kNow + 900) + ":")) << user;
  EXPECT_EQ(std::string(turn.at("credential").as_string()), turn::Credentials::restPassword("s3cr3t", user));
}

TEST(IceServers, TurnsUrlWithTheSameCredentialsWhenTlsListens) {
  auto body = parse(iceServersJson(turnIce(5349), {}, "example.org:8080", kNow));
  const auto& list = body.at("iceServers").as_array();
  ASSERT_EQ(list.size(), 2u);
  auto urls = urlsOf(list[1].as_object());
  ASSERT_EQ(urls.size(), 3u);
  EXPECT_EQ(urls[2], "turns:turn.example.org:5349?transport=tcp");
  EXPECT_TRUE(
      std::string(list[1].as_object().at("username").as_string()).starts_with(std::to_string(kNow + 900) + ":"));
}

// Each answer is a TURN user of its own ("EXPIRY:ID", ID random), so TURN's per-user quota is per browser: with one
// user part for everyone, one browser could use up the quota of all.
TEST(IceServers, EveryAnswerHasAUserOfItsOwn) {
  std::set<std::string> users;
  for (int i = 0; i < 100; ++i) {
    auto body = parse(iceServersJson(turnIce(), {}, "example.org", kNow));
    std::string user(body.at("iceServers").as_array()[1].as_object().at("username").as_string());
    auto colon = user.find(':');
    ASSERT_NE(colon, std::string::npos) << user;
    EXPECT_EQ(user.substr(0, colon), std::to_string(kNow + 900));
    std::string id = user.substr(colon + 1);
    EXPECT_EQ(id.size(), 16u) << user;
    EXPECT_TRUE(std::all_of(id.begin(), id.end(), [](char c) { return std::isalnum(static_cast<unsigned char>(c)); }));
    users.insert(user);
  }
  EXPECT_EQ(users.size(), 100u);
}

// With --auth-secret, a room token (header or ?token=) for ?room= or for any room ("*").
TEST(IceServers, RoomTokenIsRequiredWithAnAuthSecret) {
  const std::string secret = "auth-s3cret";
  auto token = [&](std::string room, int64_t expires = kNow + 60) {
    return auth::signRoomToken({std::move(room), "alice", expires, kNow}, secret);
  };
  std::optional<std::string> none, demo = "demo";
  EXPECT_TRUE(iceServersRefusal("", none, demo, secret, kNow));  // nothing presented
  EXPECT_FALSE(iceServersRefusal("Bearer " + token("demo"), none, demo, secret, kNow));
  EXPECT_FALSE(iceServersRefusal("bearer   " + token("demo"), none, demo, secret, kNow));
  EXPECT_FALSE(iceServersRefusal("", token("demo"), demo, secret, kNow));  // ?token=
  EXPECT_FALSE(iceServersRefusal("", token("*"), demo, secret, kNow));     // any room
  EXPECT_FALSE(iceServersRefusal("", token("*"), none, secret, kNow));
  EXPECT_TRUE(iceServersRefusal("", token("demo"), none, secret, kNow));            // no ?room=: only a "*" token
  EXPECT_TRUE(iceServersRefusal("", token("other"), demo, secret, kNow));           // another room
  EXPECT_TRUE(iceServersRefusal("", token("demo", kNow - 1), demo, secret, kNow));  // expired
  EXPECT_TRUE(iceServersRefusal("", auth::signRoomToken({"demo", "a", kNow + 60, kNow}, "wrong"), demo, secret, kNow));
  EXPECT_TRUE(iceServersRefusal("Basic YTpi", token("demo"), demo, secret, kNow));  // a header that is not Bearer
  EXPECT_TRUE(iceServersRefusal("Bearer", none, demo, secret, kNow));
  EXPECT_TRUE(iceServersRefusal("Bearer x.y.z", none, demo, secret, kNow));
  EXPECT_EQ(*iceServersRefusal("", token("other"), demo, secret, kNow), "token is for another room");
}

TEST(IceServers, HostsDefaultToTheRequestHost) {
  auto t = turnIce(5349);
  t.host.clear();
  t.tlsHost.clear();
  auto body = parse(iceServersJson(t, {}, "[2001:db8::1]:8443", kNow));
  auto urls = urlsOf(body.at("iceServers").as_array()[1].as_object());
  EXPECT_EQ(urls[0], "turn:[2001:db8::1]:3478?transport=udp");
  EXPECT_EQ(urls[2], "turns:[2001:db8::1]:5349?transport=tcp");
  body = parse(iceServersJson(t, {}, "meet.example.org:443", kNow));
  EXPECT_EQ(urlsOf(body.at("iceServers").as_array()[1].as_object())[2], "turns:meet.example.org:5349?transport=tcp");
}

TEST(IceServers, ConfiguredEntriesReplaceKaiwasOwn) {
  std::vector<IceServer> configured{{"stun:stun.example.org:3478", "", ""},
                                    {"turns:turn.example.org:443", "alice", "pw"}};
  auto body = parse(iceServersJson(turnIce(5349), configured, "example.org", kNow));
  const auto& list = body.at("iceServers").as_array();
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(urlsOf(list[1].as_object())[0], "turns:turn.example.org:443");
  EXPECT_EQ(std::string(list[1].as_object().at("username").as_string()), "alice");
  EXPECT_FALSE(list[0].as_object().contains("username"));
  body = parse(iceServersJson(std::nullopt, configured, "example.org", kNow));  // TURN off
  EXPECT_EQ(body.at("iceServers").as_array().size(), 2u);
  EXPECT_EQ(body.at("ttl").as_int64(), 3600);
}

}  // namespace
}  // namespace kaiwa::app

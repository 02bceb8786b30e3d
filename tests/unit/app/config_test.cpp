#include "app/config.hpp"

#include <gtest/gtest.h>

namespace kaiwa::app {
namespace {

TEST(Config, Durations) {
  EXPECT_EQ(parseDuration("15s"), Millis(15000));
  EXPECT_EQ(parseDuration("15"), Millis(15000));
  EXPECT_EQ(parseDuration("250ms"), Millis(250));
  EXPECT_EQ(parseDuration("1.5s"), Millis(1500));
  EXPECT_EQ(parseDuration("2m"), Millis(120000));
  EXPECT_EQ(parseDuration("1h"), Millis(3600000));
  EXPECT_FALSE(parseDuration(""));
  EXPECT_FALSE(parseDuration("-1s"));
  EXPECT_FALSE(parseDuration("5 parsecs"));
  EXPECT_FALSE(parseDuration("s"));
}

TEST(Config, DurationsAreWrittenAsParseDurationReadsThem) {
  for (Millis d : {Millis(0), Millis(250), Millis(1500), Millis(15000), Millis(5400000), Millis(3600000)})
    EXPECT_EQ(parseDuration(formatDuration(d)), d) << formatDuration(d);
  EXPECT_EQ(formatDuration(Millis(3600000)), "1h");
  EXPECT_EQ(formatDuration(Millis(90000)), "90s");
  EXPECT_EQ(formatDuration(Millis(250)), "250ms");
}

// A bare `kaiwa serve` runs with the option structs' defaults: the flags take their defaults from them, so the two
// cannot drift apart (docs/configuration.md lists the same values).
TEST(Config, ABareServeHasTheOptionStructsDefaults) {
  std::string error;
  auto c = parseServeConfig({"kaiwa", "serve"}, error);
  ASSERT_TRUE(c) << error;
  const ServeConfig d;
  EXPECT_EQ(c->listenHost, d.listenHost);
  EXPECT_EQ(c->listenPort, d.listenPort);
  EXPECT_EQ(c->limits.resumeGrace, signal::Limits{}.resumeGrace);
  EXPECT_EQ(c->heartbeat, signal::kHeartbeat);
  EXPECT_EQ(c->pingTimeout, http::ServerOptions{}.pingTimeout);
  EXPECT_EQ(c->wsMessageTimeout, http::ServerOptions{}.messageTimeout);
  EXPECT_EQ(c->shutdownTimeout, d.shutdownTimeout);
  EXPECT_EQ(c->peerjs.expireTimeout, signal::peerjs::Options{}.expireTimeout);
  EXPECT_EQ(c->peerjs.aliveTimeout, signal::peerjs::Options{}.aliveTimeout);
  EXPECT_EQ(c->socketio.pingInterval, signal::socketio::Options{}.pingInterval);
  EXPECT_EQ(c->socketio.pingTimeout, signal::socketio::Options{}.pingTimeout);
  EXPECT_EQ(c->socketio.upgradeTimeout, signal::socketio::Options{}.upgradeTimeout);
  EXPECT_EQ(c->socketio.connectTimeout, signal::socketio::Options{}.connectTimeout);
  EXPECT_EQ(c->turn.minPort, turn::TurnServiceOptions{}.minPort);
  EXPECT_EQ(c->turn.maxPort, turn::TurnServiceOptions{}.maxPort);
  EXPECT_EQ(c->turn.credentialTtl, d.turn.credentialTtl);
  EXPECT_EQ(c->turn.unauthenticatedRate, turn::TurnLimits{}.unauthenticatedPerSecond);
  EXPECT_EQ(c->turn.maxAllocationsPerAddress, turn::TurnLimits{}.maxAllocationsPerAddress);
  EXPECT_EQ(c->turn.tlsHandshakeTimeout, turn::TcpTimeouts{}.tlsHandshake);
  EXPECT_EQ(c->turn.tcpAllocateTimeout, turn::TcpTimeouts{}.allocate);
  EXPECT_EQ(c->turn.tcpFrameTimeout, turn::TcpTimeouts{}.frame);
  EXPECT_EQ(c->turn.tcpIdleTimeout, turn::TcpTimeouts{}.idle);
}

// Without --redis a node is alone (docs/cluster.md); the three cluster options read from flags and the environment.
TEST(Config, ClusterOptions) {
  std::string error;
  auto alone = parseServeConfig({"kaiwa", "serve"}, error);
  ASSERT_TRUE(alone) << error;
  EXPECT_TRUE(alone->cluster.redis.empty());
  auto c = parseServeConfig({"kaiwa", "serve", "--redis", "redis://10.0.0.5:6380", "--node-id", "n1", "--advertise",
                             "https://n1.example"},
                            error);
  ASSERT_TRUE(c) << error;
  EXPECT_EQ(c->cluster.redis, "redis://10.0.0.5:6380");
  EXPECT_EQ(c->cluster.nodeId, "n1");
  EXPECT_EQ(c->cluster.advertise, "https://n1.example");
}

TEST(Config, ListenAddresses) {
  EXPECT_EQ(parseListen("127.0.0.1:8080"), std::make_pair(std::string("127.0.0.1"), uint16_t{8080}));
  EXPECT_EQ(parseListen(":443"), std::make_pair(std::string("0.0.0.0"), uint16_t{443}));
  EXPECT_EQ(parseListen("[::1]:0"), std::make_pair(std::string("::1"), uint16_t{0}));
  EXPECT_FALSE(parseListen("8080"));
  EXPECT_FALSE(parseListen("host:99999"));
  EXPECT_FALSE(parseListen("host:80x"));
}

TEST(Config, InviteLink) {
  EXPECT_EQ(inviteLink("https://meet.example.com", "demo", "a.b.c"), "https://meet.example.com/room/demo#token=a.b.c");
  EXPECT_EQ(inviteLink("http://127.0.0.1:8080//", "team_1.x-y", "t"), "http://127.0.0.1:8080/room/team_1.x-y#token=t");
  EXPECT_FALSE(inviteLink("https://x", "*", "t"));
  EXPECT_FALSE(inviteLink("https://x", "", "t"));
  EXPECT_FALSE(inviteLink("https://x", "a/b", "t"));
  EXPECT_FALSE(inviteLink("meet.example.com", "demo", "t"));
}

TEST(Config, IceServers) {
  auto s = parseIceServer("stun:stun.example.org:3478");
  ASSERT_TRUE(s);
  EXPECT_EQ(s->url, "stun:stun.example.org:3478");
  EXPECT_TRUE(s->username.empty());
  auto t = parseIceServer("turn:turn.example.org:3478?transport=tcp|alice|pw|with|bars");
  ASSERT_TRUE(t);
  EXPECT_EQ(t->username, "alice");
  EXPECT_EQ(t->credential, "pw|with|bars");
  EXPECT_FALSE(parseIceServer("http://example.org"));
  EXPECT_FALSE(parseIceServer("turn:x|onlyuser"));
}

}  // namespace
}  // namespace kaiwa::app

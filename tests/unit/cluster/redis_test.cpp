// cluster::RedisClient against a real redis-server, started by the fixture on a free loopback port (the tests skip,
// saying so, where the binary is absent): commands, pub/sub on a second connection, failing fast while Redis is
// down, and reconnecting by itself when it comes back. The io_context runs on the test's thread.
#include "cluster/redis.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <functional>
#include <string>
#include <vector>

extern char** environ;

namespace kaiwa::cluster {
namespace {

uint16_t freePort() {
  int s = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(s, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(s);
  return ntohs(a.sin_port);
}

bool connectable(uint16_t port) {
  int s = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  bool ok = ::connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  ::close(s);
  return ok;
}

const char* kRedisServer = "/usr/bin/redis-server";

// A redis-server of its own, without persistence, on `port`.
class RedisServer {
 public:
  explicit RedisServer(uint16_t port) : port_(port) {}
  ~RedisServer() { stop(); }
  bool start() {
    std::string p = std::to_string(port_);
    std::vector<std::string> args{kRedisServer, "--port",       p,    "--bind",     "127.0.0.1", "--save",
                                  "",           "--appendonly", "no", "--loglevel", "warning"};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t quiet;  // its start-up banner and warnings are not the test's output
    posix_spawn_file_actions_init(&quiet);
    posix_spawn_file_actions_addopen(&quiet, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&quiet, 2, "/dev/null", O_WRONLY, 0);
    int spawned = posix_spawn(&pid_, kRedisServer, &quiet, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&quiet);
    if (spawned != 0) return false;
    for (int i = 0; i < 500; ++i) {  // up to 5 s for it to listen
      if (connectable(port_)) return true;
      ::usleep(10'000);
    }
    return false;
  }
  void stop() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = 0;
  }

 private:
  uint16_t port_;
  pid_t pid_ = 0;
};

class RedisClientTest : public ::testing::Test {
 protected:
  RedisClientTest() : loop(context, 0) { net::Loop::setCurrent(&loop); }
  ~RedisClientTest() override { net::Loop::setCurrent(nullptr); }
  void SetUp() override {
    if (::access(kRedisServer, X_OK) != 0) GTEST_SKIP() << "redis-server is not installed (apt install redis-server)";
    port = freePort();
    server = std::make_unique<RedisServer>(port);
    ASSERT_TRUE(server->start()) << "redis-server did not start on port " << port;
  }
  // Runs the loop until `done`, within a bounded number of rounds (about 10 s).
  bool runUntil(const std::function<bool()>& done) {
    for (int i = 0; i < 2000 && !done(); ++i) {
      context.run_for(std::chrono::milliseconds(5));
      context.restart();
    }
    return done();
  }
  RedisClient::Options options() const {
    RedisClient::Options o;
    o.address = RedisAddress{"127.0.0.1", port};
    o.minBackoff = Millis(20);
    o.maxBackoff = Millis(100);
    return o;
  }
  boost::asio::io_context context;
  net::Loop loop;
  uint16_t port = 0;
  std::unique_ptr<RedisServer> server;
};

TEST(RedisAddress, ParsesTheUrlForms) {
  auto a = RedisAddress::parse("redis://10.0.0.2:6380");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->host, "10.0.0.2");
  EXPECT_EQ(a->port, 6380);
  EXPECT_EQ(RedisAddress::parse("redis://localhost")->port, 6379);
  EXPECT_EQ(RedisAddress::parse("redis://[::1]:7000")->host, "::1");
  EXPECT_FALSE(RedisAddress::parse("redis://:6379"));
  EXPECT_FALSE(RedisAddress::parse("redis://host:99999"));
  EXPECT_FALSE(RedisAddress::parse("redis://user@host:1"));
}

TEST_F(RedisClientTest, CommandsGetTheirReplies) {
  RedisClient client(loop, options());
  client.start();
  ASSERT_TRUE(runUntil([&] { return client.up(); }));
  std::vector<Reply> replies;
  client.command({"SET", "k", "v w"}, [&](Reply r) { replies.push_back(std::move(r)); });
  client.command({"GET", "k"}, [&](Reply r) { replies.push_back(std::move(r)); });
  client.command({"GET", "absent"}, [&](Reply r) { replies.push_back(std::move(r)); });
  client.command({"INCR", "k"}, [&](Reply r) { replies.push_back(std::move(r)); });
  client.command({"RPUSH", "l", "a", "b"});
  client.command({"LRANGE", "l", "0", "-1"}, [&](Reply r) { replies.push_back(std::move(r)); });
  ASSERT_TRUE(runUntil([&] { return replies.size() == 5; }));
  EXPECT_EQ(replies[0].type, Reply::Type::kStatus);
  EXPECT_EQ(replies[1].text, "v w");
  EXPECT_EQ(replies[2].type, Reply::Type::kNil);
  EXPECT_EQ(replies[3].type, Reply::Type::kError);
  ASSERT_EQ(replies[4].elements.size(), 2u);
  EXPECT_EQ(replies[4].elements[1].text, "b");
  EXPECT_EQ(client.inFlight(), 0u);
}

TEST_F(RedisClientTest, SubscriberHearsWhatIsPublished) {
  RedisClient commands(loop, options());
  RedisClient subscriber(loop, options());
  std::vector<std::string> heard;
  subscriber.subscribe("ch", [&](std::string_view channel, std::string_view payload) {
    EXPECT_EQ(channel, "ch");
    heard.emplace_back(payload);
  });
  commands.start();
  subscriber.start();
  ASSERT_TRUE(runUntil([&] { return commands.up() && subscriber.up(); }));
  // The subscription is made once the connection is up: publish until someone hears.
  int64_t receivers = 0;
  ASSERT_TRUE(runUntil([&] {
    commands.command({"PUBLISH", "ch", std::string("a\0b", 3)}, [&](Reply r) { receivers = r.integer; });
    context.run_for(std::chrono::milliseconds(5));
    context.restart();
    return receivers == 1;
  }));
  ASSERT_TRUE(runUntil([&] { return !heard.empty(); }));
  EXPECT_EQ(heard.back(), std::string("a\0b", 3));
}

TEST_F(RedisClientTest, FailsFastWhileDownAndReconnectsByItself) {
  RedisClient client(loop, options());
  std::vector<bool> states;
  client.onState([&](bool up) { states.push_back(up); });
  client.start();
  ASSERT_TRUE(runUntil([&] { return client.up(); }));
  server->stop();
  ASSERT_TRUE(runUntil([&] { return !client.up(); }));
  // Down: the command fails at once (on the next round), without waiting for Redis.
  bool failed = false;
  client.command({"PING"}, [&](Reply r) { failed = r.type == Reply::Type::kFailed; });
  EXPECT_FALSE(failed);  // never from inside command()
  context.poll();
  context.restart();
  EXPECT_TRUE(failed);
  EXPECT_EQ(client.inFlight(), 0u);
  // Back: the client finds it again with its back-off.
  ASSERT_TRUE(server->start());
  ASSERT_TRUE(runUntil([&] { return client.up(); }));
  std::string pong;
  client.command({"PING"}, [&](Reply r) { pong = r.text; });
  ASSERT_TRUE(runUntil([&] { return !pong.empty(); }));
  EXPECT_EQ(pong, "PONG");
  EXPECT_EQ(states, (std::vector<bool>{true, false, true}));
  EXPECT_GE(client.stats().connects, 2u);
}

TEST_F(RedisClientTest, RepliesOwedWhenTheConnectionDropsFail) {
  RedisClient client(loop, options());
  client.start();
  ASSERT_TRUE(runUntil([&] { return client.up(); }));
  int failed = 0;
  // BLPOP holds its reply until the connection is gone.
  client.command({"BLPOP", "nothing", "0"}, [&](Reply r) { failed += r.type == Reply::Type::kFailed; });
  context.poll();
  context.restart();
  server->stop();
  ASSERT_TRUE(runUntil([&] { return failed == 1; }));
  EXPECT_EQ(client.inFlight(), 0u);
}

TEST_F(RedisClientTest, BoundsTheCommandsInFlight) {
  auto o = options();
  o.maxInFlight = 2;
  RedisClient client(loop, o);
  client.start();
  ASSERT_TRUE(runUntil([&] { return client.up(); }));
  int ok = 0, failed = 0;
  for (int i = 0; i < 5; ++i) {
    client.command({"PING"}, [&](Reply r) { (r.type == Reply::Type::kFailed ? failed : ok)++; });
  }
  ASSERT_TRUE(runUntil([&] { return ok + failed == 5; }));
  EXPECT_EQ(ok, 2);
  EXPECT_EQ(failed, 3);
}

}  // namespace
}  // namespace kaiwa::cluster

#pragma once
// A Redis connection on a worker's loop (docs/cluster.md): hiredis's asynchronous context, with its descriptor
// watched by net::Loop (hiredis asks for read and write interest through its adapter hooks) and its connect timeout
// and reconnection on the loop's timers. While the connection is down every command fails at once with an error
// reply: nothing waits for Redis to come back, and the commands in flight are bounded (Options::maxInFlight).
// A client made with `subscriber` set carries only SUBSCRIBE (pub/sub needs a connection of its own); it subscribes
// again after each reconnection.
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "net/loop.hpp"

struct redisAsyncContext;

namespace kaiwa::cluster {

// A Redis reply, copied out of hiredis's (which lives only during its callback).
struct Reply {
  enum class Type : uint8_t { kFailed, kError, kNil, kStatus, kString, kInteger, kArray };
  Type type = Type::kFailed;  // kFailed: no reply (the connection is down, failed, or too many commands in flight)
  std::string text;           // kError, kStatus, kString; kFailed: why
  int64_t integer = 0;
  std::vector<Reply> elements;
  bool ok() const { return type != Type::kFailed && type != Type::kError; }
};

// `redis://HOST:PORT` (port 6379 when absent); nullopt when it is not that.
struct RedisAddress {
  std::string host;
  uint16_t port = 6379;
  static std::optional<RedisAddress> parse(std::string_view url);
};

class RedisClient final : private net::Loop::Watcher {
 public:
  struct Options {
    RedisAddress address;
    Millis connectTimeout{2000};
    Millis minBackoff{100};  // the first reconnection waits this long, each failure doubles it up to maxBackoff
    Millis maxBackoff{2000};
    std::size_t maxInFlight = 100'000;  // commands sent and not answered yet; more fail at once
  };
  using ReplyFn = std::function<void(Reply)>;
  using MessageFn = std::function<void(std::string_view channel, std::string_view payload)>;
  using StateFn = std::function<void(bool up)>;

  RedisClient(net::Loop& loop, Options options);
  ~RedisClient();
  RedisClient(const RedisClient&) = delete;
  RedisClient& operator=(const RedisClient&) = delete;

  // Called on each change between up and down (on the loop's thread).
  void onState(StateFn fn) { onState_ = std::move(fn); }
  // Makes this a subscriber of `channel`: `fn` hears its messages. Call before start().
  void subscribe(std::string channel, MessageFn fn);
  // Connects, and reconnects whenever the connection is lost. Call on the loop's thread.
  void start();
  bool up() const { return up_; }
  // Sends one command; `done` (optional) gets its reply, or a kFailed one, always on the loop's thread and never
  // from inside this call.
  void command(const std::vector<std::string>& args, ReplyFn done = {});

  struct Stats {
    uint64_t commands = 0;     // sent
    uint64_t failed = 0;       // failed without a reply (down, or too many in flight)
    uint64_t connects = 0;     // connections made
    uint64_t disconnects = 0;  // connections lost or that never came up
    uint64_t messages = 0;     // pub/sub messages received
  };
  const Stats& stats() const { return stats_; }
  std::size_t inFlight() const { return inFlight_; }

 private:
  struct Pending;
  void connect();
  void lost(const char* why);
  void retryLater();
  void setInterest(uint32_t interest);
  void onReady(uint32_t events) override;
  void onFailure() noexcept override;
  void fail(ReplyFn done, std::string why);
  static void onConnected(const redisAsyncContext* ac, int status);
  static void onDisconnected(const redisAsyncContext* ac, int status);
  static void onReply(redisAsyncContext* ac, void* reply, void* privdata);
  static void onMessage(redisAsyncContext* ac, void* reply, void* privdata);
  // The adapter hooks hiredis calls (privdata: this client).
  static void addRead(void* self);
  static void delRead(void* self);
  static void addWrite(void* self);
  static void delWrite(void* self);
  static void cleanup(void* self);

  net::Loop& loop_;
  Options options_;
  redisAsyncContext* ac_ = nullptr;
  net::Loop::WatchId watch_ = 0;
  int fd_ = -1;
  uint32_t interest_ = 0;
  bool up_ = false;
  bool started_ = false;
  Millis backoff_;
  net::Loop::TimerId retry_ = 0;
  net::Loop::TimerId connectTimer_ = 0;
  std::size_t inFlight_ = 0;
  std::string channel_;
  MessageFn onMessage_;
  StateFn onState_;
  Stats stats_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace kaiwa::cluster

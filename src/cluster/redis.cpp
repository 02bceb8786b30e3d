#include "cluster/redis.hpp"

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include <charconv>
#include <memory>

namespace kaiwa::cluster {
namespace {

Reply copyReply(const redisReply* r) {
  Reply out;
  switch (r->type) {
    case REDIS_REPLY_STRING:
      out.type = Reply::Type::kString;
      out.text.assign(r->str, r->len);
      break;
    case REDIS_REPLY_STATUS:
      out.type = Reply::Type::kStatus;
      out.text.assign(r->str, r->len);
      break;
    case REDIS_REPLY_ERROR:
      out.type = Reply::Type::kError;
      out.text.assign(r->str, r->len);
      break;
    case REDIS_REPLY_INTEGER:
      out.type = Reply::Type::kInteger;
      out.integer = r->integer;
      break;
    case REDIS_REPLY_ARRAY:
      out.type = Reply::Type::kArray;
      out.elements.reserve(r->elements);
      for (size_t i = 0; i < r->elements; ++i) out.elements.push_back(copyReply(r->element[i]));
      break;
    default:
      out.type = Reply::Type::kNil;
      break;
  }
  return out;
}

}  // namespace

std::optional<RedisAddress> RedisAddress::parse(std::string_view url) {
  if (url.starts_with("redis://")) url.remove_prefix(8);
  if (!url.empty() && url.back() == '/') url.remove_suffix(1);
  RedisAddress a;
  std::string_view port;
  if (url.starts_with('[')) {
    auto close = url.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    a.host = std::string(url.substr(1, close - 1));
    std::string_view rest = url.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return std::nullopt;
      port = rest.substr(1);
    }
  } else {
    auto colon = url.rfind(':');
    a.host = std::string(url.substr(0, colon));
    if (colon != std::string_view::npos) port = url.substr(colon + 1);
  }
  if (a.host.empty() || a.host.find_first_of("/@ ") != std::string::npos) return std::nullopt;
  if (!port.empty()) {
    unsigned p = 0;
    auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), p);
    if (ec != std::errc{} || end != port.data() + port.size() || p == 0 || p > 65535) return std::nullopt;
    a.port = static_cast<uint16_t>(p);
  }
  return a;
}

struct RedisClient::Pending {
  RedisClient* client;
  ReplyFn done;
};

RedisClient::RedisClient(net::Loop& loop, Options options)
    : loop_(loop), options_(std::move(options)), backoff_(options_.minBackoff) {}

RedisClient::~RedisClient() {
  *alive_ = false;
  started_ = false;
  loop_.cancel(retry_);
  loop_.cancel(connectTimer_);
  onState_ = nullptr;
  if (ac_) {
    redisAsyncContext* ac = ac_;
    ac_ = nullptr;
    redisAsyncFree(ac);  // the replies still owed are called with none: Pending is freed, `done` not called
  }
}

void RedisClient::subscribe(std::string channel, MessageFn fn) {
  channel_ = std::move(channel);
  onMessage_ = std::move(fn);
}

void RedisClient::start() {
  KAIWA_ON_LOOP(loop_);
  if (started_) return;
  started_ = true;
  connect();
}

void RedisClient::connect() {
  retry_ = 0;
  if (!started_ || ac_) return;
  redisAsyncContext* ac = redisAsyncConnect(options_.address.host.c_str(), options_.address.port);
  if (ac == nullptr || ac->err) {
    if (ac) redisAsyncFree(ac);
    lost("connect failed");
    return;
  }
  ac_ = ac;
  fd_ = ac->c.fd;
  ac->data = this;
  ac->ev.data = this;
  ac->ev.addRead = &RedisClient::addRead;
  ac->ev.delRead = &RedisClient::delRead;
  ac->ev.addWrite = &RedisClient::addWrite;
  ac->ev.delWrite = &RedisClient::delWrite;
  ac->ev.cleanup = &RedisClient::cleanup;
  redisAsyncSetConnectCallback(ac, &RedisClient::onConnected);  // asks for write interest: the connect completing
  redisAsyncSetDisconnectCallback(ac, &RedisClient::onDisconnected);
  connectTimer_ = loop_.at(Clock::now() + options_.connectTimeout, [this](TimePoint) {
    connectTimer_ = 0;
    if (ac_ && !up_) {
      redisAsyncContext* stuck = ac_;
      ac_ = nullptr;
      redisAsyncFree(stuck);  // never connected: no callback of ours but cleanup runs
      lost("connect timed out");
    }
  });
}

void RedisClient::lost(const char* why) {
  loop_.cancel(connectTimer_);
  connectTimer_ = 0;
  ++stats_.disconnects;
  (void)why;
  if (up_) {
    up_ = false;
    if (onState_) onState_(false);
  }
  retryLater();
}

void RedisClient::retryLater() {
  if (!started_ || retry_ != 0) return;
  retry_ = loop_.at(Clock::now() + backoff_, [this](TimePoint) { connect(); });
  backoff_ = std::min(backoff_ * 2, options_.maxBackoff);
}

void RedisClient::setInterest(uint32_t interest) {
  if (fd_ < 0 || interest == interest_) return;
  interest_ = interest;
  if (watch_ == 0) {
    watch_ = loop_.watch(fd_, interest, *this);
  } else {
    loop_.rewatch(watch_, fd_, interest);
  }
}

void RedisClient::addRead(void* self) {
  auto* c = static_cast<RedisClient*>(self);
  c->setInterest(c->interest_ | net::Loop::kReadable);
}
void RedisClient::delRead(void* self) {
  auto* c = static_cast<RedisClient*>(self);
  c->setInterest(c->interest_ & ~net::Loop::kReadable);
}
void RedisClient::addWrite(void* self) {
  auto* c = static_cast<RedisClient*>(self);
  c->setInterest(c->interest_ | net::Loop::kWritable);
}
void RedisClient::delWrite(void* self) {
  auto* c = static_cast<RedisClient*>(self);
  c->setInterest(c->interest_ & ~net::Loop::kWritable);
}
void RedisClient::cleanup(void* self) {
  auto* c = static_cast<RedisClient*>(self);
  if (c->watch_ != 0) c->loop_.unwatch(c->watch_, c->fd_);
  c->watch_ = 0;
  c->interest_ = 0;
  c->fd_ = -1;
}

void RedisClient::onReady(uint32_t events) {
  redisAsyncContext* ac = ac_;
  if (ac == nullptr) return;
  if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) redisAsyncHandleRead(ac);
  if (ac_ == ac && (events & EPOLLOUT)) redisAsyncHandleWrite(ac);
}

void RedisClient::onFailure() noexcept {
  // A callback threw (none should): the registration is gone, so the connection is dropped and made again.
  if (ac_) {
    redisAsyncContext* ac = ac_;
    ac_ = nullptr;
    watch_ = 0;
    redisAsyncFree(ac);
  }
  lost("handler failed");
}

void RedisClient::onConnected(const redisAsyncContext* ac, int status) {
  auto* self = static_cast<RedisClient*>(ac->data);
  if (status != REDIS_OK) {
    self->ac_ = nullptr;  // hiredis frees it after this returns
    self->lost("connect failed");
    return;
  }
  self->loop_.cancel(self->connectTimer_);
  self->connectTimer_ = 0;
  self->up_ = true;
  self->backoff_ = self->options_.minBackoff;
  ++self->stats_.connects;
  if (!self->channel_.empty()) {
    redisAsyncCommand(self->ac_, &RedisClient::onMessage, self, "SUBSCRIBE %b", self->channel_.data(),
                      self->channel_.size());
  }
  if (self->onState_) self->onState_(true);
}

void RedisClient::onDisconnected(const redisAsyncContext* ac, int /*status*/) {
  auto* self = static_cast<RedisClient*>(ac->data);
  if (self->ac_ != ac) return;  // freed by us (destructor, timeout): nothing to redo
  self->ac_ = nullptr;
  self->lost("disconnected");
}

void RedisClient::fail(ReplyFn done, std::string why) {
  ++stats_.failed;
  if (!done) return;
  loop_.post([alive = std::weak_ptr<bool>(alive_), done = std::move(done), why = std::move(why)]() mutable {
    if (alive.expired()) return;
    Reply r;
    r.text = std::move(why);
    done(std::move(r));
  });
}

void RedisClient::command(const std::vector<std::string>& args, ReplyFn done) {
  KAIWA_ON_LOOP(loop_);
  if (!up_ || ac_ == nullptr) return fail(std::move(done), "redis is unreachable");
  if (inFlight_ >= options_.maxInFlight) return fail(std::move(done), "too many redis commands in flight");
  std::vector<const char*> argv;
  std::vector<size_t> lens;
  argv.reserve(args.size());
  lens.reserve(args.size());
  for (const auto& a : args) {
    argv.push_back(a.data());
    lens.push_back(a.size());
  }
  auto* p = new Pending{this, std::move(done)};
  if (redisAsyncCommandArgv(ac_, &RedisClient::onReply, p, static_cast<int>(argv.size()), argv.data(), lens.data()) !=
      REDIS_OK) {
    ReplyFn d = std::move(p->done);
    delete p;
    return fail(std::move(d), "redis connection is closing");
  }
  ++inFlight_;
  ++stats_.commands;
}

void RedisClient::onReply(redisAsyncContext* /*ac*/, void* reply, void* privdata) {
  std::unique_ptr<Pending> p(static_cast<Pending*>(privdata));
  RedisClient* self = p->client;
  --self->inFlight_;
  if (!self->started_) return;  // the client is being destroyed
  if (reply == nullptr) {
    self->fail(std::move(p->done), "redis connection lost");
    return;
  }
  if (p->done) p->done(copyReply(static_cast<const redisReply*>(reply)));
}

void RedisClient::onMessage(redisAsyncContext* /*ac*/, void* reply, void* privdata) {
  auto* self = static_cast<RedisClient*>(privdata);
  auto* r = static_cast<const redisReply*>(reply);
  if (r == nullptr || !self->started_ || r->type != REDIS_REPLY_ARRAY || r->elements != 3) return;
  const redisReply* kind = r->element[0];
  if (kind->type != REDIS_REPLY_STRING || std::string_view(kind->str, kind->len) != "message") return;
  const redisReply* channel = r->element[1];
  const redisReply* payload = r->element[2];
  if (channel->type != REDIS_REPLY_STRING || payload->type != REDIS_REPLY_STRING) return;
  ++self->stats_.messages;
  if (self->onMessage_) {
    self->onMessage_(std::string_view(channel->str, channel->len), std::string_view(payload->str, payload->len));
  }
}

}  // namespace kaiwa::cluster

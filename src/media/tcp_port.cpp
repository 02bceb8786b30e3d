#include "media/tcp_port.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/metrics.hpp"
#include "ice/lite_agent.hpp"
#include "net/udp_socket.hpp"
#include "rtp/packet.hpp"
#include "stun/message.hpp"

namespace kaiwa::media {

using common::Address;

namespace {

static_assert(static_cast<size_t>(TcpClose::kCount) == metrics::kSfuTcpCloseNames.size());

void count(TcpClose why) { metrics::add(metrics::registry().sfuTcpClosed[static_cast<size_t>(why)]); }

constexpr int kAcceptsPerWakeup = 64;
constexpr int kReadsPerWakeup = 16;  // the socket is level-triggered: what is left is reported again

}  // namespace

std::optional<TcpClose> tcpExpiry(TimePoint accepted, std::optional<TimePoint> lastValidCheck, TimePoint now,
                                  const TcpLimits& limits) {
  if (!lastValidCheck) {
    if (now - accepted >= limits.firstCheck) return TcpClose::kNoCheck;
    return std::nullopt;
  }
  if (now - *lastValidCheck >= limits.idle) return TcpClose::kIdle;
  return std::nullopt;
}

bool FrameQueue::push(std::span<const uint8_t> header, std::span<const uint8_t> payload, size_t sent) {
  const size_t total = header.size() + payload.size();
  if (sent >= total) return true;
  if (size() + (total - sent) > max_) return false;
  if (start_ > 0 && start_ == bytes_.size()) {
    bytes_.clear();
    start_ = 0;
  }
  if (sent < header.size()) {
    bytes_.insert(bytes_.end(), header.begin() + ptrdiff_t(sent), header.end());
    sent = 0;
  } else {
    sent -= header.size();
  }
  bytes_.insert(bytes_.end(), payload.begin() + ptrdiff_t(sent), payload.end());
  return true;
}

void FrameQueue::consume(size_t n) {
  start_ += std::min(n, size());
  if (start_ == bytes_.size()) {
    bytes_.clear();
    start_ = 0;
    // A burst's buffer is not kept by an idle connection.
    if (bytes_.capacity() > 64 * 1024) std::vector<uint8_t>().swap(bytes_);
  }
}

TcpShared::TcpShared(TcpLimits l)
    : limits(l), perAddress([&] {
        common::AddressLimitOptions o;
        o.connections = l.perAddress;
        o.connectsPerSecond = 0;  // ICE-TCP makes a few connections per peer connection; the count bounds them
        o.handshakesPerSecond = 0;
        o.pollingSessions = 0;
        o.pollingSessionsTotal = 0;
        o.roomsPerMinute = 0;
        return o;
      }()) {}

TcpConnection::TcpConnection(int f, Address r, TcpShared& s, TimePoint a)
    : fd(f), remote(r), ip(r.ipString()), shared(s), accepted(a), queue(s.limits.maxQueuedBytes) {}

TcpConnection::~TcpConnection() {
  if (fd >= 0) ::close(fd);
  shared.perAddress.closeConnection(ip);
  shared.connections.fetch_sub(1);
  metrics::add(metrics::registry().sfuTcpConnections, -1);
}

void TcpConnection::onFailure() noexcept {
  // The registration is gone already; the connection ends in a posted task (its port erases it).
  port->closeLater(id, TcpClose::kError);
}

TcpPort::TcpPort(net::Loop& loop, uint32_t worker, TcpShared& shared, TcpPortIo& io)
    : loop_(loop), worker_(worker), shared_(shared), io_(io) {
  listener_.port = this;
}

TcpPort::~TcpPort() {
  loop_.cancel(resume_);
  connections_.forEach([&](TcpId, TcpConnection& c) {
    if (c.watch) loop_.unwatch(c.watch, c.fd);
  });
  if (fd_ >= 0) {
    if (watch_) loop_.unwatch(watch_, fd_);
    ::close(fd_);
  }
}

std::optional<std::string> TcpPort::listen(const Address& local) {
  std::string err;
  fd_ = net::listenTcp(local, true, &err);
  if (fd_ < 0) return "SFU TCP " + err;
  watch_ = loop_.watch(fd_, EPOLLIN, listener_);
  if (!watch_) return std::string("SFU TCP epoll: ") + std::strerror(errno);
  return std::nullopt;
}

void TcpPort::accept() {
  const TimePoint now = Clock::now();
  for (int i = 0; i < kAcceptsPerWakeup; ++i) {
    sockaddr_storage sa{};
    socklen_t len = sizeof sa;
    const int fd = ::accept4(fd_, reinterpret_cast<sockaddr*>(&sa), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR || errno == ECONNABORTED) return;
      // Out of descriptors (above all): the backlog stays readable, so accepting pauses instead of spinning.
      const auto failure = backoff_.failed(now);
      if (failure.log) {
        spdlog::warn("sfu: ICE-TCP accept failed: {} ({} more not logged); pausing", std::strerror(errno),
                     failure.suppressed);
      }
      loop_.unwatch(watch_, fd_);
      watch_ = 0;
      resume_ = loop_.at(now + failure.pause, [this](TimePoint) {
        resume_ = 0;
        watch_ = loop_.watch(fd_, EPOLLIN, listener_);
      });
      return;
    }
    backoff_.succeeded();
    auto remote = Address::fromSockaddr(reinterpret_cast<const sockaddr*>(&sa));
    if (!remote) {
      ::close(fd);
      continue;
    }
    if (shared_.connections.fetch_add(1) >= shared_.limits.total) {
      shared_.connections.fetch_sub(1);
      ::close(fd);
      count(TcpClose::kTotalLimit);
      continue;
    }
    if (!shared_.perAddress.openConnection(remote->ipString(), now)) {
      shared_.connections.fetch_sub(1);
      ::close(fd);
      count(TcpClose::kAddressLimit);
      continue;
    }
    metrics::add(metrics::registry().sfuTcpConnections, 1);
    // Media is many small writes that must not wait for each other's acknowledgements.
    const int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    insert(std::make_unique<TcpConnection>(fd, *remote, shared_, now));
  }
}

TcpId TcpPort::insert(std::unique_ptr<TcpConnection> connection) {
  TcpConnection& c = *connection;
  c.port = this;
  c.id = connections_.insert(std::move(connection));
  c.watch = loop_.watch(c.fd, net::Loop::kReadable | (c.writing ? net::Loop::kWritable : 0u), c);
  if (!c.watch) {
    end(c.id, TcpClose::kError);
    return 0;
  }
  return c.id;
}

void TcpPort::adopt(std::unique_ptr<TcpConnection> connection) {
  KAIWA_ON_LOOP(loop_);
  std::vector<uint8_t> first = std::move(connection->first);
  const TcpId id = insert(std::move(connection));
  TcpConnection* c = id ? connections_.find(id) : nullptr;
  if (c == nullptr) return;
  const TimePoint now = Clock::now();
  if (!onFirstFrame(*c, id, first, now)) return;
  // Frames read behind the first one on the worker that accepted it.
  readFrames(*c, id, now);
}

void TcpPort::onReady(TcpId id, uint32_t events) {
  TcpConnection* c = connections_.find(id);
  if (c == nullptr || c->closing) return;
  if ((events & EPOLLOUT) != 0 && !flushQueue(*c)) return;
  if ((events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) == 0) return;
  const TimePoint now = Clock::now();
  for (int i = 0; i < kReadsPerWakeup; ++i) {
    auto space = c->reader.space();
    if (space.empty()) return end(id, TcpClose::kTooLarge);
    const ssize_t n = ::recv(c->fd, space.data(), space.size(), MSG_DONTWAIT);
    if (n == 0) return end(id, TcpClose::kPeer);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) break;
      return end(id, TcpClose::kError);
    }
    c->reader.commit(size_t(n));
    readFrames(*c, id, now);
    c = connections_.find(id);
    if (c == nullptr || c->closing || c->port != this) return;
    if (size_t(n) < space.size()) break;
  }
}

void TcpPort::readFrames(TcpConnection& c, TcpId id, TimePoint now) {
  bool delivered = false;
  for (;;) {
    auto next = c.reader.next();
    if (next.status == FrameReader::Status::kNeedMore) break;
    if (next.status == FrameReader::Status::kTooLarge) {
      if (delivered) io_.afterFrames();
      return end(id, TcpClose::kTooLarge);
    }
    if (!c.transport) {
      if (!onFirstFrame(c, id, next.frame, now)) return;
      continue;
    }
    std::span<uint8_t> frame = next.frame;
    if (reinterpret_cast<uintptr_t>(frame.data()) % 4 != 0) {
      std::memcpy(aligned_.data(), frame.data(), frame.size());
      frame = std::span(aligned_).first(frame.size());
    }
    io_.onFrame(*c.transport, frame, c.remote, now);
    delivered = true;
    // The transport may have ended (and with it this connection) inside that call.
    if (connections_.find(id) == nullptr || c.closing) break;
  }
  if (delivered) io_.afterFrames();
}

bool TcpPort::onFirstFrame(TcpConnection& c, TcpId id, std::span<uint8_t> frame, TimePoint now) {
  std::optional<stun::Message> message;
  if (rtp::classify(frame) == rtp::DatagramKind::kStun) message = stun::Message::parse(frame);
  auto username = message && message->is(stun::Method::kBinding, stun::Class::kRequest) ? ice::splitUsername(*message)
                                                                                        : std::nullopt;
  auto owner = username ? io_.ownerOfUfrag(username->local) : std::nullopt;
  if (!owner) {
    end(id, TcpClose::kBadFirstFrame);
    return false;
  }
  if (*owner != worker_) {
    // Once per connection: the owner reads it from now on. Its descriptor leaves this loop's set first.
    auto taken = connections_.take(id);
    loop_.unwatch(taken->watch, taken->fd);
    taken->watch = 0;
    taken->port = nullptr;
    taken->first.assign(frame.begin(), frame.end());
    metrics::add(metrics::registry().sfuTcpHandovers);
    io_.handOver(*owner, std::move(taken));
    return false;
  }
  net::SlotId transport = 0;
  TcpClose why = TcpClose::kUnknownUfrag;
  if (!io_.attach(username->local, id, c.remote, transport, why)) {
    end(id, why);
    return false;
  }
  c.transport = transport;
  io_.onFrame(transport, frame, c.remote, now);
  io_.afterFrames();
  if (connections_.find(id) == nullptr || c.closing) return false;
  // Only a connection whose first frame was a valid check for its transport is kept (one that names a ufrag it
  // learned elsewhere and cannot authenticate holds nothing).
  if (!io_.lastValidCheck(transport, c.remote)) {
    end(id, TcpClose::kBadCheck);
    return false;
  }
  return true;
}

void TcpPort::send(TcpId id, std::span<const uint8_t> payload) {
  TcpConnection* c = connections_.find(id);
  if (c == nullptr || c->closing || payload.size() > 65535) return;
  uint8_t header[kFrameHeader];
  writeFrameHeader(payload.size(), header);
  size_t sent = 0;
  if (c->queue.empty()) {
    iovec iov[2] = {{header, kFrameHeader}, {const_cast<uint8_t*>(payload.data()), payload.size()}};
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = 2;
    const ssize_t n = ::sendmsg(c->fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n < 0) {
      if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return closeLater(id, TcpClose::kError);
    } else {
      sent = size_t(n);
    }
  }
  if (sent == kFrameHeader + payload.size()) return;
  if (!c->queue.push(header, payload, sent)) {
    ++queueDrops_;
    metrics::add(metrics::registry().sfuTcpQueueDropped);
    return;
  }
  if (!c->writing) {
    c->writing = true;
    loop_.rewatch(c->watch, c->fd, net::Loop::kReadable | net::Loop::kWritable);
  }
}

bool TcpPort::flushQueue(TcpConnection& c) {
  while (!c.queue.empty()) {
    auto front = c.queue.front();
    const ssize_t n = ::send(c.fd, front.data(), front.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return true;
      end(c.id, TcpClose::kError);
      return false;
    }
    c.queue.consume(size_t(n));
  }
  if (c.writing) {
    c.writing = false;
    loop_.rewatch(c.watch, c.fd, net::Loop::kReadable);
  }
  return true;
}

void TcpPort::closeLater(TcpId id, TcpClose why) {
  TcpConnection* c = connections_.find(id);
  if (c == nullptr || c->closing) return;
  c->closing = true;
  loop_.post([this, id, why] {
    if (connections_.find(id) != nullptr) end(id, why);
  });
}

void TcpPort::close(TcpId id, TcpClose why) { end(id, why, false); }

void TcpPort::end(TcpId id, TcpClose why, bool notify) {
  auto c = connections_.take(id);
  if (!c) return;
  if (c->watch) loop_.unwatch(c->watch, c->fd);
  count(why);
  spdlog::debug("sfu: ICE-TCP connection from {} closed ({})", c->remote.toString(), int(why));
  if (notify && c->transport) io_.onTcpClosed(*c->transport, id);
  // ~TcpConnection closes the descriptor and gives its counts back.
}

void TcpPort::expire(TimePoint now) {
  std::vector<std::pair<TcpId, TcpClose>> ending;
  connections_.forEach([&](TcpId id, TcpConnection& c) {
    std::optional<TimePoint> last;
    if (c.transport) last = io_.lastValidCheck(*c.transport, c.remote);
    // An attached connection whose path the agent forgot has no valid check left: it is idle.
    if (c.transport && !last) last = TimePoint{};
    if (auto why = tcpExpiry(c.accepted, last, now, shared_.limits)) ending.emplace_back(id, *why);
  });
  for (auto [id, why] : ending) end(id, why);
}

}  // namespace kaiwa::media

// The bare relay floor: the least work a WebSocket signaling relay can do per message, to compare servers with.
// One level-triggered epoll loop per thread; a client opens ws://127.0.0.1:PORT/floor?room=R, the two clients of
// a room are paired (each gets the text message "ok" once its partner is there), and every text message is
// unmasked straight into a server frame to the partner: one read() and one send() per message, no JSON, no ids,
// no limits, no timers. Drive it with `kaiwa-loadgen --protocol floor --url ws://127.0.0.1:PORT/floor`.
//
// With `--threads N` (default 1) it is laid out as kaiwa is (docs/architecture.md): each thread accepts on its own
// SO_REUSEPORT listener, and a connection whose room belongs to another thread (hash(room) % N) is handed to that
// thread after the upgrade, so both ends of a room live on one thread and a relayed message never crosses threads.
// It measures what N event loops cost on this machine before any server work.
//
//   kaiwa-floor-relay [PORT] [--threads N]   (port 0 or none: a free port) — prints "listening <port>"
//
// Loopback only, for benchmarks; not a server to expose anywhere.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "ws_codec.hpp"

namespace {

using kaiwa::bench::websocketAccept;

struct Conn {
  int fd = -1;
  bool upgraded = false;
  bool wantWrite = false;  // EPOLLOUT registered
  bool moved = false;      // handed to another loop during this read
  int peer = -1;           // fd of the partner
  std::string in;          // unparsed input
  std::string out;         // unsent output
};

// One event loop. A connection's fd is in exactly one loop's epoll set, and only that loop's thread touches its Conn.
struct Loop {
  int ep = -1;
  int wake = -1;  // eventfd: connections handed over by other loops
  std::mutex m;
  std::vector<std::pair<int, std::string>> incoming;  // (fd, room), under m
  std::unordered_map<std::string, int> waiting;       // room → fd of the first member
};

std::vector<Conn> conns;  // indexed by fd
std::vector<std::unique_ptr<Loop>> loops;
thread_local Loop* self = nullptr;
thread_local char buf[256 * 1024];

void appendServerFrame(std::string& out, uint8_t op, const char* data, size_t n, const uint8_t* mask) {
  uint8_t hdr[10];
  size_t h = 0;
  hdr[h++] = uint8_t(0x80 | op);
  if (n < 126) {
    hdr[h++] = uint8_t(n);
  } else if (n <= 0xffff) {
    hdr[h++] = 126;
    hdr[h++] = uint8_t(n >> 8);
    hdr[h++] = uint8_t(n);
  } else {
    hdr[h++] = 127;
    for (int i = 7; i >= 0; --i) hdr[h++] = uint8_t(uint64_t(n) >> (8 * i));
  }
  const size_t base = out.size();
  out.resize(base + h + n);
  char* dst = out.data() + base;
  std::memcpy(dst, hdr, h);
  dst += h;
  if (mask == nullptr) {
    std::memcpy(dst, data, n);
  } else {
    for (size_t i = 0; i < n; ++i) dst[i] = char(uint8_t(data[i]) ^ mask[i & 3]);
  }
}

void closeConn(int fd);
void pair(int fd, const std::string& room);

void setWant(Conn& c, bool want) {
  if (c.wantWrite == want) return;
  c.wantWrite = want;
  epoll_event ev{};
  ev.events = want ? uint32_t(EPOLLIN | EPOLLOUT) : uint32_t(EPOLLIN);
  ev.data.fd = c.fd;
  ::epoll_ctl(self->ep, EPOLL_CTL_MOD, c.fd, &ev);
}

// One send() of whatever is pending; the rest waits for EPOLLOUT.
void flush(int fd) {
  Conn& c = conns[size_t(fd)];
  if (c.out.empty()) return;
  const ssize_t n = ::send(fd, c.out.data(), c.out.size(), MSG_NOSIGNAL);
  if (n < 0) {
    if (errno == EAGAIN || errno == EINTR) {
      setWant(c, true);
      return;
    }
    closeConn(fd);
    return;
  }
  c.out.erase(0, size_t(n));
  setWant(c, !c.out.empty());
}

void closeConn(int fd) {
  Conn& c = conns[size_t(fd)];
  if (c.fd < 0) return;
  for (auto it = self->waiting.begin(); it != self->waiting.end(); ++it) {
    if (it->second == fd) {
      self->waiting.erase(it);
      break;
    }
  }
  if (c.peer >= 0) conns[size_t(c.peer)].peer = -1;
  ::close(fd);
  c = Conn{};
}

bool handshake(int fd) {
  Conn& c = conns[size_t(fd)];
  const size_t end = c.in.find("\r\n\r\n");
  if (end == std::string::npos) return c.in.size() < 8192;
  const std::string_view req(c.in.data(), end);
  const size_t k = req.find("Sec-WebSocket-Key:");
  const size_t r = req.find("room=");
  if (k == std::string_view::npos || r == std::string_view::npos) return false;
  size_t ks = k + 18;
  while (ks < req.size() && req[ks] == ' ') ++ks;
  const size_t ke = req.find("\r\n", ks);
  const std::string key(req.substr(ks, (ke == std::string_view::npos ? req.size() : ke) - ks));
  const size_t re = req.find_first_of(" &", r);
  const std::string room(req.substr(r + 5, re - r - 5));
  c.out
      .append(
          "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
          "Sec-WebSocket-Accept: ")
      .append(websocketAccept(key))
      .append("\r\n\r\n");
  c.in.erase(0, end + 4);
  c.upgraded = true;
  Loop& owner = *loops[std::hash<std::string>{}(room) % loops.size()];
  if (&owner == self) {
    pair(fd, room);
    return true;
  }
  flush(fd);  // the 101 goes out from here; the client sends nothing before its "ok"
  if (conns[size_t(fd)].fd < 0) return true;
  ::epoll_ctl(self->ep, EPOLL_CTL_DEL, fd, nullptr);
  c.moved = true;
  {
    std::lock_guard lock(owner.m);
    owner.incoming.emplace_back(fd, room);
  }
  const uint64_t one = 1;
  if (::write(owner.wake, &one, sizeof one) < 0) std::perror("eventfd");
  return true;
}

// Called on the room's loop: pairs `fd` with the member waiting in `room`, or makes it wait.
void pair(int fd, const std::string& room) {
  Conn& c = conns[size_t(fd)];
  auto it = self->waiting.find(room);
  if (it == self->waiting.end()) {
    self->waiting.emplace(room, fd);
    flush(fd);
  } else {
    const int other = it->second;
    self->waiting.erase(it);
    c.peer = other;
    conns[size_t(other)].peer = fd;
    appendServerFrame(c.out, 0x1, "ok", 2, nullptr);
    appendServerFrame(conns[size_t(other)].out, 0x1, "ok", 2, nullptr);
    flush(fd);
    flush(other);
  }
}

// Relays every complete frame in c.in; returns false to close the connection.
bool frames(int fd) {
  Conn& c = conns[size_t(fd)];
  size_t pos = 0;
  const int peer = c.peer;
  while (c.in.size() - pos >= 6) {
    const auto* p = reinterpret_cast<const uint8_t*>(c.in.data() + pos);
    const uint8_t op = p[0] & 0x0f;
    if (!(p[1] & 0x80)) return false;  // clients must mask
    uint64_t n = p[1] & 0x7f;
    size_t h = 2;
    if (n == 126) {
      if (c.in.size() - pos < 8) break;
      n = uint64_t(p[2]) << 8 | p[3];
      h = 4;
    } else if (n == 127) {
      if (c.in.size() - pos < 14) break;
      n = 0;
      for (int i = 0; i < 8; ++i) n = n << 8 | p[2 + i];
      h = 10;
    }
    if (n > (1u << 20)) return false;
    if (c.in.size() - pos < h + 4 + n) break;
    const uint8_t* mask = p + h;
    const char* data = c.in.data() + pos + h + 4;
    if (op == 0x8) {  // close: echo it and go
      appendServerFrame(c.out, 0x8, data, n < 2 ? n : 2, mask);
      flush(fd);
      return false;
    }
    if (op == 0x9) {
      appendServerFrame(c.out, 0xA, data, n, mask);
    } else if ((op == 0x1 || op == 0x2) && peer >= 0) {
      appendServerFrame(conns[size_t(peer)].out, op, data, n, mask);  // fragments are not relayed (none come)
    }
    pos += h + 4 + n;
  }
  c.in.erase(0, pos);
  if (peer >= 0) flush(peer);
  if (c.fd >= 0) flush(fd);
  return true;
}

void onReadable(int fd) {
  const ssize_t n = ::read(fd, buf, sizeof buf);
  if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
    closeConn(fd);
    return;
  }
  if (n < 0) return;
  Conn& c = conns[size_t(fd)];
  c.in.append(buf, size_t(n));
  if (!c.upgraded) {
    if (!handshake(fd)) {
      closeConn(fd);
      return;
    }
    if (!c.upgraded || c.moved) return;
  }
  if (!frames(fd)) closeConn(fd);
}

int listenOn(int port) {
  const int lfd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  const int one = 1;
  ::setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  ::setsockopt(lfd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(uint16_t(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(lfd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(lfd, 4096) != 0) {
    std::perror("bind/listen");
    std::exit(1);
  }
  return lfd;
}

void add(int fd, uint32_t events) {
  epoll_event ev{};
  ev.events = events;
  ev.data.fd = fd;
  ::epoll_ctl(self->ep, EPOLL_CTL_ADD, fd, &ev);
}

void run(Loop* loop, int lfd) {
  self = loop;
  const int one = 1;
  add(lfd, EPOLLIN);
  add(loop->wake, EPOLLIN);
  std::vector<epoll_event> events(1024);
  std::vector<std::pair<int, std::string>> handed;
  while (true) {
    const int n = ::epoll_wait(self->ep, events.data(), int(events.size()), -1);
    if (n < 0 && errno != EINTR) std::exit(1);
    for (int i = 0; i < n; ++i) {
      const int fd = events[size_t(i)].data.fd;
      if (fd == lfd) {
        while (true) {
          const int cfd = ::accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
          if (cfd < 0) break;
          if (size_t(cfd) >= conns.size()) {
            ::close(cfd);
            continue;
          }
          ::setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          conns[size_t(cfd)] = Conn{};
          conns[size_t(cfd)].fd = cfd;
          add(cfd, EPOLLIN);
        }
        continue;
      }
      if (fd == loop->wake) {
        uint64_t count = 0;
        if (::read(loop->wake, &count, sizeof count) < 0 && errno != EAGAIN) std::exit(1);
        {
          std::lock_guard lock(loop->m);
          handed.swap(loop->incoming);
        }
        for (auto& [hfd, room] : handed) {
          Conn& c = conns[size_t(hfd)];
          c.moved = false;
          add(hfd, c.wantWrite ? uint32_t(EPOLLIN | EPOLLOUT) : uint32_t(EPOLLIN));
          pair(hfd, room);
        }
        handed.clear();
        continue;
      }
      if (conns[size_t(fd)].fd < 0) continue;
      const uint32_t e = events[size_t(i)].events;
      if ((e & EPOLLOUT) && conns[size_t(fd)].fd >= 0) flush(fd);
      if ((e & (EPOLLIN | EPOLLHUP | EPOLLERR)) && conns[size_t(fd)].fd >= 0) onReadable(fd);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  int port = 0;
  int threads = 1;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (a == "--threads" && i + 1 < argc) {
      threads = std::atoi(argv[++i]);
    } else if (!a.empty() && a[0] != '-') {
      port = std::atoi(argv[i]);
    } else {
      std::fprintf(stderr, "usage: kaiwa-floor-relay [PORT] [--threads N]\n");
      return 2;
    }
  }
  if (threads < 1 || threads > 64) {
    std::fprintf(stderr, "--threads must be 1..64\n");
    return 2;
  }
  std::signal(SIGPIPE, SIG_IGN);
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) == 0) {
    rl.rlim_cur = rl.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &rl);
  }
  conns.resize(size_t(rl.rlim_cur > 0 ? rl.rlim_cur : 1024));
  // The first listener picks the port; the others join it (SO_REUSEPORT spreads connections over them).
  std::vector<int> listeners{listenOn(port)};
  sockaddr_in addr{};
  socklen_t len = sizeof addr;
  ::getsockname(listeners[0], reinterpret_cast<sockaddr*>(&addr), &len);
  port = ntohs(addr.sin_port);
  for (int t = 1; t < threads; ++t) listeners.push_back(listenOn(port));
  for (int t = 0; t < threads; ++t) {
    auto loop = std::make_unique<Loop>();
    loop->ep = ::epoll_create1(EPOLL_CLOEXEC);
    loop->wake = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    loops.push_back(std::move(loop));
  }
  std::printf("listening %d\n", port);
  std::fflush(stdout);
  std::vector<std::thread> workers;
  for (int t = 1; t < threads; ++t) workers.emplace_back(run, loops[size_t(t)].get(), listeners[size_t(t)]);
  run(loops[0].get(), listeners[0]);
}

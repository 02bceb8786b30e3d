// The bare relay floor: the least work a WebSocket signaling relay can do per message, to compare servers with.
// One thread, one level-triggered epoll loop; a client opens ws://127.0.0.1:PORT/floor?room=R, the two clients of
// a room are paired (each gets the text message "ok" once its partner is there), and every text message is
// unmasked straight into a server frame to the partner: one read() and one send() per message, no JSON, no ids,
// no limits, no timers. Drive it with `kaiwa-loadgen --protocol floor --url ws://127.0.0.1:PORT/floor`.
//
//   kaiwa-floor-relay [PORT]        (0 or nothing: a free port) — prints "listening <port>"
//
// Loopback only, for benchmarks; not a server to expose anywhere.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "ws_codec.hpp"

namespace {

using kaiwa::bench::websocketAccept;

struct Conn {
  int fd = -1;
  bool upgraded = false;
  bool wantWrite = false;  // EPOLLOUT registered
  int peer = -1;           // fd of the partner
  std::string in;          // unparsed input
  std::string out;         // unsent output
};

std::vector<Conn> conns;  // indexed by fd
std::unordered_map<std::string, int> waiting;  // room → fd of the first member
int ep = -1;
char buf[256 * 1024];

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

void setWant(Conn& c, bool want) {
  if (c.wantWrite == want) return;
  c.wantWrite = want;
  epoll_event ev{};
  ev.events = want ? uint32_t(EPOLLIN | EPOLLOUT) : uint32_t(EPOLLIN);
  ev.data.fd = c.fd;
  ::epoll_ctl(ep, EPOLL_CTL_MOD, c.fd, &ev);
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
  for (auto it = waiting.begin(); it != waiting.end(); ++it) {
    if (it->second == fd) {
      waiting.erase(it);
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
  c.out.append("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Accept: ")
      .append(websocketAccept(key))
      .append("\r\n\r\n");
  c.in.erase(0, end + 4);
  c.upgraded = true;
  auto it = waiting.find(room);
  if (it == waiting.end()) {
    waiting.emplace(room, fd);
    flush(fd);
  } else {
    const int other = it->second;
    waiting.erase(it);
    c.peer = other;
    conns[size_t(other)].peer = fd;
    appendServerFrame(c.out, 0x1, "ok", 2, nullptr);
    appendServerFrame(conns[size_t(other)].out, 0x1, "ok", 2, nullptr);
    flush(fd);
    flush(other);
  }
  return true;
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
    if (!c.upgraded) return;
  }
  if (!frames(fd)) closeConn(fd);
}

}  // namespace

int main(int argc, char** argv) {
  const int port = argc > 1 ? std::atoi(argv[1]) : 0;
  std::signal(SIGPIPE, SIG_IGN);
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) == 0) {
    rl.rlim_cur = rl.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &rl);
  }
  conns.resize(size_t(rl.rlim_cur > 0 ? rl.rlim_cur : 1024));
  const int lfd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  const int one = 1;
  ::setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(uint16_t(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(lfd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(lfd, 4096) != 0) {
    std::perror("bind/listen");
    return 1;
  }
  socklen_t len = sizeof addr;
  ::getsockname(lfd, reinterpret_cast<sockaddr*>(&addr), &len);
  std::printf("listening %d\n", ntohs(addr.sin_port));
  std::fflush(stdout);
  ep = ::epoll_create1(EPOLL_CLOEXEC);
  epoll_event lev{};
  lev.events = EPOLLIN;
  lev.data.fd = lfd;
  ::epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &lev);
  std::vector<epoll_event> events(1024);
  while (true) {
    const int n = ::epoll_wait(ep, events.data(), int(events.size()), -1);
    if (n < 0 && errno != EINTR) return 1;
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
          conns[size_t(cfd)].fd = cfd;
          epoll_event ev{};
          ev.events = EPOLLIN;
          ev.data.fd = cfd;
          ::epoll_ctl(ep, EPOLL_CTL_ADD, cfd, &ev);
        }
        continue;
      }
      if (conns[size_t(fd)].fd < 0) continue;
      const uint32_t e = events[size_t(i)].events;
      if ((e & EPOLLOUT) && conns[size_t(fd)].fd >= 0) flush(fd);
      if ((e & (EPOLLIN | EPOLLHUP | EPOLLERR)) && conns[size_t(fd)].fd >= 0) onReadable(fd);
    }
  }
}

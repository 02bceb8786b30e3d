#include "net/udp_socket.hpp"

#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <unistd.h>

#include <cstring>

namespace kaiwa::net {

namespace {
int family(const common::Address& a) { return a.family == common::Family::kV4 ? AF_INET : AF_INET6; }

int openBound(int type, const common::Address& local, bool reusePort, bool v6Only, std::string* error) {
  int fd = ::socket(family(local), type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    if (error) *error = std::string("socket: ") + std::strerror(errno);
    return -1;
  }
  int one = 1;
  if (type == SOCK_STREAM) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (reusePort) setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  if (local.family == common::Family::kV6) {
    int v = v6Only ? 1 : 0;
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v, sizeof v);
  }
  sockaddr_storage ss;
  socklen_t len = local.toSockaddr(ss);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
    if (error) *error = "bind " + local.toString() + ": " + std::strerror(errno);
    ::close(fd);
    return -1;
  }
  return fd;
}
}  // namespace

int bindUdp(const common::Address& local, const UdpBindOptions& o, std::string* error) {
  int fd = openBound(SOCK_DGRAM, local, o.reusePort, o.v6Only, error);
  if (fd < 0) return -1;
  // SO_RCVBUF/SO_SNDBUF are capped at net.core.rmem_max/wmem_max (208 KiB on a default Linux: a few hundred
  // datagrams, a few ms at high rates); a process with CAP_NET_ADMIN may go past the cap with the *FORCE options.
  if (o.receiveBuffer > 0 && setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &o.receiveBuffer, sizeof o.receiveBuffer) != 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &o.receiveBuffer, sizeof o.receiveBuffer);
  if (o.sendBuffer > 0 && setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &o.sendBuffer, sizeof o.sendBuffer) != 0)
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &o.sendBuffer, sizeof o.sendBuffer);
  if (o.dontFragment) {
    int v = IP_PMTUDISC_DO;
    if (local.family == common::Family::kV4)
      setsockopt(fd, IPPROTO_IP, IP_MTU_DISCOVER, &v, sizeof v);
    else
      setsockopt(fd, IPPROTO_IPV6, IPV6_MTU_DISCOVER, &v, sizeof v);
  }
  return fd;
}

int listenTcp(const common::Address& local, bool reusePort, std::string* error) {
  int fd = openBound(SOCK_STREAM, local, reusePort, true, error);
  if (fd < 0) return -1;
  if (::listen(fd, 1024) != 0) {
    if (error) *error = "listen " + local.toString() + ": " + std::strerror(errno);
    ::close(fd);
    return -1;
  }
  return fd;
}

int receiveBufferSize(int fd) {
  int size = 0;
  socklen_t len = sizeof size;
  if (getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, &len) != 0) return 0;
  return size / 2;  // the kernel reports twice what was asked (its bookkeeping overhead)
}

std::optional<common::Address> localAddress(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return std::nullopt;
  return common::Address::fromSockaddr(reinterpret_cast<sockaddr*>(&ss));
}

RecvBatch::RecvBatch() : buffers_(kSlots * kSlotBytes) {
  for (size_t i = 0; i < kSlots; ++i) {
    iov_[i] = {buffers_.data() + i * kSlotBytes, kSlotBytes};
    headers_[i].msg_hdr.msg_iov = &iov_[i];
    headers_[i].msg_hdr.msg_iovlen = 1;
    headers_[i].msg_hdr.msg_name = &addrs_[i];
  }
}

size_t RecvBatch::receive(int fd) {
  for (size_t i = 0; i < kSlots; ++i) {
    headers_[i].msg_hdr.msg_namelen = sizeof(sockaddr_storage);
    headers_[i].msg_hdr.msg_flags = 0;
  }
  int n = ::recvmmsg(fd, headers_.data(), kSlots, MSG_DONTWAIT, nullptr);
  if (n <= 0) return 0;
  for (int i = 0; i < n; ++i) {
    lengths_[i] = std::min<size_t>(headers_[i].msg_len, kSlotBytes);
    truncated_[i] = (headers_[i].msg_hdr.msg_flags & MSG_TRUNC) != 0;
  }
  return size_t(n);
}

std::optional<common::Address> RecvBatch::from(size_t i) const {
  return common::Address::fromSockaddr(reinterpret_cast<const sockaddr*>(&addrs_[i]));
}

SendBatch::SendBatch() : buffers_(kSlots * kSlotBytes) {}

bool SendBatch::add(int fd, const common::Address& to, std::span<const uint8_t> a, std::span<const uint8_t> b,
                    size_t pad) {
  size_t total = a.size() + b.size() + pad;
  if (total > kSlotBytes) {
    ++dropped_;
    return false;
  }
  if (count_ == kSlots) flush();
  uint8_t* p = buffers_.data() + count_ * kSlotBytes;
  if (!a.empty()) std::memcpy(p, a.data(), a.size());
  if (!b.empty()) std::memcpy(p + a.size(), b.data(), b.size());
  if (pad) std::memset(p + a.size() + b.size(), 0, pad);
  iov_[count_] = {p, total};
  auto& h = headers_[count_].msg_hdr;
  h = {};
  h.msg_iov = &iov_[count_];
  h.msg_iovlen = 1;
  h.msg_name = &addrs_[count_];
  h.msg_namelen = to.toSockaddr(addrs_[count_]);
  fds_[count_] = fd;
  ++count_;
  return true;
}

void SendBatch::flush() {
  size_t start = 0;
  while (start < count_) {
    size_t end = start + 1;
    while (end < count_ && fds_[end] == fds_[start]) ++end;
    size_t at = start;
    while (at < end) {
      ++syscalls_;
      int n = ::sendmmsg(fds_[start], headers_.data() + at, unsigned(end - at), MSG_DONTWAIT);
      if (n <= 0) {
        if (n < 0 && errno == EINTR) continue;
        ++dropped_;  // this datagram is refused (buffer full, unreachable...): drop it, try the rest
        ++at;
        continue;
      }
      at += size_t(n);
    }
    start = end;
  }
  count_ = 0;
}

std::vector<common::Address> interfaceAddresses() {
  std::vector<common::Address> out;
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) return out;
  for (ifaddrs* i = list; i; i = i->ifa_next) {
    if (!i->ifa_addr || !(i->ifa_flags & IFF_UP)) continue;
    if (auto a = common::Address::fromSockaddr(i->ifa_addr)) {
      a->port = 0;
      out.push_back(*a);
    }
  }
  freeifaddrs(list);
  return out;
}

}  // namespace kaiwa::net

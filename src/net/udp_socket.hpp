#pragma once
// Non-blocking UDP sockets with batched receive and send (recvmmsg/sendmmsg): the only place that makes UDP socket
// calls. Buffers are allocated once per batch object, never per datagram.
#include <sys/socket.h>

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "common/address.hpp"

namespace kaiwa::net {

struct UdpBindOptions {
  bool reusePort = false;  // SO_REUSEPORT: one socket per worker on the same port
  bool v6Only = true;
  bool dontFragment = false;  // IP_PMTUDISC_DO
  int receiveBuffer = 0;      // SO_RCVBUF / SO_SNDBUF when > 0 (the *FORCE variants first: past rmem_max/wmem_max
                              // with CAP_NET_ADMIN)
  int sendBuffer = 0;
};

// Opens and binds a non-blocking UDP socket; returns the fd, or -1 with `error` set.
int bindUdp(const common::Address& local, const UdpBindOptions& options, std::string* error);
// Same for a listening TCP socket (SO_REUSEADDR, optionally SO_REUSEPORT).
int listenTcp(const common::Address& local, bool reusePort, std::string* error);
// The receive buffer a socket got, in the units SO_RCVBUF was given in (0 on error).
int receiveBufferSize(int fd);
// The address a socket is bound to.
std::optional<common::Address> localAddress(int fd);

class RecvBatch {
 public:
  static constexpr size_t kSlots = 32;
  static constexpr size_t kSlotBytes = 2048;  // larger datagrams arrive truncated and are dropped

  RecvBatch();
  // Receives up to kSlots datagrams; returns how many (0 when none is ready or on error).
  size_t receive(int fd);
  std::span<const uint8_t> data(size_t i) const { return {buffers_.data() + i * kSlotBytes, lengths_[i]}; }
  bool truncated(size_t i) const { return truncated_[i]; }
  std::optional<common::Address> from(size_t i) const;

 private:
  std::vector<uint8_t> buffers_;
  std::array<mmsghdr, kSlots> headers_{};
  std::array<iovec, kSlots> iov_{};
  std::array<sockaddr_storage, kSlots> addrs_{};
  std::array<size_t, kSlots> lengths_{};
  std::array<bool, kSlots> truncated_{};
};

// Datagrams queued for several sockets and sent with one sendmmsg per run of the same socket.
class SendBatch {
 public:
  static constexpr size_t kSlots = 64;
  static constexpr size_t kSlotBytes = 2048 + 64;

  SendBatch();
  // Queues a datagram of a + b + pad zero bytes; flushes first if the batch is full. False if too large.
  bool add(int fd, const common::Address& to, std::span<const uint8_t> a, std::span<const uint8_t> b = {},
           size_t pad = 0);
  // Sends everything queued; datagrams the kernel refuses (buffer full) are dropped and counted.
  void flush();
  bool empty() const { return count_ == 0; }
  uint64_t dropped() const { return dropped_; }
  uint64_t syscalls() const { return syscalls_; }

 private:
  std::vector<uint8_t> buffers_;
  std::array<mmsghdr, kSlots> headers_{};
  std::array<iovec, kSlots> iov_{};
  std::array<sockaddr_storage, kSlots> addrs_{};
  std::array<int, kSlots> fds_{};
  size_t count_ = 0;
  uint64_t dropped_ = 0;
  uint64_t syscalls_ = 0;
};

// The machine's interface addresses that are up (port 0), loopback included: TURN's peer filter ("own addresses"),
// its default relay address, and the SFU's candidates when its media port listens on a wildcard address.
std::vector<common::Address> interfaceAddresses();

}  // namespace kaiwa::net

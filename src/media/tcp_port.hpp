#pragma once
// Passive ICE-TCP (RFC 6544) on the media port: a TCP listener on the UDP media port's address and port number, for
// clients on networks that let no UDP through. One connection carries one transport's STUN, DTLS and SRTP/SRTCP in
// RFC 4571 frames (media/tcp_framing.hpp); the transport (sfu::Transport) is the same as over UDP and sees the
// connection's remote address as one more path.
//
// Placement (docs/architecture.md, "ICE-TCP on the media port"): every worker listens on the port (SO_REUSEPORT),
// so the kernel spreads connections over the workers. A connection's first frame must be a STUN Binding request
// whose USERNAME starts with a kaiwa ufrag, which names the worker that owns the transport ("w<worker>x…"): a
// worker that accepted a connection for another one hands it over once — the descriptor, the first frame and what
// was read behind it, carried owned inside a posted task — and the owner reads it from then on. The owner delivers
// the first frame to the transport, and keeps the connection only if that was a valid ICE check.
//
// Bounds: connections per client address (common::AddressLimits) and in total; ten seconds from accept to that
// first valid check; thirty seconds without a valid check on the connection's path ends it (ICE consent, as for
// UDP); a frame over kMaxTcpFrame or a first frame that is no kaiwa check ends it; every write goes into a bounded
// queue per connection whose overflow drops whole frames (a slow reader loses media, the loop never waits). Each
// end is counted by reason in kaiwa_sfu_tcp_closed_total.
#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/address.hpp"
#include "common/address_limits.hpp"
#include "common/clock.hpp"
#include "media/tcp_framing.hpp"
#include "net/accept_backoff.hpp"
#include "net/loop.hpp"
#include "net/slots.hpp"

namespace kaiwa::media {

// What the port may hold, with the defaults.
struct TcpLimits {
  size_t perAddress = 16;              // connections from one client address (an IPv6 /64), on all workers
  size_t total = 2000;                 // connections in all
  Millis firstCheck{10000};            // from accept to the first valid ICE check
  Millis idle{30000};                  // without a valid check on the connection (RFC 7675's consent)
  size_t maxQueuedBytes = 256 * 1024;  // written and not yet taken by the kernel, per connection
};

// The largest frame read: what the UDP port takes (net::RecvBatch's slot). Media and DTLS records are below 1500.
inline constexpr size_t kMaxTcpFrame = 2048;

// Why a connection ended (kaiwa_sfu_tcp_closed_total's reasons, common/metrics.hpp's kSfuTcpCloseNames).
enum class TcpClose : uint8_t {
  kPeer,           // the client closed it
  kError,          // a socket error
  kTooLarge,       // a frame over kMaxTcpFrame
  kBadFirstFrame,  // the first frame was no STUN Binding request with a kaiwa ufrag
  kUnknownUfrag,   // no transport has that ufrag
  kBadCheck,       // the first frame was not a valid check for the transport
  kNoCheck,        // no first frame within TcpLimits::firstCheck
  kIdle,           // no valid check for TcpLimits::idle
  kTransportGone,  // its transport ended
  kAddressLimit,   // refused at accept: too many from the client's address
  kTotalLimit,     // refused at accept: too many in all
  kTooManyPaths,   // its transport has its maximum of TCP connections
  kCount
};

// The expiry rule, sans-I/O (a fake clock tests it): a connection without a valid check lives `firstCheck` from
// its accept; one with valid checks lives `idle` after the last.
std::optional<TcpClose> tcpExpiry(TimePoint accepted, std::optional<TimePoint> lastValidCheck, TimePoint now,
                                  const TcpLimits& limits);

// A connection's write queue: whole frames (header and payload) or none; bounded. Sans-I/O.
class FrameQueue {
 public:
  explicit FrameQueue(size_t maxBytes) : max_(maxBytes) {}
  // Appends what `sent` bytes of the frame header+payload the socket did not take; false (nothing queued) when the
  // rest does not fit.
  bool push(std::span<const uint8_t> header, std::span<const uint8_t> payload, size_t sent);
  std::span<const uint8_t> front() const { return std::span(bytes_).subspan(start_); }
  void consume(size_t n);
  bool empty() const { return start_ == bytes_.size(); }
  size_t size() const { return bytes_.size() - start_; }
  size_t capacity() const { return bytes_.capacity(); }

 private:
  size_t max_;
  std::vector<uint8_t> bytes_;
  size_t start_ = 0;
};

using TcpId = net::SlotId;

// One process's ICE-TCP state shared by the workers' ports: the limits and the counts.
struct TcpShared {
  explicit TcpShared(TcpLimits l);
  TcpLimits limits;
  common::AddressLimits perAddress;
  std::atomic<size_t> connections{0};
};

struct TcpConnection;

// What a worker's port asks of the worker around it (media::Service::Worker). Called on the worker's loop.
class TcpPortIo {
 public:
  virtual ~TcpPortIo() = default;
  // The worker that owns the transport of kaiwa ufrag `ufrag`, or nullopt when the ufrag is none of kaiwa's.
  virtual std::optional<uint32_t> ownerOfUfrag(std::string_view ufrag) = 0;
  // Gives a connection to worker `owner`'s port (TcpPort::adopt there).
  virtual void handOver(uint32_t owner, std::unique_ptr<TcpConnection> connection) = 0;
  // A connection whose first frame names `ufrag` (of this worker): it now belongs to that transport. False (the
  // connection closes with `why`) when no transport has that ufrag or the transport has no room for it.
  virtual bool attach(std::string_view ufrag, TcpId connection, const common::Address& remote, net::SlotId& transport,
                      TcpClose& why) = 0;
  // A frame for the transport (STUN, DTLS, SRTP or SRTCP, in a buffer it may rewrite).
  virtual void onFrame(net::SlotId transport, std::span<uint8_t> frame, const common::Address& remote,
                       TimePoint now) = 0;
  // A batch of frames was delivered (the worker flushes what they made).
  virtual void afterFrames() = 0;
  // When the transport last had a valid check from this connection's path (nullopt: never, or no transport).
  virtual std::optional<TimePoint> lastValidCheck(net::SlotId transport, const common::Address& remote) = 0;
  // The connection ended (only for one attached to a transport).
  virtual void onTcpClosed(net::SlotId transport, TcpId connection) = 0;
};

// One worker's ICE-TCP listener and connections.
class TcpPort {
 public:
  TcpPort(net::Loop& loop, uint32_t worker, TcpShared& shared, TcpPortIo& io);
  ~TcpPort();
  TcpPort(const TcpPort&) = delete;
  TcpPort& operator=(const TcpPort&) = delete;

  // Listens on `local` (SO_REUSEPORT, shared with the other workers); an error message on failure.
  std::optional<std::string> listen(const common::Address& local);
  // A connection another worker accepted for a transport of this one.
  void adopt(std::unique_ptr<TcpConnection> connection);
  // Sends one frame. Never blocks: what the socket does not take is queued, and a frame that does not fit is
  // dropped (counted). A socket error ends the connection later, in a posted task, never inside this call.
  void send(TcpId id, std::span<const uint8_t> payload);
  // Ends a connection (its transport ended): the io hears no onTcpClosed for it.
  void close(TcpId id, TcpClose why);
  // Checks every connection's deadline (called every second).
  void expire(TimePoint now);

  size_t connections() const { return connections_.size(); }
  uint64_t queueDrops() const { return queueDrops_; }

 private:
  struct Listener final : net::Loop::Watcher {
    TcpPort* port = nullptr;
    void onReady(uint32_t) override { port->accept(); }
  };
  friend struct TcpConnection;
  void accept();
  void onReady(TcpId id, uint32_t events);
  void readFrames(TcpConnection& c, TcpId id, TimePoint now);
  // The first frame: a Binding request with a kaiwa ufrag; false when the connection left (closed or handed over).
  bool onFirstFrame(TcpConnection& c, TcpId id, std::span<uint8_t> frame, TimePoint now);
  bool flushQueue(TcpConnection& c);
  void end(TcpId id, TcpClose why, bool notify = true);
  void closeLater(TcpId id, TcpClose why);
  TcpId insert(std::unique_ptr<TcpConnection> connection);

  net::Loop& loop_;
  uint32_t worker_;
  TcpShared& shared_;
  TcpPortIo& io_;
  int fd_ = -1;
  net::Loop::WatchId watch_ = 0;
  Listener listener_;
  net::AcceptBackoff backoff_{std::chrono::milliseconds(50)};
  net::Loop::TimerId resume_ = 0;
  net::Slots<TcpConnection> connections_;
  uint64_t queueDrops_ = 0;
  // A frame starts wherever the one before it ended, but SRTP unprotects only at a 4-byte boundary
  // (srtp::Session): a frame that does not start at one is copied here first.
  alignas(16) std::array<uint8_t, kMaxTcpFrame> aligned_{};
};

// One ICE-TCP connection, owned by its worker's port (or by the task carrying it to another worker).
struct TcpConnection final : net::Loop::Watcher {
  TcpConnection(int fd, common::Address remote, TcpShared& shared, TimePoint accepted);
  ~TcpConnection();  // closes the descriptor and gives its place in the counts back
  TcpConnection(const TcpConnection&) = delete;
  TcpConnection& operator=(const TcpConnection&) = delete;

  void onReady(uint32_t events) override { port->onReady(id, events); }
  void onFailure() noexcept override;

  int fd;
  common::Address remote;
  std::string ip;  // remote's address in text (the per-address count's key)
  TcpShared& shared;
  TimePoint accepted;
  FrameReader reader{kMaxTcpFrame, 4 * (kMaxTcpFrame + kFrameHeader)};
  FrameQueue queue;
  std::vector<uint8_t> first;  // the first frame, carried along a hand-over
  TcpPort* port = nullptr;
  TcpId id = 0;
  net::Loop::WatchId watch = 0;
  std::optional<net::SlotId> transport;  // once attached
  bool writing = false;                  // EPOLLOUT is watched (the queue is not empty)
  bool closing = false;                  // a posted task ends it
};

}  // namespace kaiwa::media

#pragma once
// The TURN server (RFC 8656, with RFC 6156 address families) and STUN Binding (RFC 8489), sans-I/O: the I/O layer
// passes in what arrived on the listener or on a relay socket, with the current time, and the server answers
// through `TurnIo`. One `TurnServer` per worker: it owns the allocations whose 5-tuple reached that worker.
// Nothing on the relay path locks; the shared state is `Quotas` (relaxed atomics) and `Reservations` (a mutex, taken
// only for EVEN-PORT reservations, which are rare).
#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/clock.hpp"
#include "stun/address.hpp"
#include "stun/message.hpp"
#include "turn/credentials.hpp"
#include "turn/peer_filter.hpp"

namespace kaiwa::turn {

enum class Transport : uint8_t { kUdp, kTcp, kTls };

// The client side of a 5-tuple: the client's address and the listener connection it came on (0 for UDP).
struct ClientTuple {
  stun::Address client;
  uint64_t connection = 0;
  Transport transport = Transport::kUdp;
  friend bool operator==(const ClientTuple&, const ClientTuple&) = default;
};
struct ClientTupleHash {
  size_t operator()(const ClientTuple& t) const noexcept {
    return stun::AddressHash{}(t.client) ^ (size_t(t.connection) * 0x9E3779B97F4A7C15ull);
  }
};

using RelayId = uint32_t;
// A peer data connection of a TCP allocation (RFC 6062 CONNECTION-ID). The top 8 bits name the worker whose
// TurnServer made it (TurnServer::setWorkerIndex), so a ConnectionBind that reached another worker's listener can be
// handed to the owner.
using ConnectionId = uint32_t;
inline constexpr uint32_t connectionWorker(ConnectionId id) { return id >> 24; }

// RFC 6062 methods and attribute (stun/ has the RFC 8656 ones).
inline constexpr stun::Method kMethodConnect = stun::Method(0x000A);
inline constexpr stun::Method kMethodConnectionBind = stun::Method(0x000B);
inline constexpr stun::Method kMethodConnectionAttempt = stun::Method(0x000C);
inline constexpr uint16_t kAttrConnectionId = 0x002A;
// A relay socket bound for an EVEN-PORT reservation but not yet read from by any worker; any worker may adopt it
// (it then becomes one of that worker's relays) or release it. The I/O layer's handle (a file descriptor there).
using ReservedRelay = uint64_t;

struct RelayRequest {
  stun::Family family = stun::Family::kV4;
  bool evenPort = false;
  bool reserveNext = false;  // EVEN-PORT with R: keep port+1 for a later Allocate with the token
  bool dontFragment = false;
  bool tcp = false;  // RFC 6062: a TCP listening socket instead of a UDP one
};
struct OpenedRelay {
  RelayId id = 0;
  stun::Address address;                  // the relayed transport address as bound
  std::optional<ReservedRelay> reserved;  // port+1, bound and kept when reserveNext
  std::optional<stun::Address> reservedAddress;
};

// What the server asks of the I/O layer. Spans are valid only during the call.
class TurnIo {
 public:
  virtual ~TurnIo() = default;
  virtual std::optional<OpenedRelay> openRelay(const RelayRequest& request) = 0;
  virtual void closeRelay(RelayId id) = 0;
  // A reserved relay (OpenedRelay::reserved, possibly from another worker's TurnIo) becomes a relay of this one.
  virtual std::optional<RelayId> adoptRelay(ReservedRelay reserved) = 0;
  // Closes a reserved relay nobody adopted (from any worker's TurnIo).
  virtual void releaseReserved(ReservedRelay reserved) = 0;
  // Sends head + body + `pad` zero bytes to the client (one datagram on UDP, appended to the stream on TCP).
  virtual void sendToClient(const ClientTuple& to, std::span<const uint8_t> head, std::span<const uint8_t> body,
                            size_t pad) = 0;
  virtual void sendToPeer(RelayId from, const stun::Address& peer, std::span<const uint8_t> data) = 0;

  // TCP allocations (RFC 6062). Starts a TCP connection from TCP relay `from` (its relayed address) to `peer`; the
  // outcome comes back through TurnServer::onPeerConnected (never from inside this call). False: it could not start.
  virtual bool connectToPeer(RelayId /*from*/, ConnectionId /*id*/, const stun::Address& /*peer*/) { return false; }
  // Client connection `client` just got its ConnectionBind success response (already passed to sendToClient): from
  // now on it is a raw byte pipe to peer connection `id`, both ways, and no longer STUN-framed.
  virtual void bindConnection(ConnectionId /*id*/, const ClientTuple& /*client*/) {}
  // Closes peer connection `id` and, when bound, its client data connection. The server has already forgotten `id`:
  // no call back into it. Unknown ids are ignored.
  virtual void closeTcpConnection(ConnectionId /*id*/) {}
};

struct TurnLimits {
  std::chrono::seconds defaultLifetime{600};
  std::chrono::seconds maxLifetime{3600};
  std::chrono::seconds permissionLifetime{300};
  std::chrono::seconds channelLifetime{600};
  std::chrono::seconds reservationLifetime{30};
  uint32_t maxAllocationsPerUser = 32;      // per user; a REST username "EXPIRY:USER" counts as USER
  uint32_t maxAllocationsPerAddress = 512;  // per client IP (IPv6: per /64), over every worker; 0: unlimited
  uint32_t maxAllocations = 10000;          // in total, over every worker
  uint32_t maxPermissions = 64;             // per allocation
  uint32_t maxChannels = 64;                // per allocation
  uint64_t bytesPerSecond = 0;              // per allocation, both directions; 0: unlimited
  uint32_t unauthenticatedPerSecond = 100;  // per client IP (hashed), requests that get an error or a Binding answer
  // RFC 6062: how long a Connect may take (447 after), and how long a peer data connection waits for its
  // ConnectionBind (closed after); the RFC asks for at least 30 s for the first and exactly 30 s for the second.
  std::chrono::seconds tcpConnectTimeout{30};
  std::chrono::seconds tcpBindTimeout{30};
  uint32_t maxTcpConnections = 64;  // peer data connections per TCP allocation (Connect: 508; incoming: closed)
};

// Counters shared by every worker's TurnServer (relaxed atomics; per-user and per-address counts in hashed buckets,
// so a collision can only make a quota stricter).
struct Quotas {
  std::atomic<int64_t> allocations{0};
  std::array<std::atomic<int32_t>, 4096> perUser{};
  std::array<std::atomic<int32_t>, 4096> perAddress{};
};

// Which quota refused an Allocate: 486 per user or per client address, 508 in total.
enum class QuotaRefusal : uint8_t { kUser, kAddress, kTotal, kCount };

// EVEN-PORT reservations (RFC 8656 section 7.2: port+1 of an allocation with the R bit, kept for a later Allocate
// with the RESERVATION-TOKEN), shared by every worker's TurnServer: SO_REUSEPORT spreads the clients' 5-tuples over
// the workers, so the Allocate with the token may reach another worker than the one that reserved. Reservations are
// rare, so a mutex guards them; the relay path never touches this.
class Reservations {
 public:
  struct Entry {
    ReservedRelay relay = 0;
    stun::Address address;
    TimePoint expiry{};
    const void* owner = nullptr;  // the TurnServer that made it (it releases what is left when it goes)
  };
  // Keeps `entry` under a fresh random token (never 0), which it returns.
  uint64_t add(const Entry& entry);
  // Removes and returns the entry of `token`, if any (expired or not).
  std::optional<Entry> take(uint64_t token);
  // Removes and returns the entries that expired by `now`, or those made by `owner` (any expiry).
  std::vector<Entry> takeExpired(TimePoint now);
  std::vector<Entry> takeOwnedBy(const void* owner);
  size_t size() const;

 private:
  mutable std::mutex mutex_;
  std::unordered_map<uint64_t, Entry> entries_;
};

// Why a packet from a client or a peer was dropped.
enum class TurnDrop : uint8_t {
  kMalformed,
  kNoAllocation,
  kNoPermission,
  kNoChannel,
  kRateLimited,
  kBandwidth,
  kUnexpected,
  kCount
};

struct TurnStats {
  uint64_t channelDataIn = 0, channelDataOut = 0;  // client→peer and peer→client through channels
  uint64_t sendIndications = 0, dataIndications = 0;
  uint64_t bytesToPeers = 0, bytesToClients = 0;
  uint64_t authFailures = 0;
  uint64_t bindingRequests = 0;
  // TCP allocations: peer data connections made (Connect succeeded or a peer connected in), joined to a client
  // data connection (ConnectionBind), and the bytes piped through them.
  uint64_t tcpConnections = 0, tcpBinds = 0;
  uint64_t tcpBytesToPeers = 0, tcpBytesToClients = 0;
  std::array<uint64_t, size_t(TurnDrop::kCount)> drops{};
  std::array<uint64_t, size_t(QuotaRefusal::kCount)> quotaRefusals{};
};

class TurnServer {
 public:
  TurnServer(TurnIo& io, std::shared_ptr<const Credentials> credentials, std::shared_ptr<const PeerFilter> filter,
             TurnLimits limits, std::shared_ptr<Quotas> quotas, std::shared_ptr<Reservations> reservations = nullptr,
             std::string software = "kaiwa");
  // Credentials that may be replaced while it runs (CredentialsSlot::store, from any thread): each authentication
  // uses the slot's latest.
  TurnServer(TurnIo& io, std::shared_ptr<CredentialsSlot> credentials, std::shared_ptr<const PeerFilter> filter,
             TurnLimits limits, std::shared_ptr<Quotas> quotas, std::shared_ptr<Reservations> reservations = nullptr,
             std::string software = "kaiwa");
  ~TurnServer();

  // Bytes that arrived from a client (one datagram on UDP; one framed message on TCP). `now` is monotonic;
  // `nowUnix` is wall-clock seconds, for REST credential expiry.
  void onClientPacket(const ClientTuple& from, std::span<const uint8_t> bytes, TimePoint now, int64_t nowUnix);
  // A datagram that arrived on a relay socket from `peer`.
  void onPeerPacket(RelayId relay, const stun::Address& peer, std::span<const uint8_t> bytes, TimePoint now);
  // Expires allocations, permissions, channels and reservations; call about once a second.
  void tick(TimePoint now);
  // A TCP/TLS client connection closed: its allocation goes with it.
  void onConnectionClosed(const ClientTuple& tuple);

  // TCP allocations (RFC 6062).
  // The I/O accepted a TCP connection from `peer` on TCP relay `relay`: its CONNECTION-ID when the allocation has a
  // permission for the peer (the client got a ConnectionAttempt indication; the I/O keeps the connection unread
  // until it is bound), nullopt when the I/O must close it.
  std::optional<ConnectionId> onPeerAccepted(RelayId relay, const stun::Address& peer, TimePoint now);
  // The connection a Connect request started (TurnIo::connectToPeer) is established, or failed.
  void onPeerConnected(ConnectionId id, bool ok, TimePoint now);
  // A bound pipe's peer or client data connection closed (the I/O closes the other side itself).
  void onTcpConnectionClosed(ConnectionId id);
  // `bytes` went through bound connection `id` (to the peer or to the client): counted and charged to the
  // allocation's bandwidth. Returns when the side that sent them may be read again (`now` within the budget).
  TimePoint onTcpRelayed(ConnectionId id, size_t bytes, bool toPeer, TimePoint now);
  // The worker index put in the top 8 bits of the CONNECTION-IDs this server makes (see connectionWorker).
  void setWorkerIndex(uint32_t index) { workerIndex_ = index & 0xFF; }
  bool hasAllocation(const ClientTuple& tuple) const { return allocations_.count(tuple) != 0; }
  size_t tcpConnectionCount() const { return tcpConns_.size(); }

  size_t allocationCount() const { return allocations_.size(); }
  size_t permissionCount() const;
  size_t channelCount() const;
  const TurnStats& stats() const { return stats_; }

  struct Allocation;

 private:
  void handleStun(const ClientTuple& from, const stun::Message& m, TimePoint now, int64_t nowUnix);
  void handleChannelData(const ClientTuple& from, std::span<const uint8_t> bytes, TimePoint now);
  void handleSend(const ClientTuple& from, const stun::Message& m, TimePoint now);
  void handleAllocate(const ClientTuple& from, const stun::Message& m, const Key& key, std::string_view user,
                      bool sha256, TimePoint now);
  void handleRefresh(Allocation& a, const stun::Message& m, TimePoint now);
  void handleCreatePermission(Allocation& a, const stun::Message& m, TimePoint now);
  void handleChannelBind(Allocation& a, const stun::Message& m, TimePoint now);
  void handleConnect(Allocation& a, const stun::Message& m, TimePoint now);
  void handleConnectionBind(const ClientTuple& from, const stun::Message& m, const Key& key, std::string_view user,
                            bool sha256);
  void connectResult(Allocation& a, ConnectionId id, const stun::TransactionId& tx, bool fingerprint,
                     std::optional<int> error);
  void forgetTcpConnection(ConnectionId id, bool closeIo);
  ConnectionId newConnectionId();
  void refill(Allocation& a, TimePoint now);

  void sendError(const ClientTuple& to, const stun::Message& m, int code, std::string_view reason,
                 const Key* key = nullptr, bool sha256 = false, std::span<const uint16_t> unknown = {},
                 std::optional<std::string_view> nonce = std::nullopt);
  void sendSuccess(const ClientTuple& to, const stun::Message& m, stun::Builder& b, const Key& key, bool sha256);
  bool unauthenticatedAllowed(const stun::Address& from, TimePoint now);
  bool spendBandwidth(Allocation& a, size_t bytes, TimePoint now);
  void removeAllocation(const ClientTuple& tuple);
  Allocation* findByClient(const ClientTuple& t);
  void drop(TurnDrop why) { ++stats_.drops[size_t(why)]; }

  TurnIo& io_;
  std::shared_ptr<CredentialsSlot> credentialSlot_;
  uint64_t credentialGeneration_ = 0;
  std::shared_ptr<const Credentials> credentials_;  // the slot's, as of credentialGeneration_
  std::shared_ptr<const PeerFilter> filter_;
  TurnLimits limits_;
  std::shared_ptr<Quotas> quotas_;
  std::string software_;
  std::unordered_map<ClientTuple, std::unique_ptr<Allocation>, ClientTupleHash> allocations_;
  std::unordered_map<RelayId, Allocation*> byRelay_;
  std::shared_ptr<Reservations> reservations_;
  struct Bucket {
    uint64_t ipHash = 0;
    double tokens = 0;
    TimePoint last{};
  };
  std::vector<Bucket> unauthBuckets_;
  std::vector<uint8_t> scratch_;
  TurnStats stats_;
  uint64_t nextToken_ = 0;
  // Peer data connections of TCP allocations, by CONNECTION-ID.
  struct TcpConnection {
    enum class State : uint8_t { kConnecting, kPending, kBound } state = State::kConnecting;
    ClientTuple owner;  // the allocation's control connection
    stun::Address peer;
    TimePoint deadline{};  // kConnecting: the Connect times out (447); kPending: no ConnectionBind came
    stun::TransactionId connectTx{};
    bool fingerprint = false;  // the Connect request had one: so has its answer
  };
  std::unordered_map<ConnectionId, TcpConnection> tcpConns_;
  uint32_t workerIndex_ = 0;
};

// The CONNECTION-ID of a ConnectionBind request (RFC 6062), if `frame` is one; for routing it to its worker.
std::optional<ConnectionId> connectionBindId(std::span<const uint8_t> frame);

// ChannelData (RFC 8656 section 12.4): channel number, length, data; padded to 4 bytes over TCP. RFC 8656 narrowed
// channel numbers to 0x4000-0x4FFF; RFC 5766's 0x4000-0x7FFE is accepted because clients (coturn's among them) still
// pick numbers up to 0x7FFE.
struct ChannelData {
  uint16_t channel;
  std::span<const uint8_t> data;
  static std::optional<ChannelData> parse(std::span<const uint8_t> bytes);
};
inline constexpr bool isChannelNumber(uint16_t n) { return n >= 0x4000 && n <= 0x7FFE; }

// Framing of a TCP/TLS stream: the length of the first message (STUN or ChannelData, with ChannelData padding), if
// `bytes` holds enough to know; 0 when the stream is not STUN/TURN (the connection should be closed).
std::optional<size_t> tcpFrameLength(std::span<const uint8_t> bytes);

}  // namespace kaiwa::turn

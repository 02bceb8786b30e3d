#pragma once
// Process-wide counters and gauges, rendered in the Prometheus text format at GET /metrics.
// The counters bumped for every signaling message (Count) are kept per thread, written by that thread alone with a
// plain load and store, and summed by the scrape. The rest of the registry is relaxed atomics shared by the workers:
// they change per connection, join or drop, not per message.
#include <array>
#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>

namespace kaiwa::metrics {

// The per-message signaling counters, kept per thread (count(), total()).
enum class Count : uint8_t {
  kMessagesIn,   // kaiwa_messages_in_total
  kMessagesOut,  // kaiwa_messages_out_total
  kBytesIn,      // kaiwa_bytes_in_total
  kBytesOut,     // kaiwa_bytes_out_total
  kCount
};

// One thread's per-message counters. Only the owning thread writes them; the scrape reads them from another
// thread, so they are atomics, but written with a relaxed load and store: no locked instruction, a plain increment.
struct ThreadCounts {
  std::array<std::atomic<uint64_t>, static_cast<size_t>(Count::kCount)> values{};
};

namespace detail {
// This thread's slot, set on its first count. A slot outlives its thread: the next thread to start counting reuses
// it and adds to it, so totals never go down.
inline thread_local ThreadCounts* threadCounts = nullptr;
ThreadCounts& attachThread();
}  // namespace detail

// Adds n to this thread's counter c.
inline void count(Count c, uint64_t n = 1) {
  ThreadCounts* slot = detail::threadCounts;
  if (slot == nullptr) [[unlikely]]
    slot = &detail::attachThread();
  std::atomic<uint64_t>& v = slot->values[static_cast<size_t>(c)];
  v.store(v.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
}

// The sum of counter c over every thread that ever counted.
uint64_t total(Count c);

// Why an incoming message or connection was dropped. Keep kDropReasonNames in sync.
enum class Drop : uint8_t {
  kMalformed,     // not a valid message of its protocol
  kTooLarge,      // over the size limit
  kRateLimited,   // over the per-peer message rate
  kUnknownPeer,   // addressed to nobody
  kSlowConsumer,  // a connection whose queued bytes passed the limit was closed
  kQueueFull,     // a detached peer's resume queue overflowed
  kHttpBad,       // unparsable HTTP request
  kTlsBad,        // a WSS connection whose TLS records failed (closed)
  kCount
};
inline constexpr std::array<std::string_view, static_cast<size_t>(Drop::kCount)> kDropReasonNames = {
    "malformed", "too_large", "rate_limited", "unknown_peer", "slow_consumer", "queue_full", "http_bad", "tls_bad"};

// Why the TURN service dropped a packet: turn::TurnDrop in order, then failed sends, then datagrams the kernel
// dropped on a worker's listening UDP socket because its receive buffer was full (the worker fell behind).
inline constexpr std::array<std::string_view, 9> kTurnDropNames = {"malformed",  "no_allocation", "no_permission",
                                                                   "no_channel", "rate_limited",  "bandwidth",
                                                                   "unexpected", "send_failed",   "socket_buffer"};
inline constexpr std::size_t kTurnDropSocketBuffer = 8;
// Which quota refused a TURN Allocate: turn::QuotaRefusal in order.
inline constexpr std::array<std::string_view, 3> kTurnQuotaNames = {"user", "address", "total"};
// Why the TURN service closed a TCP/TLS client connection on a timeout (turn/service.cpp).
inline constexpr std::array<std::string_view, 4> kTurnTimeoutNames = {"tls_handshake", "no_allocation", "partial_frame",
                                                                      "idle"};

// What a client address was refused (common::AddressRefusal in order).
inline constexpr std::array<std::string_view, 6> kAddressRefusalNames = {
    "connections", "connect_rate", "handshake_rate", "polling_sessions", "polling_sessions_total", "room_rate"};

// Why the SFU dropped a packet: sfu::RouterCounters' drops in order, then the media port's own (a datagram no
// transport takes, a send the kernel refused, a packet that could not be protected or sent).
inline constexpr std::array<std::string_view, 11> kSfuDropNames = {
    "bad_rtp",    "unknown_ssrc", "publisher_rtx",         "unmapped_payload_type", "unmapped_extension", "too_large",
    "queue_full", "bad_rtcp",     "unknown_feedback_ssrc", "no_transport",          "send_failed"};
// Why the SFU's data channel relay dropped a message (sfu::DataRelayCounters and media/service.cpp, in this order).
inline constexpr std::array<std::string_view, 8> kSfuDataDropNames = {
    "malformed", "unknown_target", "buffer_full", "too_big", "deferred", "not_relayed", "channel_refused", "sctp"};
// Why ICE-TCP connections on the media port ended (media::TcpClose, in its order).
inline constexpr std::array<std::string_view, 12> kSfuTcpCloseNames = {
    "peer",     "error", "too_large",      "bad_first_frame", "unknown_ufrag", "bad_check",
    "no_check", "idle",  "transport_gone", "address_limit",   "total_limit",   "too_many_paths"};

struct Registry {
  std::atomic<int64_t> httpConnections{0};  // open TCP/TLS connections (HTTP and WebSocket)
  std::atomic<int64_t> wsConnections{0};    // open WebSocket connections
  std::atomic<int64_t> rooms{0};
  std::atomic<int64_t> peers{0};          // room members, attached or detached
  std::atomic<int64_t> detachedPeers{0};  // waiting for a resume within the grace period
  std::atomic<uint64_t> httpRequests{0};
  std::atomic<uint64_t> errorsSent{0};  // error replies sent to clients
  std::atomic<uint64_t> joins{0};
  std::atomic<uint64_t> resumes{0};
  std::atomic<uint64_t> wsHandovers{0};      // WebSockets moved to the worker owning their room before the upgrade
  std::atomic<uint64_t> wsMoves{0};          // ... and after it, when they joined (WsConnection::moveTo)
  std::atomic<uint64_t> handlerFailures{0};  // event handlers that threw (their connection or job was ended)
  std::array<std::atomic<uint64_t>, static_cast<size_t>(Drop::kCount)> dropped{};
  std::array<std::atomic<uint64_t>, kAddressRefusalNames.size()> addressRefused{};  // by kAddressRefusalNames
  // TURN/STUN (turn/service.cpp publishes each worker's counts about once a second).
  std::atomic<int64_t> turnAllocations{0};
  std::atomic<int64_t> turnPermissions{0};
  std::atomic<int64_t> turnChannels{0};
  std::atomic<uint64_t> turnChannelDataIn{0};   // client → peer
  std::atomic<uint64_t> turnChannelDataOut{0};  // peer → client
  std::atomic<uint64_t> turnSendIndications{0};
  std::atomic<uint64_t> turnDataIndications{0};
  std::atomic<uint64_t> turnBytesToPeers{0};
  std::atomic<uint64_t> turnBytesToClients{0};
  std::atomic<uint64_t> turnAuthFailures{0};
  std::atomic<uint64_t> turnBindingRequests{0};
  std::atomic<int64_t> turnTcpConnections{0};        // RFC 6062 peer data connections (pending or bound)
  std::atomic<uint64_t> turnTcpConnectionsTotal{0};  // peer data connections made (Connect or accepted)
  std::atomic<uint64_t> turnTcpBinds{0};             // client data connections bound (ConnectionBind)
  std::atomic<uint64_t> turnTcpBytesToPeers{0};
  std::atomic<uint64_t> turnTcpBytesToClients{0};
  std::array<std::atomic<uint64_t>, kTurnDropNames.size()> turnDropped{};        // by kTurnDropNames
  std::array<std::atomic<uint64_t>, kTurnQuotaNames.size()> turnQuotaRefused{};  // Allocates refused, by quota
  std::array<std::atomic<uint64_t>, kTurnTimeoutNames.size()> turnTimeouts{};    // TCP/TLS connections timed out
  std::atomic<uint64_t> turnAcceptErrors{0};
  // The SFU (media/service.cpp publishes each worker's counts about once a second).
  std::atomic<int64_t> sfuTransports{0};
  std::atomic<uint64_t> sfuRtpIn{0};      // RTP packets from publishers
  std::atomic<uint64_t> sfuForwarded{0};  // copies queued for subscribers
  std::atomic<uint64_t> sfuKeyframeRequests{0};
  std::atomic<uint64_t> sfuNackRetransmitted{0};
  std::atomic<uint64_t> sfuNacksSent{0};     // NACK packets sent to publishers for what the SFU lost
  std::atomic<uint64_t> sfuRtxUnwrapped{0};  // publishers' RTX packets turned back into the original
  std::atomic<uint64_t> sfuRtxRecovered{0};  // of those, the ones that filled a hole and were forwarded
  std::atomic<uint64_t> sfuSenderReports{0};
  std::atomic<uint64_t> sfuReceiverReports{0};
  std::atomic<uint64_t> sfuBadAudioLevel{0};         // RFC 6464 audio level elements of the wrong size (ignored)
  std::atomic<uint64_t> sfuLayerSwitches{0};         // simulcast layer changes (spatial or temporal) for subscribers
  std::atomic<uint64_t> sfuTransportFeedbackIn{0};   // transport-cc messages from subscribers, to their estimators
  std::atomic<uint64_t> sfuTransportFeedbackOut{0};  // transport-cc messages sent to publishers
  std::atomic<uint64_t> sfuProbePackets{0};          // packets sent again as padding so that an estimate can grow
  std::atomic<uint64_t> sfuProbeBytes{0};
  std::atomic<int64_t> sfuBweSubscribers{0};      // subscribers with a bandwidth estimate (transport-cc negotiated)
  std::atomic<int64_t> sfuBweEstimateSum{0};      // the sum of their estimates, bits per second
  std::atomic<int64_t> sfuLossySubscriptions{0};  // whose subscriber last reported at least 5 % lost
  std::atomic<uint64_t> sfuSubscribeRestarts{0};  // subscribe-restart requests granted
  std::atomic<uint64_t> sfuSubscribeRestartsRefused{0};  // refused: asked again too soon
  std::atomic<uint64_t> sfuIceRestarts{0};               // ICE restarts: native publish re-offers and WHIP/WHEP PATCHes
  std::atomic<uint64_t> recordingsStarted{0};            // rooms' recordings started
  std::atomic<uint64_t> recordingsFailed{0};             // recordings stopped by a failed write or a full disk
  std::array<std::atomic<uint64_t>, kSfuDropNames.size()>
      sfuDropped{};  // failed accept() on the TURN TCP/TLS listeners (EMFILE, ENFILE, ...)

  // The SFU's data channel relay (sfu/data_relay.hpp).
  std::atomic<uint64_t> sfuDataMessagesIn{0};  // messages from members' `kaiwa` channels
  std::atomic<uint64_t> sfuDataBytesIn{0};
  std::atomic<uint64_t> sfuDataDelivered{0};  // copies handed to receivers' associations
  std::atomic<uint64_t> sfuDataBytesDelivered{0};
  std::array<std::atomic<uint64_t>, kSfuDataDropNames.size()> sfuDataDropped{};

  // ICE-TCP on the SFU's media port (media/tcp_port.cpp).
  std::atomic<int64_t> sfuTcpConnections{0};    // ICE-TCP connections on the media port
  std::atomic<uint64_t> sfuTcpHandovers{0};     // connections accepted by a worker for another one's transport
  std::atomic<uint64_t> sfuTcpQueueDropped{0};  // frames dropped because a connection's write queue was full
  std::array<std::atomic<uint64_t>, kSfuTcpCloseNames.size()> sfuTcpClosed{};  // by kSfuTcpCloseNames

  void drop(Drop why) { dropped[static_cast<size_t>(why)].fetch_add(1, std::memory_order_relaxed); }
  uint64_t droppedCount(Drop why) const { return dropped[static_cast<size_t>(why)].load(std::memory_order_relaxed); }
};

Registry& registry();

inline void add(std::atomic<uint64_t>& c, uint64_t n = 1) { c.fetch_add(n, std::memory_order_relaxed); }
inline void add(std::atomic<int64_t>& g, int64_t n) { g.fetch_add(n, std::memory_order_relaxed); }

// The whole registry in Prometheus text exposition format 0.0.4.
std::string renderPrometheus();

}  // namespace kaiwa::metrics

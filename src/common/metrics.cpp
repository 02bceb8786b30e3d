#include "common/metrics.hpp"

#include <fmt/format.h>

#include <deque>
#include <mutex>
#include <vector>

namespace kaiwa::metrics {

Registry& registry() {
  static Registry r;
  return r;
}

namespace {

// Every thread's per-message counters. The mutex is taken when a thread starts or stops counting and by the scrape,
// never per message.
struct Slots {
  std::mutex mutex;
  std::deque<ThreadCounts> all;  // a deque keeps the slots where they are as it grows
  std::vector<ThreadCounts*> free;
};

// Never destroyed: a thread may still count while the process exits.
Slots& slots() {
  static Slots* s = new Slots;
  return *s;
}

// Gives the thread's slot back when the thread ends, for the next thread to continue.
struct Lease {
  ThreadCounts* slot = nullptr;
  ~Lease();
};

// Set once this thread's Lease is destroyed (a trivial thread_local, so it can still be read after that).
thread_local bool leaseGone = false;

Lease::~Lease() {
  Slots& s = slots();
  std::lock_guard lock(s.mutex);
  s.free.push_back(slot);
  detail::threadCounts = nullptr;
  leaseGone = true;
}

}  // namespace

namespace detail {

ThreadCounts& attachThread() {
  Slots& s = slots();
  ThreadCounts* slot = nullptr;
  {
    std::lock_guard lock(s.mutex);
    // A thread that counts from another thread_local's destructor, after its Lease is gone, gets a slot of its own
    // that is never given back (nothing would give it back), so no other thread ever writes to it.
    if (!s.free.empty() && !leaseGone) {
      slot = s.free.back();
      s.free.pop_back();
    } else {
      slot = &s.all.emplace_back();
    }
  }
  if (!leaseGone) {
    static thread_local Lease lease;
    lease.slot = slot;
  }
  threadCounts = slot;
  return *slot;
}

}  // namespace detail

uint64_t total(Count c) {
  Slots& s = slots();
  std::lock_guard lock(s.mutex);
  uint64_t sum = 0;
  for (const ThreadCounts& t : s.all) sum += t.values[static_cast<size_t>(c)].load(std::memory_order_relaxed);
  return sum;
}

namespace {

template <typename T>
void emit(std::string& out, std::string_view name, std::string_view type, std::string_view help,
          const std::atomic<T>& v) {
  fmt::format_to(std::back_inserter(out), "# HELP {0} {1}\n# TYPE {0} {2}\n{0} {3}\n", name, help, type,
                 v.load(std::memory_order_relaxed));
}

void emit(std::string& out, std::string_view name, std::string_view help, Count c) {
  fmt::format_to(std::back_inserter(out), "# HELP {0} {1}\n# TYPE {0} counter\n{0} {2}\n", name, help, total(c));
}

}  // namespace

std::string renderPrometheus() {
  const Registry& r = registry();
  std::string out;
  out.reserve(2048);
  emit(out, "kaiwa_connections", "gauge", "Open HTTP/WebSocket connections.", r.httpConnections);
  emit(out, "kaiwa_websocket_connections", "gauge", "Open WebSocket connections.", r.wsConnections);
  emit(out, "kaiwa_rooms", "gauge", "Signaling rooms.", r.rooms);
  emit(out, "kaiwa_peers", "gauge", "Room members, attached or waiting for a resume.", r.peers);
  emit(out, "kaiwa_peers_detached", "gauge", "Room members waiting for a resume.", r.detachedPeers);
  emit(out, "kaiwa_http_requests_total", "counter", "HTTP requests served.", r.httpRequests);
  emit(out, "kaiwa_messages_in_total", "Signaling messages received.", Count::kMessagesIn);
  emit(out, "kaiwa_messages_out_total", "Signaling messages sent.", Count::kMessagesOut);
  emit(out, "kaiwa_bytes_in_total", "Signaling bytes received.", Count::kBytesIn);
  emit(out, "kaiwa_bytes_out_total", "Signaling bytes sent.", Count::kBytesOut);
  emit(out, "kaiwa_errors_total", "counter", "Error replies sent to clients.", r.errorsSent);
  emit(out, "kaiwa_joins_total", "counter", "Successful room joins.", r.joins);
  emit(out, "kaiwa_resumes_total", "counter", "Successful session resumes.", r.resumes);
  emit(out, "kaiwa_ws_handovers_total", "counter",
       "WebSocket connections handed to the worker that owns their room before the upgrade.", r.wsHandovers);
  emit(out, "kaiwa_ws_moves_total", "counter",
       "Open WebSocket connections moved to the worker of the room they joined (no room named in the upgrade).",
       r.wsMoves);
  emit(out, "kaiwa_handler_failures_total", "counter",
       "Event handlers that threw: the connection or job they served was ended, the worker went on.",
       r.handlerFailures);
  out += "# HELP kaiwa_dropped_total Messages or connections dropped, by reason.\n# TYPE kaiwa_dropped_total counter\n";
  for (size_t i = 0; i < kDropReasonNames.size(); ++i) {
    fmt::format_to(std::back_inserter(out), "kaiwa_dropped_total{{reason=\"{}\"}} {}\n", kDropReasonNames[i],
                   r.dropped[i].load(std::memory_order_relaxed));
  }
  out +=
      "# HELP kaiwa_address_refused_total What client addresses were refused by the per-address limits, by "
      "limit.\n# TYPE kaiwa_address_refused_total counter\n";
  for (size_t i = 0; i < kAddressRefusalNames.size(); ++i) {
    fmt::format_to(std::back_inserter(out), "kaiwa_address_refused_total{{limit=\"{}\"}} {}\n", kAddressRefusalNames[i],
                   r.addressRefused[i].load(std::memory_order_relaxed));
  }
  emit(out, "kaiwa_turn_allocations", "gauge", "TURN allocations.", r.turnAllocations);
  emit(out, "kaiwa_turn_permissions", "gauge", "TURN permissions.", r.turnPermissions);
  emit(out, "kaiwa_turn_channels", "gauge", "TURN channel bindings.", r.turnChannels);
  emit(out, "kaiwa_turn_channeldata_in_total", "counter", "ChannelData messages relayed client to peer.",
       r.turnChannelDataIn);
  emit(out, "kaiwa_turn_channeldata_out_total", "counter", "ChannelData messages relayed peer to client.",
       r.turnChannelDataOut);
  emit(out, "kaiwa_turn_send_indications_total", "counter", "Send indications relayed.", r.turnSendIndications);
  emit(out, "kaiwa_turn_data_indications_total", "counter", "Data indications sent.", r.turnDataIndications);
  emit(out, "kaiwa_turn_bytes_to_peers_total", "counter", "Payload bytes relayed to peers.", r.turnBytesToPeers);
  emit(out, "kaiwa_turn_bytes_to_clients_total", "counter", "Payload bytes relayed to clients.", r.turnBytesToClients);
  emit(out, "kaiwa_turn_auth_failures_total", "counter", "TURN requests with wrong credentials.", r.turnAuthFailures);
  emit(out, "kaiwa_stun_binding_requests_total", "counter", "STUN Binding requests answered.", r.turnBindingRequests);
  emit(out, "kaiwa_turn_tcp_connections", "gauge", "TURN TCP allocations' peer data connections.",
       r.turnTcpConnections);
  emit(out, "kaiwa_turn_tcp_connections_total", "counter", "TURN TCP peer data connections made.",
       r.turnTcpConnectionsTotal);
  emit(out, "kaiwa_turn_tcp_binds_total", "counter", "TURN TCP client data connections bound.", r.turnTcpBinds);
  emit(out, "kaiwa_turn_tcp_bytes_to_peers_total", "counter", "Bytes piped to peers over TCP relays.",
       r.turnTcpBytesToPeers);
  emit(out, "kaiwa_turn_tcp_bytes_to_clients_total", "counter", "Bytes piped to clients over TCP relays.",
       r.turnTcpBytesToClients);
  emit(out, "kaiwa_sfu_transports", "gauge", "SFU transports (WHIP publishers and WHEP viewers).", r.sfuTransports);
  emit(out, "kaiwa_sfu_rtp_in_total", "counter", "RTP packets received from SFU publishers.", r.sfuRtpIn);
  emit(out, "kaiwa_sfu_forwarded_total", "counter", "RTP packets forwarded to SFU subscribers.", r.sfuForwarded);
  emit(out, "kaiwa_sfu_keyframe_requests_total", "counter", "PLIs sent to SFU publishers.", r.sfuKeyframeRequests);
  emit(out, "kaiwa_sfu_nack_retransmitted_total", "counter", "Packets sent again to SFU subscribers for a NACK.",
       r.sfuNackRetransmitted);
  emit(out, "kaiwa_sfu_nacks_sent_total", "counter", "NACK packets sent to SFU publishers for packets lost on the way.",
       r.sfuNacksSent);
  emit(out, "kaiwa_sfu_rtx_unwrapped_total", "counter",
       "RTX packets from SFU publishers turned back into the original.", r.sfuRtxUnwrapped);
  emit(out, "kaiwa_sfu_rtx_recovered_total", "counter",
       "Packets lost on the way from SFU publishers, recovered by RTX and forwarded.", r.sfuRtxRecovered);
  emit(out, "kaiwa_sfu_sender_reports_total", "counter", "RTCP Sender Reports sent to SFU subscribers.",
       r.sfuSenderReports);
  emit(out, "kaiwa_sfu_receiver_reports_total", "counter", "RTCP Receiver Reports sent to SFU publishers.",
       r.sfuReceiverReports);
  emit(out, "kaiwa_sfu_bad_audio_level_total", "counter",
       "RFC 6464 audio level elements of the wrong size in SFU publishers' audio (ignored by the active speaker).",
       r.sfuBadAudioLevel);
  emit(out, "kaiwa_sfu_layer_switches_total", "counter",
       "Simulcast layer changes (spatial or temporal) of what SFU subscribers are forwarded.", r.sfuLayerSwitches);
  emit(out, "kaiwa_sfu_transport_feedback_received_total", "counter",
       "transport-cc feedback messages from SFU subscribers, given to their bandwidth estimators.",
       r.sfuTransportFeedbackIn);
  emit(out, "kaiwa_sfu_transport_feedback_sent_total", "counter",
       "transport-cc feedback messages sent to SFU publishers.", r.sfuTransportFeedbackOut);
  emit(out, "kaiwa_sfu_probe_packets_total", "counter",
       "Packets sent to SFU subscribers again as padding, so that their bandwidth estimate can grow.",
       r.sfuProbePackets);
  emit(out, "kaiwa_sfu_probe_bytes_total", "counter", "Bytes of those padding packets.", r.sfuProbeBytes);
  fmt::format_to(std::back_inserter(out),
                 "# HELP kaiwa_sfu_bwe_estimate_bps SFU subscribers' bandwidth estimates (transport-cc): their count "
                 "and sum, bits per second.\n# TYPE kaiwa_sfu_bwe_estimate_bps summary\n"
                 "kaiwa_sfu_bwe_estimate_bps_sum {}\nkaiwa_sfu_bwe_estimate_bps_count {}\n",
                 r.sfuBweEstimateSum.load(std::memory_order_relaxed),
                 r.sfuBweSubscribers.load(std::memory_order_relaxed));
  emit(out, "kaiwa_sfu_lossy_subscriptions", "gauge",
       "SFU subscriptions whose subscriber last reported at least 5 % of packets lost.", r.sfuLossySubscriptions);
  emit(out, "kaiwa_sfu_subscribe_restarts_total", "counter",
       "subscribe-restart requests that got a new subscribe connection.", r.sfuSubscribeRestarts);
  emit(out, "kaiwa_sfu_subscribe_restarts_refused_total", "counter",
       "subscribe-restart requests refused for coming too soon after the last one.", r.sfuSubscribeRestartsRefused);
  emit(out, "kaiwa_sfu_ice_restarts_total", "counter",
       "ICE restarts of SFU transports (native publish re-offers, WHIP and WHEP PATCHes).", r.sfuIceRestarts);
  emit(out, "kaiwa_recordings_started_total", "counter", "Room recordings started (record-start).",
       r.recordingsStarted);
  emit(out, "kaiwa_recordings_failed_total", "counter",
       "Room recordings stopped by a failed write or a disk under the free space kept.", r.recordingsFailed);
  out += "# HELP kaiwa_sfu_dropped_total SFU packets dropped, by reason.\n# TYPE kaiwa_sfu_dropped_total counter\n";
  for (size_t i = 0; i < kSfuDropNames.size(); ++i) {
    fmt::format_to(std::back_inserter(out), "kaiwa_sfu_dropped_total{{reason=\"{}\"}} {}\n", kSfuDropNames[i],
                   r.sfuDropped[i].load(std::memory_order_relaxed));
  }
  emit(out, "kaiwa_sfu_data_messages_total", "counter", "Messages from SFU members' data channels (the relay).",
       r.sfuDataMessagesIn);
  emit(out, "kaiwa_sfu_data_bytes_total", "counter", "Bytes of messages from SFU members' data channels.",
       r.sfuDataBytesIn);
  emit(out, "kaiwa_sfu_data_delivered_total", "counter", "Message copies the SFU's data relay handed to receivers.",
       r.sfuDataDelivered);
  emit(out, "kaiwa_sfu_data_delivered_bytes_total", "counter", "Bytes the SFU's data relay handed to receivers.",
       r.sfuDataBytesDelivered);
  out +=
      "# HELP kaiwa_sfu_data_dropped_total SFU data channel messages dropped, by reason.\n"
      "# TYPE kaiwa_sfu_data_dropped_total counter\n";
  for (size_t i = 0; i < kSfuDataDropNames.size(); ++i) {
    fmt::format_to(std::back_inserter(out), "kaiwa_sfu_data_dropped_total{{reason=\"{}\"}} {}\n", kSfuDataDropNames[i],
                   r.sfuDataDropped[i].load(std::memory_order_relaxed));
  }
  emit(out, "kaiwa_sfu_tcp_connections", "gauge", "ICE-TCP connections on the SFU's media port.", r.sfuTcpConnections);
  emit(out, "kaiwa_sfu_tcp_handovers_total", "counter",
       "ICE-TCP connections accepted by one worker and handed to the worker that owns their transport.",
       r.sfuTcpHandovers);
  emit(out, "kaiwa_sfu_tcp_queue_dropped_total", "counter",
       "Frames dropped because an ICE-TCP connection's write queue was full (a slow reader).", r.sfuTcpQueueDropped);
  out +=
      "# HELP kaiwa_sfu_tcp_closed_total ICE-TCP connections ended or refused, by reason.\n"
      "# TYPE kaiwa_sfu_tcp_closed_total counter\n";
  for (size_t i = 0; i < kSfuTcpCloseNames.size(); ++i) {
    fmt::format_to(std::back_inserter(out), "kaiwa_sfu_tcp_closed_total{{reason=\"{}\"}} {}\n", kSfuTcpCloseNames[i],
                   r.sfuTcpClosed[i].load(std::memory_order_relaxed));
  }
  out += "# HELP kaiwa_turn_dropped_total TURN packets dropped, by reason.\n# TYPE kaiwa_turn_dropped_total counter\n";
  for (size_t i = 0; i < kTurnDropNames.size(); ++i) {
    fmt::format_to(std::back_inserter(out), "kaiwa_turn_dropped_total{{reason=\"{}\"}} {}\n", kTurnDropNames[i],
                   r.turnDropped[i].load(std::memory_order_relaxed));
  }
  out +=
      "# HELP kaiwa_turn_allocation_refusals_total TURN Allocate requests refused by a quota (486 user or address, "
      "508 total).\n# TYPE kaiwa_turn_allocation_refusals_total counter\n";
  for (size_t i = 0; i < kTurnQuotaNames.size(); ++i) {
    fmt::format_to(std::back_inserter(out), "kaiwa_turn_allocation_refusals_total{{quota=\"{}\"}} {}\n",
                   kTurnQuotaNames[i], r.turnQuotaRefused[i].load(std::memory_order_relaxed));
  }
  out +=
      "# HELP kaiwa_turn_tcp_timeouts_total TURN TCP/TLS client connections closed on a timeout, by reason.\n"
      "# TYPE kaiwa_turn_tcp_timeouts_total counter\n";
  for (size_t i = 0; i < kTurnTimeoutNames.size(); ++i) {
    fmt::format_to(std::back_inserter(out), "kaiwa_turn_tcp_timeouts_total{{reason=\"{}\"}} {}\n", kTurnTimeoutNames[i],
                   r.turnTimeouts[i].load(std::memory_order_relaxed));
  }
  emit(out, "kaiwa_turn_accept_errors_total", "counter",
       "Failed accepts on the TURN TCP/TLS listeners (each pauses accepting, 100 ms doubling to 1 s).",
       r.turnAcceptErrors);
  return out;
}

}  // namespace kaiwa::metrics

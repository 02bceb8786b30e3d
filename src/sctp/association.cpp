#include "sctp/association.hpp"

#include <arpa/inet.h>
#include <usrsctp.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <unordered_map>

namespace kaiwa::sctp {

struct Association::Event {
  enum class Kind : uint8_t { kPacket, kData, kNotification };
  Kind kind;
  uint16_t stream = 0;
  uint32_t ppid = 0;
  int flags = 0;
  std::vector<uint8_t> bytes;
};

namespace {

using Post = std::function<void(std::function<void()>)>;

struct Entry {
  Association* association;
  Post post;
  std::vector<Association::Event> events;
};

// Everything below is guarded by lock(): usrsctp itself, the registry and the queued events.
std::mutex& lock() {
  static std::mutex m;
  return m;
}
std::unordered_map<uint64_t, Entry>& registry() {
  static std::unordered_map<uint64_t, Entry> r;
  return r;
}
uint64_t nextId = 1;

void* address(uint64_t id) { return reinterpret_cast<void*>(static_cast<uintptr_t>(id)); }
uint64_t idOf(void* address) { return static_cast<uint64_t>(reinterpret_cast<uintptr_t>(address)); }

// usrsctp has a packet for the peer (called inside a usrsctp call, under lock()).
int onOutbound(void* addr, void* buffer, size_t length, uint8_t /*tos*/, uint8_t /*set_df*/) {
  auto it = registry().find(idOf(addr));
  if (it == registry().end()) return 0;
  const auto* b = static_cast<const uint8_t*>(buffer);
  it->second.events.push_back({Association::Event::Kind::kPacket, 0, 0, 0, std::vector<uint8_t>(b, b + length)});
  return 0;
}

// usrsctp received data or a notification for a socket (called inside a usrsctp call, under lock()). The data is
// ours to free.
int onReceive(struct socket* /*sock*/, union sctp_sockstore /*addr*/, void* data, size_t length,
              struct sctp_rcvinfo info, int flags, void* ulp) {
  if (data == nullptr) return 1;
  auto it = registry().find(idOf(ulp));
  if (it != registry().end()) {
    const auto* b = static_cast<const uint8_t*>(data);
    const bool notification = (flags & MSG_NOTIFICATION) != 0;
    it->second.events.push_back(
        {notification ? Association::Event::Kind::kNotification : Association::Event::Kind::kData, info.rcv_sid,
         ntohl(info.rcv_ppid), flags, std::vector<uint8_t>(b, b + length)});
  }
  std::free(data);
  return 1;
}

void initOnce() {
  static std::once_flag once;
  std::call_once(once, [] {
    usrsctp_init_nothreads(0, &onOutbound, nullptr);
    usrsctp_sysctl_set_sctp_ecn_enable(0);
    // Browsers' defaults: data channels want small delays, not the 200 ms delayed SACK of the RFC.
    usrsctp_sysctl_set_sctp_delayed_sack_time_default(20);
  });
}

template <typename T>
bool setOption(struct socket* s, int level, int name, const T& value) {
  return usrsctp_setsockopt(s, level, name, &value, sizeof value) == 0;
}

}  // namespace

Association::Association(Options options, Listener& listener)
    : options_(std::move(options)), listener_(listener), nextStream_(options_.dtlsClient ? 0 : 1) {
  initOnce();
  std::lock_guard guard(lock());
  id_ = nextId++;
  registry().emplace(id_, Entry{this, options_.post, {}});
  usrsctp_register_address(address(id_));
  socket_ = usrsctp_socket(AF_CONN, SOCK_STREAM, IPPROTO_SCTP, &onReceive, nullptr, 0, address(id_));
  if (socket_ == nullptr) return;
  usrsctp_set_non_blocking(socket_, 1);
  struct linger linger {
    1, 0
  };  // close() aborts: nothing lingers in usrsctp after the transport ended
  setOption(socket_, SOL_SOCKET, SO_LINGER, linger);
  const int sendBuffer = static_cast<int>(options_.sendBuffer);
  setOption(socket_, SOL_SOCKET, SO_SNDBUF, sendBuffer);
  const int rcvBuffer = static_cast<int>(options_.maxMessageSize * 4);
  setOption(socket_, SOL_SOCKET, SO_RCVBUF, rcvBuffer);
  struct sctp_assoc_value reset {
    SCTP_ALL_ASSOC, SCTP_ENABLE_RESET_STREAM_REQ
  };
  setOption(socket_, IPPROTO_SCTP, SCTP_ENABLE_STREAM_RESET, reset);
  const int on = 1;
  setOption(socket_, IPPROTO_SCTP, SCTP_NODELAY, on);
  setOption(socket_, IPPROTO_SCTP, SCTP_RECVRCVINFO, on);
  // Retransmission timeouts for real time (RFC 4960's 3 s initial and 1 s minimum suit bulk transfer): a lost
  // chat message or file chunk is resent after a few hundred milliseconds, not seconds.
  struct sctp_rtoinfo rto {
    SCTP_FUTURE_ASSOC, 1000, 10000, 200
  };
  setOption(socket_, IPPROTO_SCTP, SCTP_RTOINFO, rto);
  struct sctp_initmsg init {};
  init.sinit_num_ostreams = options_.streams;
  init.sinit_max_instreams = options_.streams;
  setOption(socket_, IPPROTO_SCTP, SCTP_INITMSG, init);
  for (uint16_t type : {SCTP_ASSOC_CHANGE, SCTP_STREAM_RESET_EVENT, SCTP_SHUTDOWN_EVENT}) {
    struct sctp_event event {};
    event.se_assoc_id = SCTP_ALL_ASSOC;
    event.se_on = 1;
    event.se_type = type;
    setOption(socket_, IPPROTO_SCTP, SCTP_EVENT, event);
  }
  struct sockaddr_conn local {};
  local.sconn_family = AF_CONN;
  local.sconn_port = htons(options_.localPort);
  local.sconn_addr = address(id_);
  if (usrsctp_bind(socket_, reinterpret_cast<struct sockaddr*>(&local), sizeof local) != 0) {
    usrsctp_close(socket_);
    socket_ = nullptr;
  }
}

Association::~Association() {
  std::lock_guard guard(lock());
  if (socket_ != nullptr) usrsctp_close(socket_);
  usrsctp_deregister_address(address(id_));
  registry().erase(id_);
}

namespace {
constexpr size_t kCommonHeader = 12;  // RFC 9260 section 3.1
}  // namespace

bool Association::connect() {
  if (socket_ == nullptr) return false;
  struct sockaddr_conn remote {};
  remote.sconn_family = AF_CONN;
  remote.sconn_port = htons(options_.remotePort);
  remote.sconn_addr = address(id_);
  int rc;
  {
    std::lock_guard guard(lock());
    if (options_.mtu > 0) {
      // Every packet must fit one DTLS record: a fixed path MTU, no discovery (there is no ICMP under DTLS). Set as
      // the default of the association to come, before the INIT goes out.
      struct sctp_paddrparams params {};
      params.spp_assoc_id = SCTP_FUTURE_ASSOC;
      params.spp_flags = SPP_PMTUD_DISABLE;
      // usrsctp writes packets of up to the path MTU plus the 12-byte common header for AF_CONN (measured: the
      // unit test's largest packet), so the header is taken off here.
      params.spp_pathmtu = static_cast<uint32_t>(options_.mtu > kCommonHeader ? options_.mtu - kCommonHeader : 1);
      setOption(socket_, IPPROTO_SCTP, SCTP_PEER_ADDR_PARAMS, params);
    }
    rc = usrsctp_connect(socket_, reinterpret_cast<struct sockaddr*>(&remote), sizeof remote);
    if (rc != 0 && errno == EINPROGRESS) rc = 0;
  }
  handleEvents();
  return rc == 0;
}

void Association::receive(std::span<const uint8_t> packet) {
  if (socket_ == nullptr || closed_) return;
  ++counters_.packetsIn;
  {
    std::lock_guard guard(lock());
    usrsctp_conninput(address(id_), packet.data(), packet.size(), 0);
  }
  handleEvents();
}

void Association::tickTimers(std::chrono::milliseconds elapsed) {
  std::vector<std::pair<uint64_t, Post>> due;
  {
    std::lock_guard guard(lock());
    if (registry().empty()) return;
    usrsctp_handle_timers(static_cast<uint32_t>(elapsed.count()));
    for (auto& [id, entry] : registry())
      if (!entry.events.empty()) due.emplace_back(id, entry.post);
  }
  for (auto& [dueId, post] : due) {
    auto run = [id = dueId] {
      Association* a = nullptr;
      {
        std::lock_guard guard(lock());
        auto it = registry().find(id);
        if (it != registry().end()) a = it->second.association;
      }
      if (a != nullptr) a->handleEvents();
    };
    if (post) {
      post(run);
    } else {
      run();
    }
  }
}

size_t Association::live() {
  std::lock_guard guard(lock());
  return registry().size();
}

void Association::handleEvents() {
  // Handling an event may call into usrsctp (an acknowledgement, a reset), which queues more: the outer call loops
  // until none is left, so they go out in the order usrsctp queued them.
  if (handling_) return;
  handling_ = true;
  struct Done {
    bool& flag;
    ~Done() { flag = false; }
  } done{handling_};
  while (true) {
    std::vector<Event> events;
    {
      std::lock_guard guard(lock());
      auto it = registry().find(id_);
      if (it == registry().end() || it->second.events.empty()) return;
      events.swap(it->second.events);
    }
    for (Event& e : events) {
      switch (e.kind) {
        case Event::Kind::kPacket:
          ++counters_.packetsOut;
          listener_.onPacket(e.bytes);
          break;
        case Event::Kind::kData:
          if ((e.flags & MSG_EOR) == 0 || partial_.contains(e.stream)) {
            // A message delivered in pieces: gathered up to the size limit; past it, only its end is waited for,
            // and it is dropped whole.
            Partial& gathered = partial_[e.stream];
            if (!gathered.tooBig && gathered.bytes.size() + e.bytes.size() <= options_.maxMessageSize) {
              gathered.bytes.insert(gathered.bytes.end(), e.bytes.begin(), e.bytes.end());
            } else {
              gathered.tooBig = true;
              gathered.bytes = {};
            }
            if ((e.flags & MSG_EOR) == 0) break;
            const bool tooBig = gathered.tooBig;
            e.bytes = std::move(gathered.bytes);
            partial_.erase(e.stream);
            if (tooBig) {
              ++counters_.dropped;
              break;
            }
          }
          if (e.bytes.size() > options_.maxMessageSize) {  // a whole message can be too big as well
            ++counters_.dropped;
            break;
          }
          handleMessage(e.stream, e.ppid, e.bytes);
          break;
        case Event::Kind::kNotification: {
          const auto* n = reinterpret_cast<const union sctp_notification*>(e.bytes.data());
          if (e.bytes.size() < sizeof(n->sn_header)) break;
          if (n->sn_header.sn_type == SCTP_ASSOC_CHANGE && e.bytes.size() >= sizeof(struct sctp_assoc_change)) {
            const uint16_t state = n->sn_assoc_change.sac_state;
            if (state == SCTP_COMM_UP && !connected_) {
              connected_ = true;
              listener_.onConnected();
            } else if ((state == SCTP_COMM_LOST || state == SCTP_SHUTDOWN_COMP || state == SCTP_CANT_STR_ASSOC) &&
                       !closed_) {
              closed_ = true;
              connected_ = false;
              listener_.onClosed();
            }
          } else if (n->sn_header.sn_type == SCTP_SHUTDOWN_EVENT && !closed_) {
            closed_ = true;
            connected_ = false;
            listener_.onClosed();
          } else if (n->sn_header.sn_type == SCTP_STREAM_RESET_EVENT &&
                     e.bytes.size() >= sizeof(struct sctp_stream_reset_event)) {
            const auto& r = n->sn_strreset_event;
            if ((r.strreset_flags & SCTP_STREAM_RESET_INCOMING_SSN) == 0) break;
            const size_t length = std::min<size_t>(r.strreset_length, e.bytes.size());
            const size_t count = (length - sizeof(struct sctp_stream_reset_event)) / sizeof(uint16_t);
            for (size_t i = 0; i < count; ++i) {
              const uint16_t stream = r.strreset_stream_list[i];
              auto ch = channels_.find(stream);
              if (ch == channels_.end()) continue;
              if (!ch->second.outgoingReset) resetOutgoing(stream);
              channels_.erase(stream);
              partial_.erase(stream);
              listener_.onChannelClosed(stream);
            }
          }
          break;
        }
      }
    }
  }
}

void Association::handleMessage(uint16_t stream, uint32_t ppid, std::vector<uint8_t>& data) {
  switch (static_cast<Ppid>(ppid)) {
    case Ppid::kDcep: {
      if (isAck(data)) return;  // the peer took a channel this side opened; it could be used before already
      auto params = parseOpen(data);
      // Only the peer's parity may be opened by the peer (the client's are even, RFC 8832 section 6).
      const bool peersStream = (stream % 2 == 0) != options_.dtlsClient;
      if (!params || !peersStream || channels_.contains(stream) || stream >= options_.streams) {
        ++counters_.dropped;
        return;
      }
      channels_[stream] = Channel{*params, false};
      const uint8_t ack[] = {kDataChannelAck};
      sendRaw(stream, static_cast<uint32_t>(Ppid::kDcep), nullptr, ack);
      listener_.onChannelOpen(stream, *params);
      return;
    }
    case Ppid::kString:
    case Ppid::kBinary:
    case Ppid::kStringEmpty:
    case Ppid::kBinaryEmpty: {
      if (!channels_.contains(stream)) {
        ++counters_.dropped;
        return;
      }
      ++counters_.messagesIn;
      const auto p = static_cast<Ppid>(ppid);
      const bool empty = p == Ppid::kStringEmpty || p == Ppid::kBinaryEmpty;
      listener_.onMessage(stream, p, empty ? std::span<const uint8_t>{} : std::span<const uint8_t>(data));
      return;
    }
  }
  ++counters_.dropped;  // a PPID data channels do not use (or the deprecated partial ones, 52 and 54)
}

Association::SendResult Association::sendRaw(uint16_t stream, uint32_t ppid, const ChannelParams* params,
                                             std::span<const uint8_t> bytes) {
  struct sctp_sendv_spa spa {};
  spa.sendv_flags = SCTP_SEND_SNDINFO_VALID;
  spa.sendv_sndinfo.snd_sid = stream;
  spa.sendv_sndinfo.snd_ppid = htonl(ppid);
  spa.sendv_sndinfo.snd_flags = SCTP_EOR;
  if (params != nullptr && !params->ordered) spa.sendv_sndinfo.snd_flags |= SCTP_UNORDERED;
  if (params != nullptr && params->reliability != Reliability::kReliable) {
    spa.sendv_flags |= SCTP_SEND_PRINFO_VALID;
    spa.sendv_prinfo.pr_policy =
        params->reliability == Reliability::kMaxRetransmits ? SCTP_PR_SCTP_RTX : SCTP_PR_SCTP_TTL;
    spa.sendv_prinfo.pr_value = params->reliabilityParameter;
  }
  ssize_t n;
  int error = 0;
  {
    std::lock_guard guard(lock());
    n = usrsctp_sendv(socket_, bytes.data(), bytes.size(), nullptr, 0, &spa, sizeof spa, SCTP_SENDV_SPA, 0);
    if (n < 0) error = errno;
  }
  handleEvents();
  if (n >= 0) return SendResult::kSent;
  return error == EWOULDBLOCK || error == EAGAIN ? SendResult::kBufferFull : SendResult::kClosed;
}

std::optional<uint16_t> Association::openChannel(const ChannelParams& params) {
  if (!connected_ || closed_) return std::nullopt;
  while (nextStream_ < options_.streams && channels_.contains(nextStream_)) nextStream_ += 2;
  if (nextStream_ >= options_.streams) return std::nullopt;
  const uint16_t stream = nextStream_;
  nextStream_ += 2;
  channels_[stream] = Channel{params, false};
  if (sendRaw(stream, static_cast<uint32_t>(Ppid::kDcep), nullptr, writeOpen(params)) != SendResult::kSent) {
    channels_.erase(stream);
    return std::nullopt;
  }
  return stream;
}

Association::SendResult Association::send(uint16_t stream, Ppid ppid, std::span<const uint8_t> message) {
  if (!connected_ || closed_) return SendResult::kClosed;
  auto ch = channels_.find(stream);
  if (ch == channels_.end() || ch->second.outgoingReset) return SendResult::kNoChannel;
  if (message.size() > options_.maxMessageSize) return SendResult::kTooBig;
  if (ppid != Ppid::kString && ppid != Ppid::kBinary) return SendResult::kNoChannel;
  SendResult r;
  if (message.empty()) {  // an empty message is one byte under the "empty" PPID (RFC 8831 section 6.6)
    const uint8_t zero[] = {0};
    r = sendRaw(stream, static_cast<uint32_t>(ppid == Ppid::kString ? Ppid::kStringEmpty : Ppid::kBinaryEmpty),
                &ch->second.params, zero);
  } else {
    r = sendRaw(stream, static_cast<uint32_t>(ppid), &ch->second.params, message);
  }
  if (r == SendResult::kSent) ++counters_.messagesOut;
  return r;
}

void Association::resetOutgoing(uint16_t stream) {
  auto ch = channels_.find(stream);
  if (ch != channels_.end()) ch->second.outgoingReset = true;
  // struct sctp_reset_streams ends in a flexible array: one stream id follows the fixed part.
  alignas(struct sctp_reset_streams) uint8_t buffer[sizeof(struct sctp_reset_streams) + sizeof(uint16_t)] = {};
  auto* request = reinterpret_cast<struct sctp_reset_streams*>(buffer);
  request->srs_assoc_id = SCTP_ALL_ASSOC;
  request->srs_flags = SCTP_STREAM_RESET_OUTGOING;
  request->srs_number_streams = 1;
  std::memcpy(buffer + sizeof(struct sctp_reset_streams), &stream, sizeof stream);
  {
    std::lock_guard guard(lock());
    usrsctp_setsockopt(socket_, IPPROTO_SCTP, SCTP_RESET_STREAMS, buffer, sizeof buffer);
  }
  handleEvents();
}

void Association::closeChannel(uint16_t stream) {
  auto ch = channels_.find(stream);
  if (ch == channels_.end() || ch->second.outgoingReset || closed_) return;
  resetOutgoing(stream);
}

}  // namespace kaiwa::sctp

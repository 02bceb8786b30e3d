// kaiwa-loadgen media: an SFU load generator with real ICE, DTLS and SRTP, built from kaiwa's own modules in the
// client's role (stun for the checks, dtls::Session, srtp::Session, sdp for the answers, rtp for the parse).
//
//   kaiwa-loadgen media --server kaiwa --http 127.0.0.1:8080 [options]     WHIP/WHEP over plain HTTP/1.1
//   kaiwa-loadgen media --server janus --ws 127.0.0.2:8188 [options]       Janus VideoRoom over its WebSocket API
//   kaiwa-loadgen media --self-test                                         the counting, on packets made here
//
// Each of N publishers (one per room) has M subscribers; every peer has its own UDP socket, is the controlling ICE
// agent (Binding requests with USE-CANDIDATE, PRIORITY, ICE-CONTROLLING, MESSAGE-INTEGRITY, FINGERPRINT) and takes
// the DTLS role its peer's SDP leaves it. Publishers send a paced video-like stream (fixed-size packets, frames of
// rate/fps packets with a marker on the last, a VP8 descriptor whose S bit starts a frame and a keyframe header
// every two seconds or when the server asks with PLI/FIR) and a 50 packet/s audio-like one, from one thread with
// sendmmsg per publisher every millisecond. Subscribers are read by a second thread with recvmmsg: packets per
// stream, loss and reordering by the sender's packet index carried in the payload (so the tail is counted too),
// interarrival jitter by RFC 3550 A.8 on the sender's clock stamp (a paced frame's packets share one RTP timestamp
// but leave apart, so the RTP timestamp would measure the pacing), one-way latency, and the time from a
// subscriber's answer to the first packet that starts a frame. With --server-pid the server's CPU (utime + stime
// from /proc/<pid>/stat) and RSS are read over the same window as the packets.
//
// Bounded: at most 64 publishers, 1000 subscribers per publisher, 200,000 packets/s per publisher, 600 s.
// Output: one summary line, then one JSON line for scripts.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <boost/json.hpp>
#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "common/address.hpp"
#include "dtls/certificate.hpp"
#include "dtls/session.hpp"
#include "histogram.hpp"
#include "rtp/packet.hpp"
#include "sdp/answer.hpp"
#include "sdp/description.hpp"
#include "srtp/session.hpp"
#include "stun/message.hpp"
#include "ws_codec.hpp"

namespace kaiwa::bench::media {
namespace {

namespace json = boost::json;

int64_t nowNs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

std::string randomToken(std::mt19937_64& rng, size_t n) {
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  std::string s(n, 'a');
  for (auto& c : s) c = kAlphabet[rng() % (sizeof(kAlphabet) - 1)];
  return s;
}

void put16(uint8_t* p, uint16_t v) {
  p[0] = uint8_t(v >> 8);
  p[1] = uint8_t(v);
}
void put32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = uint8_t(v >> (24 - 8 * i));
}
void put64(uint8_t* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = uint8_t(v >> (56 - 8 * i));
}
uint64_t get64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = v << 8 | p[i];
  return v;
}

// ---------------------------------------------------------------------------------------------------------------
// The synthetic media. Payload layout (after the 12-byte RTP header, which carries no extension):
//   video: [0] VP8 payload descriptor (0x10: S bit, a frame starts here; else 0x00)
//          [1..10] on a frame's first packet, a VP8 frame header (P bit clear and the start code for a keyframe)
//   both:  [16..23] the stream's packet index, [24..31] the send time (CLOCK_MONOTONIC ns),
//          [32..33] the publisher's number, [34] the kind (0 audio, 1 video)
// The server forwards the payload untouched; kaiwa's forwarding does not read it, Janus's does not either without
// simulcast.
constexpr size_t kRtpHeader = 12;
constexpr size_t kStampOffset = kRtpHeader + 16;
constexpr size_t kMinPacket = kStampOffset + 19;
constexpr uint8_t kVideoPt = 96;
constexpr uint8_t kAudioPt = 111;

enum class Kind : uint8_t { kAudio = 0, kVideo = 1 };

struct Stamp {
  uint64_t index = 0;
  int64_t sentNs = 0;
  uint16_t publisher = 0;
  Kind kind = Kind::kAudio;
  bool frameStart = false;
  bool keyframe = false;
};

// Writes one packet into `out` (at least `size` bytes); returns `size`.
size_t writePacket(uint8_t* out, size_t size, Kind kind, uint16_t seq, uint32_t ts, uint32_t ssrc, bool marker,
                   const Stamp& s) {
  std::memset(out, 0, size);
  out[0] = 0x80;
  out[1] = uint8_t((marker ? 0x80 : 0) | (kind == Kind::kVideo ? kVideoPt : kAudioPt));
  put16(out + 2, seq);
  put32(out + 4, ts);
  put32(out + 8, ssrc);
  uint8_t* p = out + kRtpHeader;
  if (kind == Kind::kVideo) {
    p[0] = s.frameStart ? 0x10 : 0x00;
    if (s.frameStart) {
      // VP8 frame tag (RFC 6386 section 9.1): bit 0 clear for a keyframe, show_frame set; a keyframe adds the start
      // code and a 640x480 size.
      p[1] = s.keyframe ? 0x10 : 0x11;
      if (s.keyframe) {
        p[4] = 0x9d, p[5] = 0x01, p[6] = 0x2a;
        p[7] = 0x80, p[8] = 0x02, p[9] = 0xe0, p[10] = 0x01;
      }
    }
  }
  put64(out + kStampOffset, s.index);
  put64(out + kStampOffset + 8, uint64_t(s.sentNs));
  put16(out + kStampOffset + 16, s.publisher);
  out[kStampOffset + 18] = uint8_t(kind);
  for (size_t i = kStampOffset + 19; i < size; ++i) out[i] = uint8_t(i);
  return size;
}

std::optional<Stamp> readStamp(const rtp::Packet& packet) {
  auto payload = packet.payload();
  if (payload.size() < kMinPacket - kRtpHeader) return std::nullopt;
  Stamp s;
  const uint8_t* p = payload.data();
  s.index = get64(p + 16);
  s.sentNs = int64_t(get64(p + 24));
  s.publisher = uint16_t(p[32] << 8 | p[33]);
  if (p[34] > 1) return std::nullopt;
  s.kind = Kind(p[34]);
  s.frameStart = s.kind == Kind::kVideo && (p[0] & 0x10) != 0;
  s.keyframe = s.frameStart && (p[1] & 0x01) == 0;
  return s;
}

// What one subscriber sees of one stream. Written by the receiving thread only; the counters the main thread reads
// during the run are atomics.
struct StreamStats {
  bool started = false;
  uint64_t firstIndex = 0;
  uint64_t highestIndex = 0;
  std::atomic<uint64_t> received{0};
  uint64_t reordered = 0;
  uint64_t duplicates = 0;  // an index at or below the highest seen twice in a row is counted as reordered
  // RFC 3550 A.8 with the sender's stamp as the timestamp, in nanoseconds.
  double jitterNs = 0;
  int64_t lastTransit = 0;

  void onPacket(const Stamp& s, int64_t arrivalNs) {
    received.fetch_add(1, std::memory_order_relaxed);
    if (!started) {
      started = true;
      firstIndex = highestIndex = s.index;
      lastTransit = arrivalNs - s.sentNs;
      return;
    }
    if (s.index > highestIndex) {
      highestIndex = s.index;
    } else if (s.index == highestIndex) {
      ++duplicates;
    } else {
      ++reordered;
    }
    const int64_t transit = arrivalNs - s.sentNs;
    const double d = double(std::llabs(transit - lastTransit));
    lastTransit = transit;
    jitterNs += (d - jitterNs) / 16.0;
  }
  // Packets the publisher sent from this stream's first received one up to `lastSentIndex` that never came.
  uint64_t lost(uint64_t lastSentIndex) const {
    if (!started) return 0;
    const uint64_t expected = std::max(lastSentIndex, highestIndex) - firstIndex + 1;
    const uint64_t got = received.load() - duplicates;
    return expected > got ? expected - got : 0;
  }
};

// ---------------------------------------------------------------------------------------------------------------
// One peer connection: a UDP socket connected to the server's candidate, ICE, DTLS and SRTP.
enum class Role : uint8_t { kPublisher, kSubscriber };
enum class PeerState : uint8_t { kChecking, kHandshaking, kConnected, kFailed };

struct Remote {
  std::string ufrag, pwd, fingerprint;
  sdp::Setup setup = sdp::Setup::kPassive;
  sockaddr_in address{};
};

struct Peer {
  Role role = Role::kPublisher;
  uint16_t publisher = 0;  // the room's publisher number
  int fd = -1;
  sockaddr_in local{};
  std::string ufrag, pwd;
  Remote remote;
  std::optional<dtls::Session> dtls;
  std::optional<srtp::Session> in, out;
  std::atomic<PeerState> state{PeerState::kChecking};
  std::string error;
  int64_t createdNs = 0, lastCheckNs = 0, connectedNs = 0;
  stun::TransactionId pendingCheck{};
  uint64_t tieBreaker = 0;

  // Subscribers.
  int64_t answerNs = 0;
  int64_t lastReportNs = 0;  // the last receiver report sent
  std::atomic<int64_t> firstFrameNs{0}, firstKeyframeNs{0};
  StreamStats streams[2];
  std::atomic<uint64_t> wrongPublisher{0}, badSrtp{0}, rtcpIn{0};

  // Publishers: a PLI or FIR from the server, for the sending thread.
  std::atomic<bool> keyframeRequested{false};
  std::atomic<uint64_t> sentIndex[2] = {0, 0};  // packets sent so far per kind (the next index)

  ~Peer() {
    if (fd >= 0) close(fd);
  }
};

bool openSocket(Peer& p, const std::string& localIp) {
  p.fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (p.fd < 0) return false;
  // 4 MiB: the FORCE variants pass rmem_max/wmem_max when run as root (the bench is), else the capped ones.
  int size = 4 << 20;
  if (setsockopt(p.fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size) != 0)
    setsockopt(p.fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
  if (setsockopt(p.fd, SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof size) != 0)
    setsockopt(p.fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
  p.local.sin_family = AF_INET;
  inet_pton(AF_INET, localIp.c_str(), &p.local.sin_addr);
  if (bind(p.fd, reinterpret_cast<sockaddr*>(&p.local), sizeof p.local) != 0) return false;
  socklen_t len = sizeof p.local;
  getsockname(p.fd, reinterpret_cast<sockaddr*>(&p.local), &len);
  return true;
}

std::string ipOf(const Peer& p) {
  char ip[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, &p.local.sin_addr, ip, sizeof ip);
  return ip;
}

std::string localCandidate(const Peer& p) {
  char ip[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, &p.local.sin_addr, ip, sizeof ip);
  return "a=candidate:1 1 udp 2130706431 " + std::string(ip) + " " + std::to_string(ntohs(p.local.sin_port)) +
         " typ host\r\n";
}

// Reads the server's ICE credentials, fingerprint, setup and first UDP IPv4 candidate from its SDP.
std::optional<std::string> readRemote(std::string_view text, Remote& r) {
  auto d = sdp::parse(text, sdp::Limits{});
  if (!d) return "the server's SDP does not parse: " + d.error().message();
  auto t = sdp::remoteTransport(*d);
  if (!t) return "the server's SDP has no transport: " + t.error().message();
  if (t->fingerprints.empty()) return std::string("the server's SDP has no fingerprint");
  r.ufrag = t->iceUfrag;
  r.pwd = t->icePwd;
  r.fingerprint = t->fingerprints[0].algorithm + " " + t->fingerprints[0].value;
  r.setup = t->setup;
  for (const auto& c : t->candidates) {
    std::string transport = c.transport;
    for (auto& ch : transport) ch = char(std::tolower(static_cast<unsigned char>(ch)));
    if (transport != "udp" || c.component != 1) continue;
    sockaddr_in a{};
    a.sin_family = AF_INET;
    if (inet_pton(AF_INET, c.address.c_str(), &a.sin_addr) != 1) continue;
    a.sin_port = htons(c.port);
    r.address = a;
    return std::nullopt;
  }
  return std::string("the server's SDP has no UDP IPv4 candidate");
}

// The client's half of an ICE check towards a lite server (RFC 8445 section 7.2.4): USERNAME remote:local, keyed
// with the server's password; nominating at once is what a controlling agent does towards a lite peer.
void sendCheck(Peer& p, int64_t now) {
  std::array<uint8_t, 256> buf{};
  for (size_t i = 0; i < p.pendingCheck.size(); ++i) p.pendingCheck[i] = uint8_t(now >> (i % 8 * 8)) ^ uint8_t(i);
  stun::Builder b(buf, stun::Method::kBinding, stun::Class::kRequest, p.pendingCheck);
  std::array<uint8_t, 8> tie{};
  for (int i = 0; i < 8; ++i) tie[size_t(i)] = uint8_t(p.tieBreaker >> (8 * i));
  b.text(stun::attr::kUsername, p.remote.ufrag + ":" + p.ufrag)
      .u32(stun::attr::kPriority, 0x6e0000ff)
      .attribute(stun::attr::kIceControlling, tie)
      .attribute(stun::attr::kUseCandidate, {})
      .messageIntegrity(stun::asBytes(p.remote.pwd))
      .fingerprint();
  if (b.ok()) (void)send(p.fd, b.bytes().data(), b.size(), 0);
  p.lastCheckNs = now;
}

// A full agent answers the peer's checks too: libnice, even as Janus's lite agent, sends a triggered check back
// and fails the pair when it goes unanswered.
void answerCheck(Peer& p, const stun::Message& request) {
  if (!request.verifyIntegrity(stun::asBytes(p.pwd))) return;
  std::array<uint8_t, 256> buf{};
  stun::Builder b(buf, stun::Method::kBinding, stun::Class::kSuccess, request.transactionId());
  b.xorAddress(stun::attr::kXorMappedAddress,
               common::Address::v4(ntohl(p.remote.address.sin_addr.s_addr), ntohs(p.remote.address.sin_port)))
      .messageIntegrity(stun::asBytes(p.pwd))
      .fingerprint();
  if (b.ok()) (void)send(p.fd, b.bytes().data(), b.size(), 0);
}

// A receiver report with no report blocks (RFC 3550 section 6.4.2), once a second as a browser sends them: what a
// server sees of a subscriber besides its consent checks (kaiwa lets a subscriber's DTLS state go at the first one).
void sendReceiverReport(Peer& p, int64_t now) {
  p.lastReportNs = now;
  if (!p.out) return;
  alignas(4) std::array<uint8_t, 8 + srtp::kMaxTrailer> buf{0x80, 201, 0, 1};  // room for the SRTCP trailer
  const uint32_t ssrc = 0x20000000u + uint32_t(p.publisher);
  for (int i = 0; i < 4; ++i) buf[size_t(4 + i)] = uint8_t(ssrc >> (24 - 8 * i));
  size_t size = 8;
  if (p.out->protectRtcp(buf, size) == srtp::Result::kOk) (void)send(p.fd, buf.data(), size, 0);
}

void flushDtls(Peer& p) {
  for (auto& d : p.dtls->output()) (void)send(p.fd, d.data(), d.size(), 0);
  p.dtls->output().clear();
}

// ---------------------------------------------------------------------------------------------------------------
// The receiving thread: every socket's inbound traffic, the checks, the handshakes and the consent checks.
struct alignas(16) Slot {
  uint8_t bytes[2048];
};

class Network {
 public:
  Network(const dtls::Context& client, const dtls::Context& server) : client_(client), server_(server) {
    epoll_ = epoll_create1(EPOLL_CLOEXEC);
  }
  ~Network() {
    stop();
    close(epoll_);
  }

  void add(Peer* p) {
    std::lock_guard lock(mutex_);
    incoming_.push_back(p);
  }
  void start() {
    thread_ = std::thread([this] { run(); });
  }
  void stop() {
    running_ = false;
    if (thread_.joinable()) thread_.join();
  }
  void recordLatency(bool on) { recordLatency_ = on; }
  LatencyHistogram latency() {
    std::lock_guard lock(mutex_);
    return latency_;
  }

 private:
  void adopt() {
    std::vector<Peer*> fresh;
    {
      std::lock_guard lock(mutex_);
      fresh.swap(incoming_);
    }
    for (Peer* p : fresh) {
      const auto& ctx = p->remote.setup == sdp::Setup::kActive ? server_ : client_;
      p->dtls = dtls::Session::make(ctx, p->remote.fingerprint);
      if (!p->dtls) {
        p->error = "no DTLS session";
        p->state = PeerState::kFailed;
        continue;
      }
      p->createdNs = nowNs();
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.ptr = p;
      epoll_ctl(epoll_, EPOLL_CTL_ADD, p->fd, &ev);
      peers_.push_back(p);
      sendCheck(*p, p->createdNs);
    }
  }

  void run() {
    std::vector<epoll_event> events(256);
    std::vector<Slot> slots(kBatch);
    std::vector<mmsghdr> msgs(kBatch);
    std::vector<iovec> iovs(kBatch);
    LatencyHistogram latency;
    int64_t lastPublish = 0;
    while (running_) {
      adopt();
      const int n = epoll_wait(epoll_, events.data(), int(events.size()), 5);
      const int64_t now = nowNs();
      for (int i = 0; i < n; ++i) {
        auto* p = static_cast<Peer*>(events[size_t(i)].data.ptr);
        for (;;) {
          for (size_t k = 0; k < kBatch; ++k) {
            iovs[k] = {slots[k].bytes, sizeof slots[k].bytes};
            msgs[k] = {};
            msgs[k].msg_hdr.msg_iov = &iovs[k];
            msgs[k].msg_hdr.msg_iovlen = 1;
          }
          const int got = recvmmsg(p->fd, msgs.data(), unsigned(kBatch), MSG_DONTWAIT, nullptr);
          if (got <= 0) break;
          const int64_t arrival = nowNs();
          for (int k = 0; k < got; ++k)
            onDatagram(*p, slots[size_t(k)].bytes, msgs[size_t(k)].msg_len, arrival, latency);
          if (got < int(kBatch)) break;
        }
      }
      timers(now);
      if (now - lastPublish > 100'000'000) {
        std::lock_guard lock(mutex_);
        latency_ = latency;
        lastPublish = now;
      }
    }
    std::lock_guard lock(mutex_);
    latency_ = latency;
  }

  void onDatagram(Peer& p, uint8_t* data, size_t size, int64_t arrival, LatencyHistogram& latency) {
    if (size == 0) return;
    const uint8_t b0 = data[0];
    if (b0 <= 3) {
      auto m = stun::Message::parse({data, size});
      if (!m) return;
      if (m->is(stun::Method::kBinding, stun::Class::kRequest)) {
        answerCheck(p, *m);
        return;
      }
      if (!m->is(stun::Method::kBinding, stun::Class::kSuccess)) return;
      if (!m->verifyIntegrity(stun::asBytes(p.remote.pwd))) return;
      if (p.state == PeerState::kChecking) {
        p.state = PeerState::kHandshaking;
        p.dtls->start();
        flushDtls(p);
      }
      return;
    }
    if (b0 >= 20 && b0 <= 63) {
      if (!p.dtls) return;
      const auto status = p.dtls->receive({data, size});
      flushDtls(p);
      if (status == dtls::Status::kConnected && p.state == PeerState::kHandshaking) {
        auto keys = p.dtls->srtpKeys();
        p.in = srtp::Session::make(keys.profile, keys.remote, srtp::Direction::kInbound, 4096);
        p.out = srtp::Session::make(keys.profile, keys.local, srtp::Direction::kOutbound);
        profile_ = keys.profile;
        p.connectedNs = arrival;
        p.state = p.in && p.out ? PeerState::kConnected : PeerState::kFailed;
      } else if (status == dtls::Status::kFailed) {
        p.error = "DTLS: " + p.dtls->error();
        p.state = PeerState::kFailed;
      }
      return;
    }
    if (b0 < 128 || b0 > 191 || size < 12 || p.state != PeerState::kConnected) return;
    const uint8_t pt = data[1] & 0x7f;
    if (pt >= 64 && pt <= 95) {  // RTCP with rtcp-mux (RFC 5761 section 4)
      p.rtcpIn.fetch_add(1, std::memory_order_relaxed);
      if (p.role != Role::kPublisher) return;
      if (p.in->unprotectRtcp({data, sizeof(Slot::bytes)}, size) != srtp::Result::kOk) return;
      // A PLI (206/1) or FIR (206/4) anywhere in the compound asks for a keyframe.
      for (size_t off = 0; off + 4 <= size;) {
        const uint8_t fmt = data[off] & 0x1f;
        if (data[off + 1] == 206 && (fmt == 1 || fmt == 4)) p.keyframeRequested = true;
        off += (size_t(data[off + 2] << 8 | data[off + 3]) + 1) * 4;
      }
      return;
    }
    if (p.role != Role::kSubscriber) return;
    if (p.in->unprotectRtp({data, sizeof(Slot::bytes)}, size) != srtp::Result::kOk) {
      p.badSrtp.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    auto packet = rtp::Packet::parse({data, size});
    if (!packet) return;
    auto stamp = readStamp(*packet);
    if (!stamp) return;
    if (stamp->publisher != p.publisher) {
      p.wrongPublisher.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    p.streams[size_t(stamp->kind)].onPacket(*stamp, arrival);
    if (recordLatency_) latency.record(uint64_t(std::max<int64_t>(0, arrival - stamp->sentNs)));
    if (stamp->frameStart && p.firstFrameNs == 0) p.firstFrameNs = arrival;
    if (stamp->keyframe && p.firstKeyframeNs == 0) p.firstKeyframeNs = arrival;
  }

  void timers(int64_t now) {
    for (Peer* p : peers_) {
      const auto state = p->state.load();
      if (state == PeerState::kFailed) continue;
      if (state == PeerState::kChecking) {
        if (now - p->createdNs > 10'000'000'000) {
          p->error = "no answer to the ICE checks in 10 s";
          p->state = PeerState::kFailed;
        } else if (now - p->lastCheckNs > 50'000'000) {
          sendCheck(*p, now);
        }
        continue;
      }
      if (state == PeerState::kHandshaking) {
        auto t = p->dtls->nextTimeout();
        if (t && t->count() <= 0) {
          if (p->dtls->onTimeout() == dtls::Status::kFailed) {
            p->error = "DTLS: " + p->dtls->error();
            p->state = PeerState::kFailed;
          }
          flushDtls(*p);
        }
        if (now - p->createdNs > 15'000'000'000) {
          p->error = "DTLS handshake not done in 15 s";
          p->state = PeerState::kFailed;
        }
        continue;
      }
      // Consent freshness (RFC 7675): a check every 2 s, as Chromium does.
      if (now - p->lastCheckNs > 2'000'000'000) sendCheck(*p, now);
      if (p->role == Role::kSubscriber && now - p->lastReportNs > 1'000'000'000) sendReceiverReport(*p, now);
    }
  }

 public:
  srtp::Profile profile() const { return profile_; }

 private:
  static constexpr size_t kBatch = 64;
  const dtls::Context& client_;
  const dtls::Context& server_;
  int epoll_ = -1;
  std::mutex mutex_;
  std::vector<Peer*> incoming_;
  std::vector<Peer*> peers_;
  std::thread thread_;
  std::atomic<bool> running_{true};
  std::atomic<bool> recordLatency_{false};
  std::atomic<srtp::Profile> profile_{srtp::Profile::kNone};
  LatencyHistogram latency_;
};

// ---------------------------------------------------------------------------------------------------------------
// The sending thread: every publisher's media, paced on a 1 ms tick.
struct MediaOptions {
  double rate = 500;   // video packets per second per publisher
  size_t size = 1000;  // video RTP packet size before SRTP
  double fps = 30;
  bool audio = true;  // plus 50 packets/s of 160 bytes
};

class Sender {
 public:
  Sender(std::vector<Peer*> publishers, MediaOptions o) : publishers_(std::move(publishers)), o_(o) {}
  ~Sender() { stop(); }
  void start() {
    thread_ = std::thread([this] { run(); });
  }
  void stop() {
    running_ = false;
    if (thread_.joinable()) thread_.join();
  }
  uint64_t sent() const { return sent_.load(); }
  uint64_t sendErrors() const { return sendErrors_.load(); }

 private:
  struct Track {
    uint16_t seq = 0;
    uint64_t index = 0;
  };

  void run() {
    const size_t n = publishers_.size();
    std::vector<Track> video(n), audio(n);
    std::vector<Slot> slots(kMaxBatch);
    std::vector<mmsghdr> msgs(kMaxBatch);
    std::vector<iovec> iovs(kMaxBatch);
    const auto perFrame = uint64_t(std::max(1.0, std::ceil(o_.rate / o_.fps)));
    const auto keyEvery = uint64_t(std::max(1.0, o_.fps * 2));
    const int64_t start = nowNs();
    timespec next{};
    clock_gettime(CLOCK_MONOTONIC, &next);
    while (running_) {
      next.tv_nsec += 1'000'000;
      if (next.tv_nsec >= 1'000'000'000) next.tv_nsec -= 1'000'000'000, ++next.tv_sec;
      clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, nullptr);
      const int64_t now = nowNs();
      const double elapsed = double(now - start) / 1e9;
      for (size_t i = 0; i < n; ++i) {
        Peer& p = *publishers_[i];
        size_t count = 0;
        auto add = [&](Kind kind, Track& t, uint32_t ts, bool marker, bool frameStart, bool keyframe, size_t size) {
          Stamp s{t.index, nowNs(), p.publisher, kind, frameStart, keyframe};
          size_t len = writePacket(slots[count].bytes, size, kind, t.seq, ts,
                                   0x10000000u + 2u * p.publisher + uint32_t(kind), marker, s);
          if (p.out->protectRtp({slots[count].bytes, sizeof slots[count].bytes}, len) != srtp::Result::kOk) return;
          iovs[count] = {slots[count].bytes, len};
          msgs[count] = {};
          msgs[count].msg_hdr.msg_iov = &iovs[count];
          msgs[count].msg_hdr.msg_iovlen = 1;
          ++count;
          ++t.seq;
          ++t.index;
        };
        const auto dueVideo = uint64_t(o_.rate * elapsed);
        while (video[i].index < dueVideo && count < kMaxBatch - 1) {
          const uint64_t k = video[i].index;
          const uint64_t frame = k / perFrame;
          const bool frameStart = k % perFrame == 0;
          bool key = frameStart && frame % keyEvery == 0;
          if (frameStart && p.keyframeRequested.exchange(false)) key = true;
          add(Kind::kVideo, video[i], uint32_t(frame * uint64_t(90000 / o_.fps)), k % perFrame == perFrame - 1,
              frameStart, key, o_.size);
        }
        if (o_.audio && audio[i].index < uint64_t(50 * elapsed)) {
          add(Kind::kAudio, audio[i], uint32_t(audio[i].index * 960), false, false, false, 160);
        }
        for (size_t done = 0; done < count;) {
          const int r = sendmmsg(p.fd, msgs.data() + done, unsigned(count - done), 0);
          if (r <= 0) {
            sendErrors_.fetch_add(count - done);
            break;
          }
          done += size_t(r);
        }
        sent_.fetch_add(count, std::memory_order_relaxed);
        p.sentIndex[0].store(audio[i].index);
        p.sentIndex[1].store(video[i].index);
      }
    }
  }

  static constexpr size_t kMaxBatch = 256;
  std::vector<Peer*> publishers_;
  MediaOptions o_;
  std::thread thread_;
  std::atomic<bool> running_{true};
  std::atomic<uint64_t> sent_{0}, sendErrors_{0};
};

// ---------------------------------------------------------------------------------------------------------------
// SDP the client writes. Offers name no header extension: both servers then route by the a=ssrc lines.
std::string publisherOffer(const Peer& p, const std::string& fingerprint, bool audio) {
  std::ostringstream s;
  const std::string mids = audio ? "0 1" : "0";
  s << "v=0\r\no=- " << (1000 + p.publisher) << " 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
    << "a=group:BUNDLE " << mids << "\r\na=msid-semantic: WMS lg\r\n";
  auto common = [&](const std::string& mid) {
    s << "c=IN IP4 0.0.0.0\r\na=rtcp:9 IN IP4 0.0.0.0\r\n"
      << localCandidate(p) << "a=end-of-candidates\r\n"
      << "a=ice-ufrag:" << p.ufrag << "\r\na=ice-pwd:" << p.pwd << "\r\n"
      << "a=fingerprint:" << fingerprint << "\r\na=setup:actpass\r\na=mid:" << mid << "\r\na=sendonly\r\n"
      << "a=rtcp-mux\r\n";
  };
  const uint32_t ssrcBase = 0x10000000u + 2u * p.publisher;
  s << "m=video 9 UDP/TLS/RTP/SAVPF 96\r\n";
  common("0");
  s << "a=msid:lg v" << p.publisher << "\r\na=rtpmap:96 VP8/90000\r\na=rtcp-fb:96 ccm fir\r\n"
    << "a=rtcp-fb:96 nack\r\na=rtcp-fb:96 nack pli\r\na=ssrc:" << ssrcBase + 1 << " cname:lg" << p.publisher
    << "\r\na=ssrc:" << ssrcBase + 1 << " msid:lg v" << p.publisher << "\r\n";
  if (audio) {
    s << "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n";
    common("1");
    s << "a=msid:lg a" << p.publisher << "\r\na=rtpmap:111 opus/48000/2\r\na=fmtp:111 minptime=10;useinbandfec=1\r\n"
      << "a=ssrc:" << ssrcBase << " cname:lg" << p.publisher << "\r\na=ssrc:" << ssrcBase << " msid:lg a" << p.publisher
      << "\r\n";
  }
  return s.str();
}

std::string subscriberOffer(const Peer& p, const std::string& fingerprint, bool audio) {
  std::ostringstream s;
  s << "v=0\r\no=- " << (5000 + p.publisher) << " 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
    << "a=group:BUNDLE " << (audio ? "0 1" : "0") << "\r\n";
  auto section = [&](const char* kind, const char* mid, const char* codecs) {
    s << "m=" << kind << " 9 UDP/TLS/RTP/SAVPF " << codecs << "\r\nc=IN IP4 0.0.0.0\r\n"
      << localCandidate(p) << "a=end-of-candidates\r\na=ice-ufrag:" << p.ufrag << "\r\na=ice-pwd:" << p.pwd
      << "\r\na=fingerprint:" << fingerprint << "\r\na=setup:actpass\r\na=mid:" << mid
      << "\r\na=recvonly\r\na=rtcp-mux\r\n";
  };
  section("video", "0", "96");
  s << "a=rtpmap:96 VP8/90000\r\na=rtcp-fb:96 ccm fir\r\na=rtcp-fb:96 nack\r\na=rtcp-fb:96 nack pli\r\n";
  if (audio) {
    section("audio", "1", "111");
    s << "a=rtpmap:111 opus/48000/2\r\n";
  }
  return s.str();
}

// The answer to a server's offer (Janus's to a subscriber): every m-line it offers, received, with its first codec;
// the client takes the DTLS client role (setup:active).
std::optional<std::string> answerTo(std::string_view offerText, const Peer& p, const std::string& fingerprint) {
  auto offer = sdp::parse(offerText, sdp::Limits{});
  if (!offer) return std::nullopt;
  std::ostringstream s;
  s << "v=0\r\no=- 7 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n";
  std::string bundle;
  for (const auto& m : offer->media) {
    if (m.mid && m.port != 0) bundle += " " + *m.mid;
  }
  s << "a=group:BUNDLE" << bundle << "\r\n";
  for (const auto& m : offer->media) {
    if (m.codecs.empty() || !m.mid) return std::nullopt;
    const auto& c = m.codecs[0];
    const bool live = m.port != 0 && (m.kind == "audio" || m.kind == "video");
    s << "m=" << m.kind << " " << (live ? 9 : 0) << " " << m.proto << " " << int(c.payloadType) << "\r\n"
      << "c=IN IP4 0.0.0.0\r\na=mid:" << *m.mid << "\r\n";
    if (!live) {
      s << "a=inactive\r\n";
      continue;
    }
    s << localCandidate(p) << "a=end-of-candidates\r\na=ice-ufrag:" << p.ufrag << "\r\na=ice-pwd:" << p.pwd
      << "\r\na=fingerprint:" << fingerprint << "\r\na=setup:active\r\na=recvonly\r\na=rtcp-mux\r\n"
      << "a=rtpmap:" << int(c.payloadType) << " " << c.name << "/" << c.clockRate
      << (c.channels ? "/" + std::to_string(*c.channels) : "") << "\r\n";
  }
  return s.str();
}

// ---------------------------------------------------------------------------------------------------------------
// Signaling: HTTP/1.1 for WHIP/WHEP, RFC 6455 for Janus. Blocking sockets with timeouts; control plane only.
int connectTcp(const std::string& hostPort, int timeoutMs, const std::string& bindIp = "") {
  const auto colon = hostPort.rfind(':');
  if (colon == std::string::npos) return -1;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(uint16_t(std::atoi(hostPort.c_str() + colon + 1)));
  if (inet_pton(AF_INET, hostPort.substr(0, colon).c_str(), &a.sin_addr) != 1) return -1;
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  timeval tv{timeoutMs / 1000, (timeoutMs % 1000) * 1000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  if (!bindIp.empty()) {
    sockaddr_in local{};
    local.sin_family = AF_INET;
    inet_pton(AF_INET, bindIp.c_str(), &local.sin_addr);
    (void)bind(fd, reinterpret_cast<sockaddr*>(&local), sizeof local);
  }
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

bool sendAll(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n <= 0) return false;
    data.remove_prefix(size_t(n));
  }
  return true;
}

struct HttpResponse {
  int status = 0;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
};

std::optional<HttpResponse> http(const std::string& hostPort, const std::string& method, const std::string& path,
                                 const std::string& body, std::string* error, const std::string& bindIp = "") {
  const int fd = connectTcp(hostPort, 5000, bindIp);
  if (fd < 0) {
    *error = "cannot connect to " + hostPort;
    return std::nullopt;
  }
  std::string req = method + " " + path + " HTTP/1.1\r\nHost: " + hostPort + "\r\nConnection: close\r\n";
  if (!body.empty()) req += "Content-Type: application/sdp\r\n";
  req += "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  std::string in;
  if (sendAll(fd, req)) {
    char buf[16384];
    for (;;) {
      const ssize_t n = recv(fd, buf, sizeof buf, 0);
      if (n <= 0) break;
      in.append(buf, size_t(n));
      if (in.size() > (1 << 20)) break;
    }
  }
  close(fd);
  const auto end = in.find("\r\n\r\n");
  if (end == std::string::npos || in.size() < 12) {
    *error = method + " " + path + ": no HTTP response";
    return std::nullopt;
  }
  HttpResponse r;
  r.status = std::atoi(in.c_str() + 9);
  std::istringstream lines(in.substr(0, end));
  std::string line;
  std::getline(lines, line);
  while (std::getline(lines, line)) {
    const auto c = line.find(':');
    if (c == std::string::npos) continue;
    std::string name = line.substr(0, c);
    for (auto& ch : name) ch = char(std::tolower(static_cast<unsigned char>(ch)));
    std::string value = line.substr(c + 1);
    while (!value.empty() && (value.front() == ' ')) value.erase(0, 1);
    while (!value.empty() && (value.back() == '\r' || value.back() == ' ')) value.pop_back();
    r.headers[name] = value;
  }
  r.body = in.substr(end + 4);
  return r;
}

class WsClient {
 public:
  ~WsClient() {
    if (fd_ >= 0) close(fd_);
  }
  bool connect(const std::string& hostPort, std::string* error) {
    fd_ = connectTcp(hostPort, 5000);
    if (fd_ < 0) {
      *error = "cannot connect to " + hostPort;
      return false;
    }
    const std::string key = "a2Fpd2EtbG9hZGdlbi1tZWRpYQ==";
    const std::string req = "GET / HTTP/1.1\r\nHost: " + hostPort +
                            "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + key +
                            "\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: janus-protocol\r\n\r\n";
    if (!sendAll(fd_, req)) return false;
    while (buffer_.find("\r\n\r\n") == std::string::npos) {
      char buf[4096];
      const ssize_t n = recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) {
        *error = "no WebSocket handshake from " + hostPort;
        return false;
      }
      buffer_.append(buf, size_t(n));
    }
    if (buffer_.compare(0, 12, "HTTP/1.1 101") != 0) {
      *error = "WebSocket upgrade refused: " + buffer_.substr(0, buffer_.find('\r'));
      return false;
    }
    buffer_.erase(0, buffer_.find("\r\n\r\n") + 4);
    return true;
  }
  bool send(const json::value& v) {
    std::string frame;
    appendFrame(frame, Opcode::kText, json::serialize(v), uint32_t(nowNs()));
    return sendAll(fd_, frame);
  }
  // The next text message within `timeoutMs`, or nullopt.
  std::optional<json::value> receive(int timeoutMs) {
    const int64_t deadline = nowNs() + int64_t(timeoutMs) * 1'000'000;
    for (;;) {
      if (!messages_.empty()) {
        auto m = std::move(messages_.front());
        messages_.pop_front();
        return m;
      }
      const size_t used = decoder_.parse(
          buffer_.data(), buffer_.size(), 16 << 20,
          [&](Opcode, std::string_view text) {
            boost::system::error_code ec;
            auto v = json::parse(text, ec);
            if (!ec) messages_.push_back(std::move(v));
            return true;
          },
          [](Opcode, std::string_view) { return true; });
      buffer_.erase(0, used);
      if (!messages_.empty()) continue;
      const int64_t left = deadline - nowNs();
      if (left <= 0) return std::nullopt;
      pollfd pfd{fd_, POLLIN, 0};
      if (poll(&pfd, 1, int(left / 1'000'000) + 1) <= 0) return std::nullopt;
      char buf[16384];
      const ssize_t n = recv(fd_, buf, sizeof buf, MSG_DONTWAIT);
      if (n <= 0) return std::nullopt;
      buffer_.append(buf, size_t(n));
    }
  }

 private:
  int fd_ = -1;
  std::string buffer_;
  FrameDecoder decoder_;
  std::deque<json::value> messages_;
};

// Janus's request/response pairing: a transaction id per request; events for other transactions are set aside.
class Janus {
 public:
  explicit Janus(WsClient& ws) : ws_(ws) {}
  uint64_t session = 0;

  // Sends `request` and returns the first reply with its transaction that is not an "ack" (for an asynchronous
  // plugin request, the "event"), within 10 s.
  std::optional<json::object> call(json::object request, std::string* error) {
    const std::string tx = "t" + std::to_string(++tx_);
    request["transaction"] = tx;
    if (session && !request.contains("session_id")) request["session_id"] = session;
    if (!ws_.send(request)) {
      *error = "Janus: send failed";
      return std::nullopt;
    }
    const int64_t deadline = nowNs() + 10'000'000'000;
    while (nowNs() < deadline) {
      auto m = ws_.receive(200);
      if (!m || !m->is_object()) continue;
      auto& o = m->as_object();
      const auto* t = o.if_contains("transaction");
      if (!t || !t->is_string() || t->as_string() != tx) continue;
      const auto kind = o.at("janus").as_string();
      if (kind == "ack") continue;
      if (kind == "error") {
        *error = "Janus: " + json::serialize(o);
        return std::nullopt;
      }
      return o;
    }
    *error = "Janus: no reply to " + json::serialize(request).substr(0, 200);
    return std::nullopt;
  }
  void drain() {
    while (ws_.receive(0)) {
    }
  }

 private:
  WsClient& ws_;
  uint64_t tx_ = 0;
};

// ---------------------------------------------------------------------------------------------------------------
struct Options {
  std::string server = "kaiwa";
  std::string http = "127.0.0.1:8080";
  std::string ws = "127.0.0.2:8188";
  std::string localIp = "127.0.0.1";
  std::string room = "lg";
  int publishers = 1;
  int subscribers = 2;
  MediaOptions media;
  double seconds = 5;
  double warmup = 1;
  int joinIntervalMs = 0;  // between two subscribers' joins (0: all at once)
  int serverPid = 0;
  std::string label;
};

struct ProcSample {
  double cpuS = 0;
  long rssKb = 0;
};

ProcSample sampleProc(int pid) {
  ProcSample s;
  if (pid <= 0) return s;
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  const auto close = text.rfind(')');
  if (close != std::string::npos) {
    std::istringstream f(text.substr(close + 2));
    std::string field;
    unsigned long utime = 0, stime = 0;
    for (int i = 3; i <= 15 && f >> field; ++i) {
      if (i == 14) utime = std::stoul(field);
      if (i == 15) stime = std::stoul(field);
    }
    s.cpuS = double(utime + stime) / double(sysconf(_SC_CLK_TCK));
  }
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) s.rssKb = std::atol(line.c_str() + 6);
  }
  return s;
}

double selfCpuS() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return double(u.ru_utime.tv_sec + u.ru_stime.tv_sec) + double(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

// Datagrams the kernel dropped for a full receive buffer, from /proc/net/udp (this network namespace's sockets):
// those of the generator's own sockets (by local port) and all the others (the server's, in the bench's namespace).
// Kept per socket (by inode) so that a socket closed between two readings takes its count with it.
struct UdpDrops {
  std::map<uint64_t, std::pair<bool, uint64_t>> sockets;  // inode -> (the generator's own, drops)
  // What the sockets of this reading dropped since `earlier`: {generator, others}.
  std::pair<uint64_t, uint64_t> since(const UdpDrops& earlier) const {
    std::pair<uint64_t, uint64_t> d{0, 0};
    for (const auto& [inode, v] : sockets) {
      const auto it = earlier.sockets.find(inode);
      const uint64_t before = it == earlier.sockets.end() ? 0 : it->second.second;
      (v.first ? d.first : d.second) += v.second > before ? v.second - before : 0;
    }
    return d;
  }
};
UdpDrops udpDrops(const std::vector<uint16_t>& ownPorts) {
  UdpDrops d;
  std::ifstream f("/proc/net/udp");
  std::string line;
  std::getline(f, line);
  while (std::getline(f, line)) {
    std::istringstream in(line);
    std::vector<std::string> fields;
    for (std::string field; in >> field;) fields.push_back(field);
    if (fields.size() < 13) continue;
    const auto colon = fields[1].find(':');
    if (colon == std::string::npos) continue;
    const auto port = uint16_t(std::stoul(fields[1].substr(colon + 1), nullptr, 16));
    const bool own = std::find(ownPorts.begin(), ownPorts.end(), port) != ownPorts.end();
    d.sockets[std::strtoull(fields[9].c_str(), nullptr, 10)] = {own, std::strtoull(fields.back().c_str(), nullptr, 10)};
  }
  return d;
}

// kaiwa's SFU drop counters by reason, from /metrics (empty for another server or on error).
std::map<std::string, uint64_t> kaiwaDrops(const std::string& hostPort) {
  std::map<std::string, uint64_t> out;
  std::string error;
  auto r = http(hostPort, "GET", "/metrics", "", &error);
  if (!r || r->status != 200) return out;
  std::istringstream in(r->body);
  std::string line;
  const std::string prefix = "kaiwa_sfu_dropped_total{reason=\"";
  while (std::getline(in, line)) {
    if (line.rfind(prefix, 0) != 0) continue;
    const auto end = line.find('"', prefix.size());
    if (end == std::string::npos) continue;
    out[line.substr(prefix.size(), end - prefix.size())] =
        std::strtoull(line.c_str() + line.rfind(' ') + 1, nullptr, 10);
  }
  return out;
}

template <class T>
T quantile(std::vector<T> v, double q) {
  if (v.empty()) return T{};
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, size_t(q * double(v.size() - 1) + 0.5))];
}

bool waitFor(const std::vector<Peer*>& peers, double seconds, std::string* error) {
  const int64_t deadline = nowNs() + int64_t(seconds * 1e9);
  for (;;) {
    bool all = true;
    for (Peer* p : peers) {
      const auto s = p->state.load();
      if (s == PeerState::kFailed) {
        *error = p->error;
        return false;
      }
      all = all && s == PeerState::kConnected;
    }
    if (all) return true;
    if (nowNs() > deadline) {
      *error = "peers not connected in time";
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

int run(const Options& o) {
  std::mt19937_64 rng(uint64_t(nowNs()) ^ uint64_t(getpid()));
  auto cert = dtls::Certificate::generate();
  if (!cert) return std::fprintf(stderr, "cannot make a certificate\n"), 1;
  auto clientCtx = dtls::Context::make(*cert, dtls::Role::kClient);
  auto serverCtx = dtls::Context::make(*cert, dtls::Role::kServer);
  if (!clientCtx || !serverCtx) return std::fprintf(stderr, "cannot make DTLS contexts\n"), 1;
  const std::string& fp = cert->fingerprint();
  const bool janus = o.server == "janus";

  std::vector<std::unique_ptr<Peer>> owned;
  // kaiwa allows 16 transports per client address (whip::Limits): on 127.0.0.1 the peers are spread over 127.1.x.y,
  // 15 to an address, each peer's WHIP/WHEP request made from its own media address.
  int peerCount = 0;
  auto peerIp = [&](int index) {
    if (janus || o.localIp != "127.0.0.1") return o.localIp;
    const int group = index / 15;
    return "127.1." + std::to_string(group / 250) + "." + std::to_string(group % 250 + 1);
  };
  auto newPeer = [&](Role role, int publisher) -> Peer* {
    auto p = std::make_unique<Peer>();
    p->role = role;
    p->publisher = uint16_t(publisher);
    p->ufrag = randomToken(rng, 8);
    p->pwd = randomToken(rng, 24);
    p->tieBreaker = rng();
    if (!openSocket(*p, peerIp(peerCount++))) return nullptr;
    owned.push_back(std::move(p));
    return owned.back().get();
  };
  auto connectUdp = [](Peer& p) {
    return connect(p.fd, reinterpret_cast<sockaddr*>(&p.remote.address), sizeof p.remote.address) == 0;
  };

  Network net(*clientCtx, *serverCtx);
  net.start();
  std::string error;
  std::vector<std::pair<std::string, std::string>> locations;  // WHIP/WHEP resources to DELETE at the end, by address
  WsClient ws;
  Janus jan(ws);
  std::vector<uint64_t> janusFeeds(size_t(o.publishers));
  std::vector<uint64_t> janusRooms(size_t(o.publishers));
  const std::string runId = randomToken(rng, 6);

  auto fail = [&](const std::string& why) {
    std::fprintf(stderr, "media loadgen: %s\n", why.c_str());
    for (const auto& [l, ip] : locations) http(o.http, "DELETE", l, "", &error, ip);
    return 1;
  };

  if (janus) {
    if (!ws.connect(o.ws, &error)) return fail(error);
    auto created = jan.call({{"janus", "create"}}, &error);
    if (!created) return fail(error);
    jan.session = created->at("data").at("id").to_number<uint64_t>();
  }

  // Publishers: signal, then ICE and DTLS.
  std::vector<Peer*> publishers;
  for (int i = 0; i < o.publishers; ++i) {
    Peer* p = newPeer(Role::kPublisher, i);
    if (!p) return fail("cannot open a UDP socket on " + o.localIp);
    const std::string offer = publisherOffer(*p, fp, o.media.audio);
    std::string answer;
    if (janus) {
      auto h = jan.call({{"janus", "attach"}, {"plugin", "janus.plugin.videoroom"}}, &error);
      if (!h) return fail(error);
      const uint64_t handle = h->at("data").at("id").to_number<uint64_t>();
      const uint64_t room = 100000 + (rng() % 800000);
      janusRooms[size_t(i)] = room;
      auto c = jan.call({{"janus", "message"},
                         {"handle_id", handle},
                         {"body",
                          {{"request", "create"},
                           {"room", room},
                           {"publishers", 1},
                           {"bitrate", 0},
                           {"fir_freq", 0},
                           {"audiocodec", "opus"},
                           {"videocodec", "vp8"},
                           {"notify_joining", false}}}},
                        &error);
      if (!c) return fail(error);
      auto j = jan.call({{"janus", "message"},
                         {"handle_id", handle},
                         {"body", {{"request", "join"}, {"ptype", "publisher"}, {"room", room}}}},
                        &error);
      if (!j) return fail(error);
      janusFeeds[size_t(i)] = j->at("plugindata").at("data").at("id").to_number<uint64_t>();
      auto pub = jan.call({{"janus", "message"},
                           {"handle_id", handle},
                           {"body", {{"request", "publish"}, {"audio", o.media.audio}, {"video", true}}},
                           {"jsep", {{"type", "offer"}, {"sdp", offer}, {"trickle", false}}}},
                          &error);
      if (!pub) return fail(error);
      const auto* jsep = pub->if_contains("jsep");
      if (!jsep) return fail("Janus: no answer to the publisher's offer: " + json::serialize(*pub));
      answer = std::string(jsep->at("sdp").as_string());
    } else {
      auto r = http(o.http, "POST", "/whip/" + o.room + "-" + runId + "-" + std::to_string(i), offer, &error, ipOf(*p));
      if (!r) return fail(error);
      if (r->status != 201) return fail("WHIP: " + std::to_string(r->status) + " " + r->body);
      locations.emplace_back(r->headers["location"], ipOf(*p));
      answer = r->body;
    }
    if (auto e = readRemote(answer, p->remote)) return fail(*e);
    if (!connectUdp(*p)) return fail("cannot connect the publisher's socket");
    net.add(p);
    publishers.push_back(p);
  }
  if (!waitFor(publishers, 20, &error)) return fail("publisher: " + error);
  Sender sender(publishers, o.media);
  sender.start();
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  const ProcSample beforeSubscribers = sampleProc(o.serverPid);

  // Subscribers.
  std::vector<Peer*> subscribers;
  for (int i = 0; i < o.publishers; ++i) {
    for (int k = 0; k < o.subscribers; ++k) {
      Peer* p = newPeer(Role::kSubscriber, i);
      if (!p) return fail("cannot open a UDP socket");
      if (janus) {
        auto h = jan.call({{"janus", "attach"}, {"plugin", "janus.plugin.videoroom"}}, &error);
        if (!h) return fail(error);
        const uint64_t handle = h->at("data").at("id").to_number<uint64_t>();
        json::array streams;
        streams.push_back(json::object{{"feed", janusFeeds[size_t(i)]}});
        auto j = jan.call(
            {{"janus", "message"},
             {"handle_id", handle},
             {"body",
              {{"request", "join"}, {"ptype", "subscriber"}, {"room", janusRooms[size_t(i)]}, {"streams", streams}}}},
            &error);
        if (!j) return fail(error);
        const auto* jsep = j->if_contains("jsep");
        if (!jsep) return fail("Janus: no offer for the subscriber: " + json::serialize(*j));
        const std::string offer(jsep->at("sdp").as_string());
        if (auto e = readRemote(offer, p->remote)) return fail(*e);
        p->remote.setup = sdp::Setup::kPassive;  // we answer active: the client's DTLS role
        auto answer = answerTo(offer, *p, fp);
        if (!answer) return fail("cannot answer Janus's offer");
        if (!connectUdp(*p)) return fail("cannot connect the subscriber's socket");
        auto s = jan.call({{"janus", "message"},
                           {"handle_id", handle},
                           {"body", {{"request", "start"}}},
                           {"jsep", {{"type", "answer"}, {"sdp", *answer}, {"trickle", false}}}},
                          &error);
        if (!s) return fail(error);
        p->answerNs = nowNs();
      } else {
        const std::string offer = subscriberOffer(*p, fp, o.media.audio);
        auto r =
            http(o.http, "POST", "/whep/" + o.room + "-" + runId + "-" + std::to_string(i), offer, &error, ipOf(*p));
        if (!r) return fail(error);
        if (r->status != 201) return fail("WHEP: " + std::to_string(r->status) + " " + r->body);
        p->answerNs = nowNs();
        locations.emplace_back(r->headers["location"], ipOf(*p));
        if (auto e = readRemote(r->body, p->remote)) return fail(*e);
        if (!connectUdp(*p)) return fail("cannot connect the subscriber's socket");
      }
      net.add(p);
      subscribers.push_back(p);
      if (o.joinIntervalMs > 0) std::this_thread::sleep_for(std::chrono::milliseconds(o.joinIntervalMs));
    }
  }
  if (!waitFor(subscribers, 30, &error)) return fail("subscriber: " + error);
  std::this_thread::sleep_for(std::chrono::milliseconds(int(o.warmup * 1000)));
  if (janus) jan.drain();

  // The measured window.
  auto receivedNow = [&] {
    uint64_t n = 0;
    for (Peer* p : subscribers) n += p->streams[0].received.load() + p->streams[1].received.load();
    return n;
  };
  std::vector<uint16_t> ownPorts;
  for (const auto& p : owned) ownPorts.push_back(ntohs(p->local.sin_port));
  const UdpDrops drops0 = udpDrops(ownPorts);
  const auto kaiwaDrops0 = janus ? std::map<std::string, uint64_t>{} : kaiwaDrops(o.http);
  net.recordLatency(true);
  const ProcSample s0 = sampleProc(o.serverPid);
  const double g0 = selfCpuS();
  const uint64_t sent0 = sender.sent(), recv0 = receivedNow();
  const int64_t t0 = nowNs();
  int64_t lastKeepalive = t0;
  while (nowNs() - t0 < int64_t(o.seconds * 1e9)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    if (janus && nowNs() - lastKeepalive > 10'000'000'000) {
      ws.send(json::object{{"janus", "keepalive"}, {"session_id", jan.session}, {"transaction", "ka"}});
      jan.drain();
      lastKeepalive = nowNs();
    }
  }
  const double window = double(nowNs() - t0) / 1e9;
  const ProcSample s1 = sampleProc(o.serverPid);
  const double g1 = selfCpuS();
  const uint64_t sent1 = sender.sent(), recv1 = receivedNow();
  net.recordLatency(false);
  sender.stop();
  // What is in flight arrives: a second, since on a shared machine a server descheduled for a few hundred
  // milliseconds still delivers its backlog (the tail would otherwise count as lost).
  std::this_thread::sleep_for(std::chrono::seconds(1));
  net.stop();
  const auto [dropsGenerator, dropsServer] = udpDrops(ownPorts).since(drops0);
  if (!janus) std::this_thread::sleep_for(std::chrono::milliseconds(1100));  // kaiwa publishes counts every second
  std::string serverDrops;
  for (const auto& [reason, n] : janus ? std::map<std::string, uint64_t>{} : kaiwaDrops(o.http)) {
    const auto it = kaiwaDrops0.find(reason);
    const uint64_t delta = n - (it == kaiwaDrops0.end() ? 0 : it->second);
    if (delta) serverDrops += (serverDrops.empty() ? "" : " ") + reason + "=" + std::to_string(delta);
  }

  // Results.
  uint64_t received = 0, lost = 0, reordered = 0, duplicates = 0, badSrtp = 0, wrong = 0, silent = 0;
  std::vector<double> jitterUs, firstFrameMs, firstKeyMs;
  for (Peer* p : subscribers) {
    const Peer& pub = *publishers[p->publisher];
    for (int k = 0; k < 2; ++k) {
      const auto& st = p->streams[k];
      if (k == 0 && !o.media.audio) continue;
      if (!st.started) {
        ++silent;
        continue;
      }
      if (std::getenv("KAIWA_LOADGEN_DEBUG")) {
        std::fprintf(stderr,
                     "subscriber of %d stream %d: first %" PRIu64 " highest %" PRIu64 " received %" PRIu64
                     " sent %" PRIu64 "\n",
                     int(p->publisher), k, st.firstIndex, st.highestIndex, st.received.load(), pub.sentIndex[k].load());
      }
      received += st.received.load();
      lost += st.lost(pub.sentIndex[k].load() - 1);
      reordered += st.reordered;
      duplicates += st.duplicates;
      if (k == 1) jitterUs.push_back(st.jitterNs / 1000.0);
    }
    badSrtp += p->badSrtp;
    wrong += p->wrongPublisher;
    if (p->firstFrameNs) firstFrameMs.push_back(double(p->firstFrameNs - p->answerNs) / 1e6);
    if (p->firstKeyframeNs) firstKeyMs.push_back(double(p->firstKeyframeNs - p->answerNs) / 1e6);
  }
  const auto latency = net.latency();
  const uint64_t forwarded = recv1 - recv0;
  const double serverCpu = s1.cpuS - s0.cpuS;
  // One subscriber here is one WHEP session of one publisher's tracks (a viewer of P publishers holds P of them).
  const size_t streamsPerSubscriber = o.media.audio ? 2 : 1;
  const double rssPerStreamKb = subscribers.empty() ? 0
                                                    : double(s0.rssKb - beforeSubscribers.rssKb) /
                                                          double(subscribers.size() * streamsPerSubscriber);
  const char* profile = srtp::name(net.profile()).data();
  std::printf("%s%s %d pub x %d sub, %.0f pkt/s x %zu B%s, %.1f s: sent %" PRIu64 " (%.0f/s), received %" PRIu64
              " (%.0f/s), lost %" PRIu64 ", reordered %" PRIu64
              ", jitter p50 %.0f us p99 %.0f us, latency p50 %.0f us p99 "
              "%.0f us, first frame p50 %.0f ms max %.0f ms, first keyframe min %.0f ms p50 %.0f ms max %.0f ms",
              o.label.empty() ? "" : (o.label + " ").c_str(), o.server.c_str(), o.publishers, o.subscribers,
              o.media.rate, o.media.size, o.media.audio ? " + audio" : "", window, sent1 - sent0,
              double(sent1 - sent0) / window, forwarded, double(forwarded) / window, lost, reordered,
              quantile(jitterUs, 0.5), quantile(jitterUs, 0.99), double(latency.quantile(0.5)) / 1e3,
              double(latency.quantile(0.99)) / 1e3, quantile(firstFrameMs, 0.5), quantile(firstFrameMs, 1.0),
              quantile(firstKeyMs, 0.0), quantile(firstKeyMs, 0.5), quantile(firstKeyMs, 1.0));
  if (o.serverPid > 0) {
    std::printf(
        ", server CPU %.2f s (%.1f us per forwarded packet, %.0f forwarded/s per core), RSS %+ld kB per %zu "
        "subscriber streams (%.1f kB each)",
        serverCpu, forwarded ? 1e6 * serverCpu / double(forwarded) : 0.0,
        serverCpu > 0 ? double(forwarded) / serverCpu : 0.0, s0.rssKb - beforeSubscribers.rssKb,
        subscribers.size() * streamsPerSubscriber, rssPerStreamKb);
  }
  std::printf(", loadgen CPU %.2f s, %s, UDP receive-buffer drops: generator %" PRIu64 ", server %" PRIu64 "%s%s\n",
              g1 - g0, profile, dropsGenerator, dropsServer,
              serverDrops.empty() ? "" : ", server drops: ", serverDrops.c_str());
  json::object out{{"server", o.server},
                   {"label", o.label},
                   {"publishers", o.publishers},
                   {"subscribers", o.subscribers},
                   {"rate", o.media.rate},
                   {"size", o.media.size},
                   {"audio", o.media.audio},
                   {"seconds", window},
                   {"sent", sent1 - sent0},
                   {"received", forwarded},
                   {"receivedTotal", received},
                   {"lost", lost},
                   {"reordered", reordered},
                   {"duplicates", duplicates},
                   {"badSrtp", badSrtp},
                   {"wrongPublisher", wrong},
                   {"silentStreams", silent},
                   {"sendErrors", sender.sendErrors()},
                   {"jitterP50Us", quantile(jitterUs, 0.5)},
                   {"jitterP99Us", quantile(jitterUs, 0.99)},
                   {"latencyP50Us", double(latency.quantile(0.5)) / 1e3},
                   {"latencyP99Us", double(latency.quantile(0.99)) / 1e3},
                   {"firstFrameP50Ms", quantile(firstFrameMs, 0.5)},
                   {"firstFrameMaxMs", quantile(firstFrameMs, 1.0)},
                   {"firstKeyframeMinMs", quantile(firstKeyMs, 0.0)},
                   {"firstKeyframeP50Ms", quantile(firstKeyMs, 0.5)},
                   {"firstKeyframeMaxMs", quantile(firstKeyMs, 1.0)},
                   {"serverCpuS", serverCpu},
                   {"cpuUsPerForwarded", forwarded ? 1e6 * serverCpu / double(forwarded) : 0.0},
                   {"forwardedPerCoreS", serverCpu > 0 ? double(forwarded) / serverCpu : 0.0},
                   {"rssBeforeSubscribersKb", beforeSubscribers.rssKb},
                   {"rssWithSubscribersKb", s0.rssKb},
                   {"rssPerStreamKb", rssPerStreamKb},
                   {"subscriberStreams", subscribers.size() * streamsPerSubscriber},
                   {"loadgenCpuS", g1 - g0},
                   {"srtpProfile", profile},
                   {"udpDropsGenerator", dropsGenerator},
                   {"udpDropsServer", dropsServer},
                   {"serverDrops", serverDrops}};
  std::printf("%s\n", json::serialize(out).c_str());
  std::fflush(stdout);

  if (janus) {
    ws.send(json::object{{"janus", "destroy"}, {"session_id", jan.session}, {"transaction", "bye"}});
  } else {
    for (const auto& [l, ip] : locations) http(o.http, "DELETE", l, "", &error, ip);
  }
  return lost == 0 && silent == 0 && badSrtp == 0 ? 0 : 3;
}

// ---------------------------------------------------------------------------------------------------------------
// The self-test: the counting on packets made here, through the same write and read paths, no network.
int selfTest() {
  int failures = 0;
  auto check = [&](bool ok, const char* what) {
    if (!ok) {
      std::fprintf(stderr, "self-test FAILED: %s\n", what);
      ++failures;
    }
  };
  alignas(16) uint8_t buf[2048];
  auto feed = [&](StreamStats& st, uint64_t index, int64_t sent, int64_t arrival, bool frameStart, bool key) {
    Stamp s{index, sent, 3, Kind::kVideo, frameStart, key};
    const size_t n = writePacket(buf, 1000, Kind::kVideo, uint16_t(index), 0, 42, false, s);
    auto packet = rtp::Packet::parse({buf, n});
    check(packet.has_value(), "a written packet parses");
    auto back = readStamp(*packet);
    if (!back || back->index != index || back->sentNs != sent || back->publisher != 3 ||
        back->frameStart != frameStart || back->keyframe != key) {
      check(false, "the stamp and the frame flags round-trip");
      return;
    }
    st.onPacket(*back, arrival);
  };
  {
    StreamStats st;  // 0..9 with 4 lost, 7 before 6, and the tail 10..11 never arriving
    const uint64_t order[] = {0, 1, 2, 3, 5, 7, 6, 8, 9};
    for (uint64_t i : order) feed(st, i, int64_t(i) * 1000, int64_t(i) * 1000 + 500, i == 0, i == 0);
    check(st.received == 9, "received counts every packet");
    check(st.reordered == 1, "one late packet is one reordering");
    check(st.lost(11) == 3, "lost counts the hole and the tail by the sender's index");
    check(st.jitterNs == 0, "a constant transit time is no jitter");
  }
  {
    StreamStats st;  // transit alternating 0 and 1000 ns: J converges towards 1000 (RFC 3550 A.8)
    for (uint64_t i = 0; i < 400; ++i)
      feed(st, 100 + i, int64_t(i) * 1000, int64_t(i) * 1000 + (i % 2) * 1000, false, false);
    check(std::fabs(st.jitterNs - 1000) < 1, "jitter of an alternating transit");
    check(st.lost(499) == 0, "nothing lost");
  }
  {
    StreamStats st;  // a duplicate is not a reordering, and it does not hide a loss
    feed(st, 5, 0, 0, false, false);
    feed(st, 5, 0, 0, false, false);
    feed(st, 7, 0, 0, false, false);
    check(st.duplicates == 1 && st.reordered == 0, "a duplicate");
    check(st.lost(7) == 1, "the duplicate does not fill the hole");
  }
  // The check a client sends verifies with the server's password and names both ufrags.
  Peer p;
  p.ufrag = "cli";
  p.remote.ufrag = "srv";
  p.remote.pwd = "server-password-0123456789";
  int fds[2];
  socketpair(AF_UNIX, SOCK_DGRAM, 0, fds);
  p.fd = fds[0];
  sendCheck(p, 12345);
  const ssize_t n = recv(fds[1], buf, sizeof buf, 0);
  close(fds[1]);
  auto m = stun::Message::parse({buf, size_t(std::max<ssize_t>(n, 0))});
  check(m && m->is(stun::Method::kBinding, stun::Class::kRequest), "the check is a Binding request");
  check(m && m->verifyIntegrity(stun::asBytes(p.remote.pwd)) && m->hasFingerprint(), "integrity and fingerprint");
  check(m && m->text(stun::attr::kUsername) == "srv:cli", "USERNAME remote:local");
  check(m && m->has(stun::attr::kUseCandidate) && m->has(stun::attr::kIceControlling), "nominating, controlling");
  std::printf(failures ? "media loadgen self-test: %d failures\n" : "media loadgen self-test: ok\n", failures);
  return failures ? 1 : 0;
}

void usage() {
  std::fprintf(stderr,
               "usage: kaiwa-loadgen media [--server kaiwa|janus] [--http HOST:PORT] [--ws HOST:PORT]\n"
               "         [--local-ip IP] [--publishers N] [--subscribers M] [--rate PKT/S] [--size BYTES] [--fps F]\n"
               "         [--join-interval MS]\n"
               "         [--no-audio] [--seconds S] [--warmup S] [--server-pid PID] [--room NAME] [--label TEXT]\n"
               "       kaiwa-loadgen media --self-test\n");
}

}  // namespace
}  // namespace kaiwa::bench::media

int main(int argc, char** argv) {
  using namespace kaiwa::bench::media;
  Options o;
  int i = 1;
  if (i < argc && std::string_view(argv[i]) == "media") ++i;
  for (; i < argc; ++i) {
    const std::string_view a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        usage();
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--self-test") return selfTest();
    if (a == "--server")
      o.server = value();
    else if (a == "--http")
      o.http = value();
    else if (a == "--ws")
      o.ws = value();
    else if (a == "--local-ip")
      o.localIp = value();
    else if (a == "--room")
      o.room = value();
    else if (a == "--label")
      o.label = value();
    else if (a == "--publishers")
      o.publishers = std::atoi(value().c_str());
    else if (a == "--subscribers")
      o.subscribers = std::atoi(value().c_str());
    else if (a == "--rate")
      o.media.rate = std::atof(value().c_str());
    else if (a == "--size")
      o.media.size = size_t(std::atol(value().c_str()));
    else if (a == "--fps")
      o.media.fps = std::atof(value().c_str());
    else if (a == "--no-audio")
      o.media.audio = false;
    else if (a == "--seconds")
      o.seconds = std::atof(value().c_str());
    else if (a == "--warmup")
      o.warmup = std::atof(value().c_str());
    else if (a == "--join-interval")
      o.joinIntervalMs = std::atoi(value().c_str());
    else if (a == "--server-pid")
      o.serverPid = std::atoi(value().c_str());
    else {
      usage();
      return 2;
    }
  }
  if ((o.server != "kaiwa" && o.server != "janus") || o.publishers < 1 || o.publishers > 64 || o.subscribers < 0 ||
      o.subscribers > 1000 || o.media.rate <= 0 || o.media.rate > 200000 || o.media.size < kMinPacket ||
      o.media.size > 1400 || o.media.fps <= 0 || o.media.fps > 1000 || o.seconds <= 0 || o.seconds > 600 ||
      o.warmup < 0 || o.warmup > 60 || o.joinIntervalMs < 0 || o.joinIntervalMs > 10000) {
    usage();
    return 2;
  }
  if (o.server == "janus" && o.localIp == "127.0.0.1") o.localIp = "127.0.0.2";
  return run(o);
}

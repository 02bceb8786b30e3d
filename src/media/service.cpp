#include "media/service.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <random>
#include <unordered_map>

#include "auth/jwt.hpp"
#include "common/json_text.hpp"
#include "common/metrics.hpp"
#include "common/random.hpp"
#include "dtls/certificate.hpp"
#include "dtls/session.hpp"
#include "ice/demux.hpp"
#include "ice/lite_agent.hpp"
#include "net/loop.hpp"
#include "net/slots.hpp"
#include "net/udp_socket.hpp"
#include "rtp/packet.hpp"
#include "sctp/association.hpp"
#include "sdp/answer.hpp"
#include "sdp/description.hpp"
#include "sfu/active_speaker.hpp"
#include "sfu/data_relay.hpp"
#include "sfu/negotiation.hpp"
#include "sfu/room.hpp"
#include "sfu/router.hpp"
#include "sfu/transport.hpp"
#include "srtp/session.hpp"
#include "stun/message.hpp"

namespace kaiwa::media {

using common::Address;
using net::SlotId;

namespace {

constexpr auto kTick = std::chrono::milliseconds(20);  // ICE consent, DTLS retransmission and held-back PLIs
// usrsctp's timers (retransmissions, delayed acks), run by worker 0 for every association of the process.
constexpr auto kSctpTick = std::chrono::milliseconds(10);
// The label of the one channel kaiwa relays (sfu/data_relay.hpp); a client's other channels are closed.
constexpr std::string_view kRelayLabel = "kaiwa";

http::Response cors(http::Response r) {
  r.headers.emplace_back("Access-Control-Allow-Origin", "*");
  r.headers.emplace_back("Access-Control-Expose-Headers", "Location, ETag, Link");
  return r;
}

http::Response error(unsigned status, std::string why) { return cors(http::Response::text(status, why + "\n")); }

// True when the Content-Type `header` names `type` (RFC 9110 section 8.3.1: case-insensitive, parameters after ';'
// and spaces around the type ignored).
bool mediaTypeIs(std::string_view header, std::string_view type) {
  header = header.substr(0, header.find(';'));
  while (!header.empty() && (header.front() == ' ' || header.front() == '\t')) header.remove_prefix(1);
  while (!header.empty() && (header.back() == ' ' || header.back() == '\t')) header.remove_suffix(1);
  return header.size() == type.size() && std::equal(header.begin(), header.end(), type.begin(), [](char a, char b) {
           return std::tolower(static_cast<unsigned char>(a)) == std::tolower(static_cast<unsigned char>(b));
         });
}

// If-Match (RFC 9110 section 13.1.1): "*", or a list of entity tags compared strongly (a weak tag never matches).
bool ifMatchHolds(std::string_view header, std::string_view etag) {
  while (!header.empty()) {
    const auto comma = header.find(',');
    std::string_view tag = header.substr(0, comma);
    while (!tag.empty() && (tag.front() == ' ' || tag.front() == '\t')) tag.remove_prefix(1);
    while (!tag.empty() && (tag.back() == ' ' || tag.back() == '\t')) tag.remove_suffix(1);
    if (tag == "*" || tag == etag) return true;
    if (comma == std::string_view::npos) break;
    header.remove_prefix(comma + 1);
  }
  return false;
}

std::string hex(uint64_t v) {
  char buf[17];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v, 16);
  return std::string(buf, end);
}

}  // namespace

struct Client;

// The data channels of a native member's publish connection: the association's listener, on the owner worker.
struct DataChannels final : sctp::Association::Listener {
  Client* client = nullptr;
  void onPacket(std::span<const uint8_t> packet) override;
  void onConnected() override {}
  void onChannelOpen(uint16_t stream, const sctp::ChannelParams& params) override;
  void onMessage(uint16_t stream, sctp::Ppid ppid, std::span<const uint8_t> message) override;
  void onChannelClosed(uint16_t stream) override;
  void onClosed() override;
};

// One client transport (a WHIP publisher or a WHEP viewer) on its room's owner worker.
struct Client final : sfu::TransportIo, net::Loop::Watcher {
  Service::Worker* worker = nullptr;
  SlotId id = 0;
  std::string room;
  bool publisher = false;
  std::string secret;  // the session id's random part, so a session URL cannot be guessed from a slot
  std::string ufrag;
  Address clientIp;  // the HTTP client's address (its port 0), for the per-address limit
  std::optional<sfu::Transport> transport;
  std::optional<Address> remote;  // the address the connected socket is connected to
  int fd = -1;
  net::Loop::WatchId watch = 0;
  // A viewer's subscriptions, made when its transport connects (so the first packets and the keyframe request
  // are not spent before the viewer can receive them).
  std::vector<std::pair<sfu::TrackId, sfu::SubscriptionConfig>> pending;
  bool closing = false;
  bool viewerCounted = false;     // counted in its room's viewers
  bool connected = false;         // its DTLS completed
  std::string peer;               // a native SFU room's member (empty for WHIP/WHEP)
  std::string pwd;                // kaiwa's ICE password (a native publisher's renegotiation answers with it again)
  std::string remoteUfrag;        // the client's ICE ufrag (a changed one is an ICE restart)
  std::string remoteFingerprint;  // the client's DTLS fingerprint ("sha-256 AB:…")
  std::string previousUfrag;      // kaiwa's ufrag before its last ICE restart, still routed until the next one
  // Connected sockets for the client's further valid addresses (a page with two host candidates, a client that
  // moved): without one, the kernel may hand that 4-tuple's DTLS and SRTP to another worker's unconnected socket,
  // which cannot route it (only STUN is routed across workers, by ufrag). At most kMaxExtraPaths.
  struct Path final : net::Loop::Watcher {
    Client* client = nullptr;
    int fd = -1;
    Address remote;
    net::Loop::WatchId watch = 0;
    void onReady(uint32_t) override;
  };
  static constexpr size_t kMaxExtraPaths = 3;
  std::vector<std::unique_ptr<Path>> paths;
  // ICE-TCP connections of this transport (media/tcp_port.hpp), by their remote address: a path like a UDP one.
  static constexpr size_t kMaxTcpPaths = 4;
  std::vector<std::pair<Address, TcpId>> tcp;
  const TcpId* tcpTo(const Address& to) const {
    for (const auto& [remote, id] : tcp) {
      if (remote == to) return &id;
    }
    return nullptr;
  }

  void sendTo(const Address& to, std::span<const uint8_t> datagram) override;
  void onValidAddress(const Address& from) override;
  void onConnected() override;
  void onRtp(std::span<uint8_t> packet) override;
  void onRtcp(std::span<uint8_t> packet) override;
  void onApplicationData(std::span<const uint8_t> record) override;
  void onClosed(std::string_view why) override;
  void onReady(uint32_t events) override;

  // Data channels (a native publish connection whose answer accepted the offer's application m-line): the
  // association is made when DTLS is done. The listener is declared first so that it outlives the association.
  bool acceptsData = false;
  uint16_t sctpRemotePort = 5000;  // the offer's a=sctp-port
  DataChannels dataChannels;
  std::unique_ptr<sctp::Association> sctp;
  std::optional<uint16_t> relayStream;  // the `kaiwa` channel
};

class Service::Worker final : public sfu::RouterIo, public TcpPortIo {
 public:
  Worker(Service& service, uint32_t index, dtls::Context dtls)
      : service_(service), loop_(service.pool_.loop(index)), index_(index), dtls_(std::move(dtls)) {}

  ~Worker() {
    for (auto& [name, room] : rooms_) {
      if (room.recording) room.recording->stop("shutdown");
    }
    loop_.cancel(tick_);
    loop_.cancel(speakerTick_);
    loop_.cancel(publish_);
    loop_.cancel(tcpExpire_);
    if (sctpTick_ != 0) loop_.cancel(sctpTick_);
    clients_.forEach([&](SlotId, Client& c) { closeSocket(c); });
    if (fd_ >= 0) {
      loop_.unwatch(watch_, fd_);
      ::close(fd_);
    }
  }

  std::optional<std::string> bind(const Address& listen) {
    std::string err;
    net::UdpBindOptions o;
    o.reusePort = true;
    o.receiveBuffer = o.sendBuffer = 4 << 20;
    fd_ = net::bindUdp(listen, o, &err);
    if (fd_ < 0) return "SFU UDP " + err;
    listen_ = net::localAddress(fd_).value_or(listen);
    watch_ = loop_.watch(fd_, EPOLLIN, listener_);
    if (!watch_) return std::string("SFU epoll: ") + std::strerror(errno);
    tick_ = loop_.every(kTick, [this](TimePoint now) { tick(now); });
    speakerTick_ = loop_.every(sfu::ActiveSpeaker::Config{}.interval, [this](TimePoint now) { tickSpeakers(now); });
    if (service_.tcp_) {
      tcp_.emplace(loop_, index_, *service_.tcp_, *this);
      if (auto e = tcp_->listen(listen_)) return e;
      tcpExpire_ = loop_.every(std::chrono::seconds(1), [this](TimePoint now) { tcp_->expire(now); });
    }
    publish_ = loop_.every(std::chrono::seconds(1), [this](TimePoint) { publishCounters(); });
    if (index_ == 0) {
      lastSctpTick_ = Clock::now();
      sctpTick_ = loop_.every(kSctpTick, [this](TimePoint now) { tickSctp(now); });
    }
    return std::nullopt;
  }
  uint16_t port() const { return listen_.port; }
  uint32_t index() const { return index_; }

  // --- the unconnected socket, and each client's connected one ---
  struct Listener final : net::Loop::Watcher {
    Worker* worker;
    explicit Listener(Worker* w) : worker(w) {}
    void onReady(uint32_t) override { worker->drain(worker->fd_, nullptr); }
  };

  void drain(int fd, Client* client) {
    drain(fd, client, client != nullptr && client->remote ? &*client->remote : nullptr);
  }
  void drain(int fd, Client* client, const Address* remote) {
    const TimePoint now = Clock::now();
    for (int round = 0; round < 16; ++round) {
      const size_t n = recv_.receive(fd);
      for (size_t i = 0; i < n; ++i) {
        auto from = recv_.from(i);
        if (!from || recv_.truncated(i)) {
          ++dropped_;
          continue;
        }
        auto data = recv_.data(i);
        // RecvBatch hands out const views; the transport unprotects in place, in the batch's own buffer.
        std::span<uint8_t> bytes(const_cast<uint8_t*>(data.data()), data.size());
        if (client != nullptr && remote != nullptr && *remote == *from) {
          client->transport->receive(bytes, *from, now);
        } else {
          onDatagram(bytes, *from, now);
        }
        // A fan-out to many subscribers can use up the worker's send buffers within one round: sent early, they are
        // free again before the router would have to drop.
        if (pool_.available() < pool_.capacity() / 4) flush();
      }
      // Flushed every round, not once per wake-up: a backlog of 16 rounds would put up to 16 x kSlots packets into a
      // subscriber's queue of 256 before it is drained, and the router drops what does not fit.
      flush();
      if (n < net::RecvBatch::kSlots) break;
    }
  }

  // A datagram on the unconnected socket (or one that reached a connected socket before it was connected).
  void onDatagram(std::span<uint8_t> bytes, const Address& from, TimePoint now) {
    if (auto id = demux_.byTuple(from)) {
      if (Client* c = clients_.find(*id); c && c->transport) return c->transport->receive(bytes, from, now);
    }
    if (rtp::classify(bytes) != rtp::DatagramKind::kStun) {
      ++dropped_;
      return;
    }
    auto message = stun::Message::parse(bytes);
    auto username = message ? ice::splitUsername(*message) : std::nullopt;
    if (!username) {
      ++dropped_;
      return;
    }
    // kaiwa's ufrag names the owner worker: "w<index>" and random characters.
    const uint32_t owner = ownerOfUfragName(username->local);
    if (owner != index_ && owner < service_.workers_.size()) {
      std::vector<uint8_t> copy(bytes.begin(), bytes.end());
      Service& service = service_;
      service_.pool_.post(owner, [&service, owner, from, copy = std::move(copy)]() mutable {
        service.workers_[owner]->onDatagram(copy, from, Clock::now());
        service.workers_[owner]->flush();
      });
      return;
    }
    auto id = demux_.byUfrag(username->local);
    Client* c = id ? clients_.find(*id) : nullptr;
    if (c == nullptr || !c->transport) {
      ++dropped_;
      return;
    }
    c->transport->receive(bytes, from, now);
  }

  static uint32_t ownerOfUfragName(std::string_view ufrag) {
    if (ufrag.size() < 3 || ufrag[0] != 'w') return UINT32_MAX;
    uint32_t w = 0;
    auto end = ufrag.find('x');
    if (end == std::string_view::npos) return UINT32_MAX;
    auto [p, ec] = std::from_chars(ufrag.data() + 1, ufrag.data() + end, w);
    return ec == std::errc() && p == ufrag.data() + end ? w : UINT32_MAX;
  }

  // Everything leaves through the worker's unconnected socket, which has the same local address and port as the
  // connected ones: SendBatch makes one sendmmsg per run of one socket, so a packet fanned out to ten subscribers is
  // one system call, where their ten connected sockets took ten.
  void send(Client& /*c*/, const Address& to, std::span<const uint8_t> datagram) { send_.add(fd_, to, datagram); }

  void flush() {
    // Every subscriber whose queue filled in this batch: protect each packet in its slot and send it (the router
    // stamps its transport-wide number as it leaves, for the subscriber's bandwidth estimate).
    const TimePoint now = ready_.empty() ? TimePoint{} : Clock::now();
    for (uint32_t sub : ready_) {
      auto it = routerIds_.find(sub);
      Client* c = it == routerIds_.end() ? nullptr : clients_.find(it->second);
      Room* room = c ? findRoom(c->room) : nullptr;
      if (room == nullptr) continue;
      room->router->drain(sub, now, [&](std::span<uint8_t> slot, size_t n) {
        if (!c->transport->sendRtp(slot, n)) ++sendFailed_;
      });
    }
    ready_.clear();
    send_.flush();
  }

  // --- sfu::RouterIo ---
  void onReady(sfu::TransportId subscriber) override { ready_.push_back(subscriber); }
  void sendRtcp(sfu::TransportId to, std::span<const uint8_t> packet) override {
    auto it = routerIds_.find(to);
    Client* c = it == routerIds_.end() ? nullptr : clients_.find(it->second);
    if (c == nullptr || !c->transport || packet.size() > rtcp_.size() - srtp::kMaxTrailer) return;
    std::memcpy(rtcp_.data(), packet.data(), packet.size());
    c->transport->sendRtcp(rtcp_, packet.size());
  }

  // --- sessions, on the owner worker ---
  // A published track of a native member: the router's track and the m-line of kaiwa's answer it came from (its
  // codecs and extension ids, for the subscribers' offers and rewrites).
  struct NativeTrack {
    std::string mid;
    sfu::Source source = sfu::Source::kCamera;
    sfu::TrackConfig config;
    sfu::TrackId track = 0;
    sdp::Media answered;
  };
  // A member of a native SFU room: its publish and subscribe transports (0: none yet) and what it publishes.
  struct Member {
    SlotId publish = 0;
    SlotId subscribe = 0;
    std::string subscribeUfrag;  // kaiwa's ICE credentials of its subscribe connection, from its first offer on
    std::string subscribePwd;
    std::string sessionId;
    // The fingerprint of its publish connection whose transport ended by itself (ICE consent, DTLS): that peer
    // connection cannot get a new transport (its DTLS stays up on the page's side), only a new connection can.
    std::string endedPublishFingerprint;
    std::vector<NativeTrack> tracks;
    std::unordered_map<std::string, std::vector<sdp::Codec>> lineCodecs;  // by subscriber mid: what it last carried
    bool whip = false;  // a WHIP publisher (Roster): it publishes and never receives
    // Its rendered tile sizes by subscribe mid (tile-size), only for mids it was offered: at most 64.
    std::unordered_map<std::string, std::pair<uint16_t, uint16_t>> tiles;
  };
  // The data channel relay of a native room, and its way out: the members' `kaiwa` channels.
  struct DataRoom final : sfu::DataRelayIo {
    DataRoom(Worker& w, std::string name) : worker(w), room(std::move(name)), relay(*this, kMaxDataMessage) {}
    sfu::DataSendResult sendData(std::string_view member, std::span<const uint8_t> message) override {
      return worker.sendData(room, member, message);
    }
    Worker& worker;
    std::string room;
    sfu::DataRelay relay;
  };
  static constexpr size_t kMaxDataMessage = 256 * 1024;  // a=max-message-size, both ways

  struct Room {
    std::unique_ptr<sfu::Router> router;
    std::unique_ptr<DataRoom> data;
    SlotId publisher = 0;
    std::optional<sdp::Description> publisherAnswer;
    std::vector<std::pair<sfu::TrackConfig, sfu::TrackId>> tracks;
    size_t viewers = 0;
    // The native protocol's SFU room (made when its first member enters it).
    std::unique_ptr<sfu::Room> members;
    std::unordered_map<std::string, Member> natives;
    std::vector<std::string> nativeOrder;  // the natives' ids in the order they came (what a WHEP viewer gets first)
    // The room's recording, while it runs: the router's tap, so it is declared after the router (destroyed first).
    std::unique_ptr<Recording> recording;
    bool idle() const { return publisher == 0 && viewers == 0 && natives.empty(); }
  };

  Room* findRoom(const std::string& name) {
    auto it = rooms_.find(name);
    return it == rooms_.end() ? nullptr : &it->second;
  }

  http::Response create(const std::string& room, bool publisher, const sdp::Description& offer, const Address& clientIp,
                        const std::string& base, const std::string& name, const std::string& user) {
    KAIWA_ON_LOOP(loop_);
    if (publisher && service_.roster_ != nullptr) return createMember(room, offer, clientIp, base, name, user);
    const Limits& limits = service_.options_.limits;
    Room& r = rooms_[room];
    if (!r.router) r.router = std::make_unique<sfu::Router>(*this, pool_);
    // A refusal leaves no empty room behind.
    auto refuse = [&](unsigned status, std::string why) {
      if (r.idle()) {
        add(retired_, r.router->counters());
        rooms_.erase(room);
      }
      return error(status, std::move(why));
    };
    if (publisher && r.publisher != 0 && limits.publishersPerRoom <= 1) {
      return refuse(409, "this room has a publisher already (one per room)");
    }
    if (!publisher && r.viewers >= limits.viewersPerRoom) return refuse(503, "this room has its maximum of viewers");
    // What a viewer can receive: the WHIP publisher's tracks, then the native members' in the order they joined the
    // SFU, each with the m-line of kaiwa's answer it came from (its codecs and extension ids).
    struct Offered {
      sfu::TrackId id;
      const sfu::TrackConfig* config;
      const sdp::Media* answered;
    };
    std::vector<Offered> offered;
    if (!publisher) {
      for (const auto& [config, track] : r.tracks) {
        if (const sdp::Media* m = sfu::publishedSection(*r.publisherAnswer, config))
          offered.push_back({track, &config, m});
      }
      for (const std::string& peer : r.nativeOrder) {
        auto it = r.natives.find(peer);
        if (it == r.natives.end()) continue;
        for (const NativeTrack& t : it->second.tracks) offered.push_back({t.track, &t.config, &t.answered});
      }
      if (offered.empty()) return refuse(409, "nothing is published in this room yet");
    }
    std::string why;
    Client* made = newClient(room, "", publisher, clientIp, why);
    if (made == nullptr) return refuse(503, why);
    Client& c = *made;
    c.secret = common::randomToken(16);
    auto fail = [&](unsigned status, std::string why) {
      remove(c.id);
      return error(status, std::move(why));
    };

    sdp::ServerParams params;
    params.iceUfrag = c.ufrag;
    params.icePwd = c.pwd;
    params.fingerprint = service_.fingerprint_;
    for (const auto& ip : service_.options_.announceIps) params.addresses.push_back({ip, port(), service_.tcpPort()});
    params.sessionId = std::to_string(rng_() >> 1);
    params.receive = publisher;
    params.send = !publisher;
    params.acceptData = false;
    // A viewer: each audio/video m-line of its offer takes the next published track of its kind (a viewer that
    // offers two video m-lines receives two cameras). WHEP has no renegotiation: what is published later is not
    // added, and a track that ends leaves its m-line silent.
    std::vector<std::pair<size_t, Offered>> plan;
    if (!publisher) {
      std::vector<bool> taken(offered.size(), false);
      for (size_t i = 0; i < offer.media.size(); ++i) {
        const sdp::Media& m = offer.media[i];
        const bool audio = m.kind == "audio";
        if (!audio && m.kind != "video") continue;
        for (size_t k = 0; k < offered.size(); ++k) {
          if (taken[k] || (offered[k].config->kind == sfu::MediaKind::kAudio) != audio) continue;
          const uint32_t ssrc = uint32_t(rng_()) | 1, rtx = audio ? 0 : uint32_t(rng_()) | 1;
          params.senders.push_back(sfu::outgoingTrack(m, ssrc, rtx, "kaiwa", "kaiwa-" + room));
          plan.push_back({i, offered[k]});
          taken[k] = true;
          break;
        }
      }
    }
    auto answer = sdp::answer(offer, params);
    if (!answer) return fail(400, "offer refused: " + answer.error().message());
    if (auto refused = startTransport(c, offer)) return fail(refused->status, std::move(refused->reason));
    const uint32_t routerId = uint32_t(c.id);

    if (publisher) {
      auto media = sfu::publishedMedia(offer, *answer);
      r.router->addPublisher(routerId, media.publisher);
      for (auto& t : media.tracks) {
        if (auto id = r.router->addTrack(routerId, t)) r.tracks.emplace_back(t, *id);
      }
      r.publisher = c.id;
      r.publisherAnswer = *answer;
    } else {
      r.router->addSubscriber(routerId);
      size_t s = 0;
      for (const auto& [index, what] : plan) {
        const sdp::Media& viewerMedia = answer->media[index];
        const auto& sender = params.senders[s++];
        if (auto sc = sfu::subscriptionConfig(*what.answered, viewerMedia, sender.ssrc, sender.rtxSsrc.value_or(0))) {
          sc->initialSequence = uint16_t(rng_());
          sc->initialTimestamp = uint32_t(rng_());
          c.pending.emplace_back(what.id, *sc);
        }
      }
      ++r.viewers;
      c.viewerCounted = true;
    }
    auto response = cors(http::Response::text(201, sdp::write(*answer)));
    response.contentType = "application/sdp";
    response.headers.emplace_back("Location", base + "/" + hex(c.id) + "." + c.secret);
    response.headers.emplace_back("ETag", etag(c));
    return response;
  }

  // A WHIP publisher as a member of its room (Roster): it joins the room under `name` as peer "whip…", publishes its
  // audio as its microphone and its first two video m-lines as its camera and screen, and leaves when the session
  // ends. It counts against the room's members (the room's capacity) and the SFU room's publishers.
  http::Response createMember(const std::string& room, const sdp::Description& offer, const Address& clientIp,
                              const std::string& base, const std::string& name, const std::string& user) {
    KAIWA_ON_LOOP(loop_);
    Roster* roster = service_.roster_;
    const std::string peer = "whip" + common::randomToken(12);
    Room& r = nativeRoom(room);
    // Everything made here goes again on a refusal, and a room left idle with it.
    auto refuse = [&](unsigned status, std::string why) {
      if (Room* again = findRoom(room)) {
        if (again->natives.erase(peer) > 0) std::erase(again->nativeOrder, peer);
        if (again->members) again->members->removeMember(peer);
      }
      reapIfIdle(room);
      return error(status, std::move(why));
    };
    if (r.members->mayPublish(peer, 1)) return refuse(503, "this room has its maximum of publishers");
    std::string why;
    Client* made = newClient(room, peer, true, clientIp, why);
    if (made == nullptr) return refuse(503, why);
    Client& c = *made;
    c.secret = common::randomToken(16);
    auto fail = [&](unsigned status, std::string why) {
      if (Room* again = findRoom(room)) {
        if (auto it = again->natives.find(peer); it != again->natives.end()) it->second.publish = 0;
      }
      remove(c.id);
      return refuse(status, std::move(why));
    };
    sdp::ServerParams params = serverParams(c.ufrag, c.pwd);
    params.receive = true;
    params.send = false;
    auto answer = sdp::answer(offer, params);
    if (!answer) return fail(400, "offer refused: " + answer.error().message());
    if (auto refused = startTransport(c, offer)) return fail(refused->status, std::move(refused->reason));

    // The member exists before the join, marked as no receiver: the room's observer (addMember, on this thread,
    // inside joinPublisher) then gives it no subscribe connection.
    if (r.natives.try_emplace(peer).second) r.nativeOrder.push_back(peer);
    Member& m = r.natives[peer];
    m.whip = true;
    m.publish = c.id;
    if (auto refused = roster->joinPublisher(room, peer, name, user)) return fail(refused->status, refused->reason);

    Room* joined = findRoom(room);
    if (joined == nullptr || !joined->members) return fail(503, "the room went away");
    Member& member = joined->natives[peer];
    const uint32_t routerId = uint32_t(c.id);
    auto media = sfu::publishedMedia(offer, *answer);
    joined->router->addPublisher(routerId, media.publisher);
    bool microphone = false, camera = false, screen = false;
    for (auto& config : media.tracks) {
      if (!config.rid.empty()) continue;  // simulcast: not in this slice (as for the native door)
      sfu::Source source;
      if (config.kind == sfu::MediaKind::kAudio) {
        if (std::exchange(microphone, true)) continue;
        source = sfu::Source::kMicrophone;
      } else if (!std::exchange(camera, true)) {
        source = sfu::Source::kCamera;
      } else if (!std::exchange(screen, true)) {
        source = sfu::Source::kScreen;
      } else {
        continue;
      }
      const sdp::Media* answered = sfu::publishedSection(*answer, config);
      if (answered == nullptr) continue;
      auto id = joined->router->addTrack(routerId, config);
      if (!id) continue;
      member.tracks.push_back(NativeTrack{config.mid, source, config, *id, *answered});
    }
    std::vector<sfu::PublishedTrack> published;
    for (const NativeTrack& t : member.tracks) published.push_back({t.source, t.config.kind, t.track});
    joined->members->setTracks(peer, std::move(published));
    recordTracks(*joined);
    sendOffers(room, *joined);
    auto response = cors(http::Response::text(201, sdp::write(*answer)));
    response.contentType = "application/sdp";
    response.headers.emplace_back("Location", base + "/" + hex(c.id) + "." + c.secret);
    response.headers.emplace_back("ETag", etag(c));
    return response;
  }

  // The session's entity tag (RFC 9725 section 4.3.1): it names the ICE session, so it is kaiwa's current ufrag and
  // changes with each ICE restart.
  static std::string etag(const Client& c) { return "\"" + c.ufrag + "\""; }

  struct Refusal {
    unsigned status;
    std::string reason;
  };
  // The transport of a WHIP/WHEP session, from the client's offer (its ICE credentials and DTLS fingerprint), routed
  // by kaiwa's ufrag and named to the router. What refuses it says the HTTP status and why.
  std::optional<Refusal> startTransport(Client& c, const sdp::Description& offer) {
    auto remote = sdp::remoteTransport(offer);
    if (!remote) return Refusal{400, "offer refused: " + remote.error().message()};
    if (remote->fingerprints.empty()) return Refusal{400, "offer refused: no fingerprint"};
    sfu::TransportConfig tc;
    tc.local = {c.ufrag, c.pwd};
    tc.remote = {remote->iceUfrag, remote->icePwd};
    tc.remoteFingerprint = remote->fingerprints.front().algorithm + " " + remote->fingerprints.front().value;
    auto transport = sfu::Transport::make(dtls_, tc, Clock::now(), c);
    if (!transport) return Refusal{400, "offer refused: its fingerprint does not parse"};
    transport->releaseDtlsOnceKeyed();  // WHIP and WHEP carry no data channel
    c.transport.emplace(std::move(*transport));
    c.remoteUfrag = remote->iceUfrag;
    if (!demux_.addUfrag(c.ufrag, c.id)) return Refusal{503, "ufrag collision, try again"};
    routerIds_[uint32_t(c.id)] = c.id;
    return std::nullopt;
  }

  // kaiwa's ICE credentials for a transport of this worker: the ufrag names the worker (`w<k>x…`), so a first check
  // that reaches another worker is routed here.
  ice::Credentials newIceCredentials() const {
    return {"w" + std::to_string(index_) + "x" + common::randomToken(8), common::randomToken(24)};
  }

  // The one ICE restart (a WHIP/WHEP PATCH, a native publish re-offer): the transport, its DTLS and SRTP stay; the
  // ICE agent takes new credentials (RFC 8445 section 9). The demultiplexer then routes two ufrags to the transport:
  // the new one, and the current one, which the agent answers until the client's first valid check with the new one
  // (media goes on meanwhile); the one before that is forgotten. False, and nothing changed, on a ufrag collision.
  bool restartIce(Client& c, ice::Credentials local, ice::Credentials remote) {
    // The demultiplexer holds two ufrags per transport: the one before goes first to make room.
    if (!c.previousUfrag.empty()) demux_.removeUfrag(c.previousUfrag);
    if (!demux_.addUfrag(local.ufrag, c.id)) {
      if (!c.previousUfrag.empty()) demux_.addUfrag(c.previousUfrag, c.id);
      return false;
    }
    c.previousUfrag = std::exchange(c.ufrag, local.ufrag);
    c.pwd = local.pwd;
    c.remoteUfrag = remote.ufrag;
    c.transport->restartIce(std::move(local), std::move(remote), Clock::now());
    metrics::add(metrics::registry().sfuIceRestarts);
    return true;
  }

  // PATCH on a WHIP/WHEP session (RFC 9725 section 4.3): 204 for trickled candidates (kaiwa is ICE-lite and needs
  // none), 200 with kaiwa's new credentials and candidates for an ICE restart (new a=ice-ufrag/a=ice-pwd), 412 when
  // If-Match names another ICE session (a PATCH that crossed a restart).
  http::Response patch(Client& c, const sdp::IceFragment& fragment, const std::string& ifMatch) {
    KAIWA_ON_LOOP(loop_);
    if (!ifMatch.empty() && !ifMatchHolds(ifMatch, etag(c))) {
      auto r = error(412, "If-Match names another ICE session");
      r.headers.emplace_back("ETag", etag(c));
      return r;
    }
    if (!fragment.iceUfrag || *fragment.iceUfrag == c.remoteUfrag) return cors(http::Response::text(204, ""));
    if (!c.transport || c.transport->state() == sfu::TransportState::kClosed) return error(404, "no such session");
    ice::Credentials fresh = newIceCredentials();
    auto answer = sdp::iceRestartAnswer(fragment, serverParams(fresh.ufrag, fresh.pwd));
    if (!answer) return error(500, "no ICE restart answer: " + answer.error().message());
    if (!restartIce(c, std::move(fresh), {*fragment.iceUfrag, *fragment.icePwd})) {
      return error(503, "ufrag collision, try again");
    }
    auto response = cors(http::Response::text(200, std::move(*answer)));
    response.contentType = "application/trickle-ice-sdpfrag";
    response.headers.emplace_back("ETag", etag(c));
    return response;
  }

  // The session named by a Location's last segment, if it is this worker's and in `room`.
  Client* session(std::string_view name, const std::string& room) {
    const auto dot = name.find('.');
    if (dot == std::string_view::npos) return nullptr;
    uint64_t id = 0;
    auto [p, ec] = std::from_chars(name.data(), name.data() + dot, id, 16);
    if (ec != std::errc() || p != name.data() + dot) return nullptr;
    Client* c = clients_.find(id);
    // A native member's transports have no secret and no session URL.
    return c && !c->secret.empty() && c->room == room && c->secret == name.substr(dot + 1) ? c : nullptr;
  }

  void remove(SlotId id) {
    Client* c = clients_.find(id);
    if (c == nullptr) return;
    // Every client was counted in create(), whether or not its transport came to be.
    service_.transports_.fetch_sub(1);
    metrics::add(metrics::registry().sfuTransports, -1);
    const uint32_t routerId = uint32_t(id);
    if (c->sctp) sctpDropped_ += c->sctp->counters().dropped;
    if (Room* r = findRoom(c->room)) {
      if (c->relayStream && r->data && isCurrentPublish(*r, *c)) r->data->relay.close(c->peer);
      r->router->removeTransport(routerId);
      if (!c->peer.empty()) {
        auto member = r->natives.find(c->peer);
        if (member != r->natives.end() && member->second.whip && member->second.publish == id &&
            service_.roster_ != nullptr) {
          // Its session ended (DELETE, or ICE consent lost): it leaves the room, after this call (the room's
          // observer comes back here, to removeMember).
          loop_.post(
              [roster = service_.roster_, room = c->room, peer = c->peer] { roster->leavePublisher(room, peer); });
        }
        nativeTransportGone(*r, *c);
      } else if (r->publisher == id) {
        r->publisher = 0;
        r->publisherAnswer.reset();
        r->tracks.clear();
      } else if (!c->publisher && c->viewerCounted) {
        --r->viewers;
      }
      if (r->idle()) {
        add(retired_, r->router->counters());
        if (r->data) add(retiredData_, r->data->relay.counters());
        rooms_.erase(c->room);
      }
    }
    routerIds_.erase(routerId);
    demux_.remove(id);
    closeSocket(*c);
    clients_.erase(id);
  }

  void closeSocket(Client& c) {
    auto tcp = std::move(c.tcp);
    c.tcp.clear();
    for (const auto& [remote, id] : tcp) tcp_->close(id, TcpClose::kTransportGone);
    for (auto& p : c.paths) {
      loop_.unwatch(p->watch, p->fd);
      ::close(p->fd);
    }
    c.paths.clear();
    if (c.fd < 0) return;
    loop_.unwatch(c.watch, c.fd);
    ::close(c.fd);
    c.fd = -1;
  }

  // The client's own socket on the media port, connected to its address: the kernel hands it that 4-tuple.
  void connectClient(Client& c, const Address& to) {
    demux_.bind(to, c.id);
    if (c.fd >= 0) {
      if (*c.remote == to || c.paths.size() >= Client::kMaxExtraPaths) return;
      for (const auto& p : c.paths) {
        if (p->remote == to) return;
      }
      auto path = std::make_unique<Client::Path>();
      path->client = &c;
      path->fd = connectedSocket(to);
      if (path->fd < 0) return;
      path->remote = to;
      path->watch = loop_.watch(path->fd, EPOLLIN, *path);
      if (!path->watch) {
        ::close(path->fd);
        return;
      }
      c.paths.push_back(std::move(path));
      return;
    }
    const int fd = connectedSocket(to);
    if (fd < 0) return;
    c.fd = fd;
    c.remote = to;
    c.watch = loop_.watch(fd, EPOLLIN, c);
    if (!c.watch) closeSocket(c);
  }

  // A socket on the media port connected to `to`, or -1.
  int connectedSocket(const Address& to) {
    net::UdpBindOptions o;
    o.reusePort = true;
    // A publisher's media arrives here, not on the 4 MiB unconnected socket: the default 208 KiB holds ~90 video
    // packets, which a worker descheduled for 45 ms at 2000 packets/s overflows (bench/sfu-vs-janus.sh saw it).
    o.receiveBuffer = 2 << 20;
    int fd = net::bindUdp(listen_, o, nullptr);
    if (fd < 0) return -1;
    sockaddr_storage sa{};
    const unsigned len = to.toSockaddr(sa);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), len) != 0) {
      ::close(fd);
      return -1;
    }
    return fd;
  }

  void tick(TimePoint now) {
    clients_.forEach([&](SlotId, Client& c) {
      if (c.transport && c.transport->nextDeadline() <= now) c.transport->tick(now);
    });
    std::vector<std::pair<std::string, std::string>> retired, ended;
    for (auto& [name, room] : rooms_) {
      if (room.router->nextDeadline() <= now) room.router->tick(now);
      if (room.recording) {
        if (auto failed = room.recording->tick(now)) {
          room.recording->stop(*failed);  // the files close, the manifest says why
          room.recording.reset();
          ended.emplace_back(name, std::move(*failed));
        }
      }
      if (!room.members) continue;
      for (std::string& peer : room.members->retiredBy(now)) retired.emplace_back(name, std::move(peer));
    }
    for (const auto& [room, peer] : retired) removeMember(room, peer);  // after the loop: it may end the room
    for (const auto& [room, reason] : ended) {
      metrics::add(metrics::registry().recordingsFailed);
      if (service_.listener_ != nullptr) service_.listener_->onRecordingStopped(room, reason);
    }
    flush();
  }

  // --- recording (docs/sfu.md, "Recording"), on the owner worker ---
  std::variant<int64_t, SfuError> startRecording(const std::string& room, const std::string& peer,
                                                 const std::string& name) {
    KAIWA_ON_LOOP(loop_);
    if (service_.options_.recordDir.empty()) {
      return SfuError{SfuErrorCode::kRecordingOff, "this server does not record (no --record-dir)"};
    }
    Room& r = nativeRoom(room);
    if (r.recording) return SfuError{SfuErrorCode::kAlreadyRecording, "room '" + room + "' is being recorded already"};
    Recording::Options o;
    o.root = service_.options_.recordDir;
    o.room = room;
    o.by = peer;
    o.byName = name;
    o.limits = service_.options_.limits.record;
    o.recorders = &service_.recorders_;
    auto made = Recording::start(std::move(o), *r.router);
    if (auto* why = std::get_if<std::string>(&made)) {
      reapIfIdle(room);
      return SfuError{SfuErrorCode::kRecordingFailed, std::move(*why)};
    }
    r.recording = std::move(std::get<std::unique_ptr<Recording>>(made));
    metrics::add(metrics::registry().recordingsStarted);
    recordTracks(r);
    return r.recording->startedMs();
  }

  std::optional<SfuError> stopRecording(const std::string& room, std::string_view reason) {
    KAIWA_ON_LOOP(loop_);
    Room* r = findRoom(room);
    if (r == nullptr || !r->recording) {
      return SfuError{SfuErrorCode::kNotRecording, "room '" + room + "' is not being recorded"};
    }
    r->recording->stop(reason);
    r->recording.reset();
    reapIfIdle(room);
    return std::nullopt;
  }

  std::string recordingDirectory(const std::string& room) {
    Room* r = findRoom(room);
    return r != nullptr && r->recording ? r->recording->directory() : std::string();
  }

  // Every published track of the room that its recording does not have yet (it ignores those it has).
  void recordTracks(Room& r) {
    if (!r.recording) return;
    const TimePoint now = Clock::now();
    for (const std::string& peer : r.nativeOrder) {
      auto it = r.natives.find(peer);
      if (it == r.natives.end()) continue;
      for (const NativeTrack& t : it->second.tracks) {
        RecordedSource source;
        source.track = t.track;
        source.peer = peer;
        source.source = std::string(sfu::toString(t.source));
        source.kind = t.config.kind;
        // The publisher sends with the first codec of kaiwa's answer; the others there are repair formats.
        for (const sdp::Codec& codec : t.answered.codecs) {
          const std::string lower = [&] {
            std::string n = codec.name;
            for (char& ch : n) ch = char(std::tolower(static_cast<unsigned char>(ch)));
            return n;
          }();
          if (lower == "rtx" || lower == "red" || lower == "ulpfec" || lower == "flexfec-03") continue;
          source.codec = codec.name;
          source.payloadType = codec.payloadType;
          source.clockRate = codec.clockRate;
          source.channels = uint8_t(codec.channels.value_or(t.config.kind == sfu::MediaKind::kAudio ? 2 : 0));
          break;
        }
        r.recording->addTrack(source, now);
      }
    }
  }

  // The active speaker detectors of the native rooms, on a timer of their own (a tick turns 100 ms of levels into
  // activity); a change goes to the room's members through the listener, after this call.
  void tickSpeakers(TimePoint now) {
    media::Listener* listener = service_.listener_;
    for (auto& [name, room] : rooms_) {
      if (!room.members || room.router->speakers().size() == 0) continue;
      const auto speaker = room.router->tickSpeakers(now);
      if (!speaker || listener == nullptr) continue;
      for (const auto& [peer, member] : room.natives) {
        if (member.publish == 0 || uint32_t(member.publish) != *speaker) continue;
        loop_.post([listener, room = name, who = peer]() { listener->onActiveSpeaker(room, who); });
        break;
      }
    }
  }

  // The counts of every router of this worker (the rooms that ended included) and of the port, as the totals that
  // /metrics shows: the difference since the last publication is added.
  void publishCounters() {
    sfu::RouterCounters sum = retired_;
    for (const auto& [name, room] : rooms_) add(sum, room.router->counters());
    auto& r = metrics::registry();
    const uint64_t now[] = {sum.rtpIn,
                            sum.forwarded,
                            sum.keyframeRequestsSent,
                            sum.nackRetransmitted,
                            sum.badRtp,
                            sum.unknownSsrc,
                            sum.publisherRtx,
                            sum.unmappedPayloadType,
                            sum.unmappedExtension,
                            sum.tooLarge,
                            sum.queueFull + sum.audioDropped,
                            sum.badRtcp,
                            sum.unknownFeedbackSsrc,
                            dropped_,
                            send_.dropped() + sendFailed_,
                            sum.nacksSent,
                            sum.rtxUnwrapped,
                            sum.rtxRecovered,
                            sum.senderReportsSent,
                            sum.receiverReportsSent,
                            sum.badAudioLevel,
                            sum.layerSwitches,
                            sum.transportFeedbackIn,
                            sum.transportFeedbackSent,
                            sum.probePackets,
                            sum.probeBytes};
    std::atomic<uint64_t>* to[] = {
        &r.sfuRtpIn,         &r.sfuForwarded,     &r.sfuKeyframeRequests,    &r.sfuNackRetransmitted,
        &r.sfuDropped[0],    &r.sfuDropped[1],    &r.sfuDropped[2],          &r.sfuDropped[3],
        &r.sfuDropped[4],    &r.sfuDropped[5],    &r.sfuDropped[6],          &r.sfuDropped[7],
        &r.sfuDropped[8],    &r.sfuDropped[9],    &r.sfuDropped[10],         &r.sfuNacksSent,
        &r.sfuRtxUnwrapped,  &r.sfuRtxRecovered,  &r.sfuSenderReports,       &r.sfuReceiverReports,
        &r.sfuBadAudioLevel, &r.sfuLayerSwitches, &r.sfuTransportFeedbackIn, &r.sfuTransportFeedbackOut,
        &r.sfuProbePackets,  &r.sfuProbeBytes};
    static_assert(std::size(now) == std::size(to) && std::size(to) == kPublished);
    for (size_t i = 0; i < kPublished; ++i) {
      metrics::add(*to[i], now[i] - published_[i]);
      published_[i] = now[i];
    }
    // The data channel relay: its rooms' counts, the worker's, and the associations' own drops.
    sfu::DataRelayCounters d = retiredData_;
    for (const auto& [name, room] : rooms_) {
      if (room.data) add(d, room.data->relay.counters());
    }
    uint64_t sctpDropped = sctpDropped_;
    clients_.forEach([&](SlotId, Client& c) { sctpDropped += c.sctp ? c.sctp->counters().dropped : 0; });
    const uint64_t dataNow[] = {d.messagesIn,      d.bytesIn,        d.delivered,   d.bytesDelivered,
                                d.malformed,       d.unknownTarget,  d.bufferFull,  d.tooBig,
                                d.deferredDropped, data_.notRelayed, data_.refused, sctpDropped};
    std::atomic<uint64_t>* dataTo[] = {&r.sfuDataMessagesIn, &r.sfuDataBytesIn, &r.sfuDataDelivered,
                                       &r.sfuDataBytesDelivered};
    static_assert(std::size(dataNow) == 4 + metrics::kSfuDataDropNames.size());
    for (size_t i = 0; i < publishedData_.size(); ++i) {
      metrics::add(i < 4 ? *dataTo[i] : r.sfuDataDropped[i - 4], dataNow[i] - publishedData_[i]);
      publishedData_[i] = dataNow[i];
    }
    // 13/256 is the first fraction lost of at least 5 %.
    int64_t lossy = 0;
    for (const auto& [name, room] : rooms_) lossy += int64_t(room.router->lossySubscriptions(13));
    metrics::add(r.sfuLossySubscriptions, lossy - publishedLossy_);
    publishedLossy_ = lossy;
    int64_t estimating = 0, estimateSum = 0;
    for (const auto& [name, room] : rooms_) {
      const auto [n, sum] = room.router->estimates();
      estimating += int64_t(n);
      estimateSum += int64_t(sum);
    }
    metrics::add(r.sfuBweSubscribers, estimating - publishedEstimating_);
    metrics::add(r.sfuBweEstimateSum, estimateSum - publishedEstimateSum_);
    publishedEstimating_ = estimating;
    publishedEstimateSum_ = estimateSum;
  }

  static void add(sfu::DataRelayCounters& a, const sfu::DataRelayCounters& b) {
    a.messagesIn += b.messagesIn;
    a.bytesIn += b.bytesIn;
    a.delivered += b.delivered;
    a.bytesDelivered += b.bytesDelivered;
    a.malformed += b.malformed;
    a.unknownTarget += b.unknownTarget;
    a.bufferFull += b.bufferFull;
    a.tooBig += b.tooBig;
    a.noticesLost += b.noticesLost;
    a.deferredDropped += b.deferredDropped;
  }
  static void add(sfu::RouterCounters& a, const sfu::RouterCounters& b) {
    a.rtpIn += b.rtpIn;
    a.forwarded += b.forwarded;
    a.badRtp += b.badRtp;
    a.unknownSsrc += b.unknownSsrc;
    a.publisherRtx += b.publisherRtx;
    a.unmappedPayloadType += b.unmappedPayloadType;
    a.unmappedExtension += b.unmappedExtension;
    a.tooLarge += b.tooLarge;
    a.queueFull += b.queueFull;
    a.audioDropped += b.audioDropped;
    a.badRtcp += b.badRtcp;
    a.unknownFeedbackSsrc += b.unknownFeedbackSsrc;
    a.keyframeRequestsIn += b.keyframeRequestsIn;
    a.keyframeRequestsSent += b.keyframeRequestsSent;
    a.nackRetransmitted += b.nackRetransmitted;
    a.nackMissed += b.nackMissed;
    a.nacksSent += b.nacksSent;
    a.nackRequested += b.nackRequested;
    a.rtxUnwrapped += b.rtxUnwrapped;
    a.rtxRecovered += b.rtxRecovered;
    a.senderReportsSent += b.senderReportsSent;
    a.receiverReportsSent += b.receiverReportsSent;
    a.receiverReportsIn += b.receiverReportsIn;
    a.audioLevels += b.audioLevels;
    a.badAudioLevel += b.badAudioLevel;
    a.layerSwitches += b.layerSwitches;
    a.transportFeedbackIn += b.transportFeedbackIn;
    a.transportFeedbackSent += b.transportFeedbackSent;
    a.probePackets += b.probePackets;
    a.probeBytes += b.probeBytes;
    a.simulcastLate += b.simulcastLate;
  }

  void subscribePending(Client& c) {
    Room* r = findRoom(c.room);
    if (r == nullptr) return;
    for (const auto& [track, config] : c.pending) r->router->subscribe(uint32_t(c.id), track, config, Clock::now());
    c.pending.clear();
    if (auto m = c.peer.empty() ? r->natives.end() : r->natives.find(c.peer); m != r->natives.end()) {
      applyTiles(*r, m->second, c.peer);
    }
  }

  // --- data channels (sfu/data_relay.hpp), on the owner worker ---
  // The association of a publish connection whose DTLS is done. Events raised while worker 0 runs usrsctp's timers
  // come back here by a posted task, which also sends what they produced.
  void startData(Client& c) {
    sctp::Association::Options o;
    o.remotePort = c.sctpRemotePort;
    o.maxMessageSize = kMaxDataMessage;
    o.mtu = c.transport->maxApplicationPayload();
    o.dtlsClient = false;  // kaiwa is the DTLS server: its own channels would take odd streams
    Service& service = service_;
    const uint32_t owner = index_;
    o.post = [&service, owner](std::function<void()> task) {
      service.pool_.post(owner, [&service, owner, task = std::move(task)] {
        task();
        service.workers_[owner]->flush();
      });
    };
    c.dataChannels.client = &c;
    c.sctp = std::make_unique<sctp::Association>(std::move(o), c.dataChannels);
    if (!c.sctp->connect()) {
      ++data_.refused;
      c.sctp.reset();
    }
  }

  // The relay knows a member by id: only the member's current publish connection speaks for it (an ended one's
  // late events must not close the channel of the connection that replaced it).
  static bool isCurrentPublish(Room& r, const Client& c) {
    auto it = r.natives.find(c.peer);
    return it != r.natives.end() && it->second.publish == c.id;
  }

  void dataChannelOpened(Client& c, uint16_t stream, const sctp::ChannelParams& params) {
    Room* r = findRoom(c.room);
    if (params.label == kRelayLabel && !c.relayStream && r != nullptr && r->data && isCurrentPublish(*r, c)) {
      c.relayStream = stream;
      r->data->relay.open(c.peer);
      return;
    }
    // One channel per connection is all the relay uses: any other is closed, so a client cannot make kaiwa keep
    // up to 1024 streams' state.
    ++data_.refused;
    c.sctp->closeChannel(stream);
  }

  void dataMessage(Client& c, uint16_t stream, sctp::Ppid ppid, std::span<const uint8_t> message) {
    Room* r = findRoom(c.room);
    if (!c.relayStream || stream != *c.relayStream || ppid != sctp::Ppid::kBinary || r == nullptr || !r->data) {
      ++data_.notRelayed;
      return;
    }
    r->data->relay.receive(c.peer, message);
  }

  void dataChannelClosed(Client& c, std::optional<uint16_t> stream) {
    if (!c.relayStream || (stream && *stream != *c.relayStream)) return;
    c.relayStream.reset();
    if (Room* r = findRoom(c.room); r != nullptr && r->data && isCurrentPublish(*r, c)) r->data->relay.close(c.peer);
  }

  void dataWithoutAssociation() { ++data_.notRelayed; }

  sfu::DataSendResult sendData(const std::string& room, std::string_view member, std::span<const uint8_t> message) {
    Room* r = findRoom(room);
    auto m = r != nullptr ? r->natives.find(std::string(member)) : decltype(r->natives.end()){};
    Client* c = r != nullptr && m != r->natives.end() ? clients_.find(m->second.publish) : nullptr;
    if (c == nullptr || !c->sctp || !c->relayStream) return sfu::DataSendResult::kGone;
    switch (c->sctp->send(*c->relayStream, sctp::Ppid::kBinary, message)) {
      case sctp::Association::SendResult::kSent:
        return sfu::DataSendResult::kSent;
      case sctp::Association::SendResult::kBufferFull:
        return sfu::DataSendResult::kBufferFull;
      case sctp::Association::SendResult::kTooBig:
        return sfu::DataSendResult::kTooBig;
      default:
        return sfu::DataSendResult::kGone;
    }
  }

  // usrsctp's timers for the whole process (worker 0): the time since the last tick, from the real clock.
  void tickSctp(TimePoint now) {
    const auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(now - lastSctpTick_);
    if (elapsed.count() <= 0) return;
    lastSctpTick_ += elapsed;
    if (sctp::Association::live() > 0) sctp::Association::tickTimers(elapsed);
  }

  // --- the native protocol's SFU rooms (docs/protocol.md, "SFU rooms"), on the owner worker ---
  Room& nativeRoom(const std::string& name) {
    Room& r = rooms_[name];
    if (!r.router) r.router = std::make_unique<sfu::Router>(*this, pool_);
    if (!r.members) {
      r.members = std::make_unique<sfu::Room>(service_.options_.limits.room, [this] { return uint32_t(rng_()); });
    }
    if (!r.data) r.data = std::make_unique<DataRoom>(*this, name);
    return r;
  }

  void reapIfIdle(const std::string& name) {
    Room* r = findRoom(name);
    if (r != nullptr && r->idle()) {
      add(retired_, r->router->counters());
      if (r->data) add(retiredData_, r->data->relay.counters());
      rooms_.erase(name);
    }
  }

  void addMember(const std::string& room, const std::string& peer) {
    KAIWA_ON_LOOP(loop_);
    // Back to sfu while retired: the page starts both connections over (it closed its SFU side when it took the
    // mode back), so its old transports and tracks end first.
    if (Room* old = findRoom(room); old && old->members && old->members->retiring(peer)) removeMember(room, peer);
    Room& r = nativeRoom(room);
    if (r.natives.try_emplace(peer).second) r.nativeOrder.push_back(peer);
    if (!r.natives[peer].whip) r.members->addSubscriber(peer);
    sendOffers(room, r);
  }

  void removeMember(const std::string& room, const std::string& peer) {
    KAIWA_ON_LOOP(loop_);
    Room* r = findRoom(room);
    if (r == nullptr || !r->members) return;
    auto it = r->natives.find(peer);
    if (it != r->natives.end()) {
      const SlotId publish = it->second.publish, subscribe = it->second.subscribe;
      r->natives.erase(it);  // first: the transports' removal then finds no member to update
      std::erase(r->nativeOrder, peer);
      for (SlotId id : {publish, subscribe}) {
        if (id != 0) remove(id);
      }
    }
    r = findRoom(room);
    if (r == nullptr || !r->members) return;
    r->members->removeMember(peer);
    sendOffers(room, *r);
    reapIfIdle(room);
  }

  void retireMember(const std::string& room, const std::string& peer) {
    KAIWA_ON_LOOP(loop_);
    Room* r = findRoom(room);
    if (r != nullptr && r->members && r->natives.contains(peer)) r->members->retire(peer, Clock::now());
  }

  void setTileSizes(const std::string& room, const std::string& peer, const std::vector<TileSize>& tiles) {
    KAIWA_ON_LOOP(loop_);
    Room* r = findRoom(room);
    if (r == nullptr || !r->members) return;
    auto it = r->natives.find(peer);
    if (it == r->natives.end()) return;
    const auto& lines = r->members->lines(peer);
    for (const TileSize& t : tiles) {
      const bool offered =
          std::any_of(lines.begin(), lines.end(), [&](const sfu::OfferLine& l) { return l.mid == t.mid; });
      if (offered) it->second.tiles[t.mid] = {t.width, t.height};
    }
    applyTiles(*r, it->second, peer);
  }

  // The member's tile sizes to the router's subscriptions of what its lines carry now.
  void applyTiles(Room& r, Member& m, const std::string& peer) {
    if (m.subscribe == 0 || m.tiles.empty()) return;
    for (const sfu::OfferLine& line : r.members->lines(peer)) {
      auto size = m.tiles.find(line.mid);
      if (size == m.tiles.end() || !line.track) continue;
      r.router->setTileSize(uint32_t(m.subscribe), *line.track, size->second.first, size->second.second);
    }
  }

  std::optional<SfuError> restartSubscribe(const std::string& room, const std::string& peer) {
    KAIWA_ON_LOOP(loop_);
    Room& r = nativeRoom(room);
    r.natives.try_emplace(peer);
    r.members->addSubscriber(peer);  // a member in an sfu room receives; this only makes sure
    if (r.members->restartSubscriber(peer, Clock::now())) {
      metrics::add(metrics::registry().sfuSubscribeRestartsRefused);
      return SfuError{SfuErrorCode::kRateLimited,
                      "one subscribe-restart per " +
                          std::to_string(service_.options_.limits.room.subscribeRestartInterval.count()) + " ms"};
    }
    metrics::add(metrics::registry().sfuSubscribeRestarts);
    Member& m = r.natives[peer];
    const SlotId old = m.subscribe;
    // New ICE credentials and mids from "0": the next offer is for a new peer connection.
    m.subscribe = 0;
    m.subscribeUfrag.clear();
    m.subscribePwd.clear();
    m.lineCodecs.clear();
    if (old != 0) remove(old);  // finds the member no longer using it: nothing else changes
    if (Room* again = findRoom(room)) sendOffers(room, *again);
    return std::nullopt;
  }

  // A native member's transport ended (its ICE consent expired, it unpublished, or it left).
  void nativeTransportGone(Room& r, Client& c) {
    auto it = r.natives.find(c.peer);
    if (it == r.natives.end()) return;
    Member& m = it->second;
    if (m.publish == c.id) {
      m.publish = 0;
      m.endedPublishFingerprint = c.closing ? c.remoteFingerprint : "";
      m.tracks.clear();  // the router removed them with the transport
      r.members->setTracks(c.peer, {});
    } else if (m.subscribe == c.id) {
      // Its page's subscribe connection is dead: what it would receive is not offered again on it (a new one would
      // need a new peer connection, which the protocol does not say yet).
      m.subscribe = 0;
    }
    Service::Worker* self = this;
    std::string room = c.room;
    loop_.post([self, room] {
      if (Room* again = self->findRoom(room); again && again->members) self->sendOffers(room, *again);
    });
  }

  // The one admission of a client transport, for WHIP, WHEP and the native door alike: the bounds per client
  // address and in all. Null (with the reason in `why`) when one is reached.
  Client* newClient(const std::string& room, const std::string& peer, bool publisher, const Address& clientIp,
                    std::string& why) {
    const Limits& limits = service_.options_.limits;
    size_t fromAddress = 0;
    clients_.forEach([&](SlotId, Client& c) { fromAddress += c.clientIp.sameIp(clientIp) ? 1 : 0; });
    if (fromAddress >= limits.transportsPerAddress) {
      why = "too many SFU transports from this address";
      return nullptr;
    }
    if (service_.transports_.fetch_add(1) >= limits.transports) {
      service_.transports_.fetch_sub(1);
      why = "the SFU has its maximum of transports";
      return nullptr;
    }
    metrics::add(metrics::registry().sfuTransports, 1);
    auto client = std::make_unique<Client>();
    Client& c = *client;
    c.worker = this;
    c.room = room;
    c.peer = peer;
    c.publisher = publisher;
    c.clientIp = clientIp;
    auto credentials = newIceCredentials();
    c.ufrag = std::move(credentials.ufrag);
    c.pwd = std::move(credentials.pwd);
    c.id = clients_.insert(std::move(client));
    return &c;
  }

  sdp::ServerParams serverParams(const std::string& ufrag, const std::string& pwd) {
    sdp::ServerParams params;
    params.iceUfrag = ufrag;
    params.icePwd = pwd;
    params.fingerprint = service_.fingerprint_;
    for (const auto& ip : service_.options_.announceIps) params.addresses.push_back({ip, port(), service_.tcpPort()});
    params.sessionId = std::to_string(rng_() >> 1);
    params.acceptData = false;
    return params;
  }

  Service::PublishResult publish(const std::string& room, const std::string& peer, std::string_view sdpText,
                                 const std::vector<TrackRequest>& tracks, const Address& clientIp) {
    KAIWA_ON_LOOP(loop_);
    using E = SfuErrorCode;
    auto offer = sdp::parse(sdpText);
    if (!offer) return SfuError{E::kBadSdp, "not a valid SDP offer: " + offer.error().message()};
    Room& r = nativeRoom(room);
    if (r.natives.try_emplace(peer).second) r.nativeOrder.push_back(peer);
    Member& m = r.natives[peer];
    if (auto refused = r.members->mayPublish(peer, tracks.size())) {
      return *refused == sfu::PublishRefusal::kTooManyTracks
                 ? SfuError{E::kTooManyTracks, "a publisher may have " +
                                                   std::to_string(service_.options_.limits.room.tracksPerPublisher) +
                                                   " tracks"}
                 : SfuError{E::kTooManyPublishers, "this room has its maximum of publishers"};
    }
    for (const auto& t : tracks) {
      const bool listed = std::any_of(offer->media.begin(), offer->media.end(), [&](const sdp::Media& x) {
        return x.mid && *x.mid == t.mid && (x.kind == "audio" || x.kind == "video");
      });
      if (!listed) return SfuError{E::kBadSdp, "track mid '" + t.mid + "' is no audio or video m-line of the offer"};
      if (!sfu::parseSource(t.source)) return SfuError{E::kBadSdp, "unknown source '" + t.source + "'"};
    }
    auto remoteT = sdp::remoteTransport(*offer);
    if (!remoteT) return SfuError{E::kBadSdp, "offer refused: " + remoteT.error().message()};
    if (remoteT->fingerprints.empty()) return SfuError{E::kBadSdp, "offer refused: no fingerprint"};

    const std::string fingerprint = remoteT->fingerprints.front().algorithm + " " + remoteT->fingerprints.front().value;
    Client* c = m.publish != 0 ? clients_.find(m.publish) : nullptr;
    const std::string_view ended = "the publish connection's transport ended: unpublish and publish on a new one";
    if (c != nullptr && c->closing) return SfuError{E::kBadSdp, std::string(ended)};  // its removal is posted
    const bool fresh = c == nullptr;
    // An ICE restart (a new ufrag in a re-offer of the same connection) keeps the transport, its DTLS and SRTP and
    // every track and subscription: only the ICE agent takes new credentials (RFC 8445 section 9).
    const bool iceRestart = !fresh && c->remoteUfrag != remoteT->iceUfrag;
    std::string ufrag = fresh ? "" : c->ufrag, pwd = fresh ? "" : c->pwd;
    if (fresh) {
      if (!m.endedPublishFingerprint.empty() && m.endedPublishFingerprint == fingerprint) {
        return SfuError{E::kBadSdp, std::string(ended)};
      }
      std::string why;
      c = newClient(room, peer, true, clientIp, why);
      if (c == nullptr) return SfuError{E::kLimit, why};
      ufrag = c->ufrag;
      pwd = c->pwd;
    } else if (c->remoteFingerprint != fingerprint) {
      return SfuError{E::kBadSdp, "a new publish connection needs an unpublish first"};
    } else if (iceRestart) {
      auto fresh = newIceCredentials();
      ufrag = std::move(fresh.ufrag);
      pwd = std::move(fresh.pwd);
    }
    sdp::ServerParams params = serverParams(ufrag, pwd);
    params.receive = true;
    params.send = false;
    params.acceptData = true;  // the room's data channel relay rides on the publish connection
    params.maxMessageSize = kMaxDataMessage;
    auto answer = sdp::answer(*offer, params);
    auto failFresh = [&](std::string why) -> Service::PublishResult {
      if (fresh) remove(c->id);
      return SfuError{E::kBadSdp, std::move(why)};
    };
    if (!answer) return failFresh("offer refused: " + answer.error().message());
    if (iceRestart && !restartIce(*c, {ufrag, pwd}, {remoteT->iceUfrag, remoteT->icePwd})) {
      return SfuError{E::kLimit, "ufrag collision, try again"};
    }
    if (fresh) {
      sfu::TransportConfig tc;
      tc.local = {c->ufrag, c->pwd};
      tc.remote = {remoteT->iceUfrag, remoteT->icePwd};
      tc.remoteFingerprint = fingerprint;
      auto transport = sfu::Transport::make(dtls_, tc, Clock::now(), *c);
      if (!transport) return failFresh("offer refused: its fingerprint does not parse");
      c->transport.emplace(std::move(*transport));
      c->remoteUfrag = remoteT->iceUfrag;
      c->remoteFingerprint = fingerprint;
      m.endedPublishFingerprint.clear();
      if (!demux_.addUfrag(c->ufrag, c->id)) {
        remove(c->id);
        return SfuError{E::kLimit, "ufrag collision, try again"};
      }
      routerIds_[uint32_t(c->id)] = c->id;
      m.publish = c->id;
    }
    // Data channels: the answer accepted the offer's application m-line (at most one is accepted: BUNDLE).
    for (size_t i = 0; i < answer->media.size() && i < offer->media.size(); ++i) {
      if (answer->media[i].kind != "application" || answer->media[i].isRejected()) continue;
      c->acceptsData = true;
      c->sctpRemotePort = offer->media[i].sctpPort.value_or(5000);
    }
    if (c->acceptsData && c->connected && !c->sctp) startData(*c);
    // The tracks now: those listed whose m-line kaiwa receives on. A track kept from the last offer keeps its router
    // track (its subscribers go on); one gone ends; a new one is added.
    const uint32_t routerId = uint32_t(c->id);
    auto media = sfu::publishedMedia(*offer, *answer);
    r.router->addPublisher(routerId, media.publisher);
    std::vector<NativeTrack> now;
    for (size_t i = 0; i < media.tracks.size(); ++i) {
      auto& config = media.tracks[i];
      auto req = std::find_if(tracks.begin(), tracks.end(), [&](const TrackRequest& t) { return t.mid == config.mid; });
      if (req == tracks.end()) continue;  // not listed
      // Simulcast (RID streams of one m-line, in the offer's order: the SDK sends the lowest first): one group of
      // layers when the codec is VP8 (whose keyframes and layers the router reads), else the first stream alone.
      std::vector<sfu::TrackConfig> layers;
      if (!config.rid.empty()) {
        if (std::any_of(now.begin(), now.end(), [&](const NativeTrack& t) { return t.mid == config.mid; })) continue;
        for (size_t k = i; k < media.tracks.size() && layers.size() < sfu::SimulcastRewriter::kMaxLayers; ++k) {
          if (media.tracks[k].mid == config.mid) layers.push_back(media.tracks[k]);
        }
        if (!config.vp8) layers.resize(1);
      }
      const sdp::Media* answered = sfu::publishedSection(*answer, config);
      if (answered == nullptr) continue;
      auto old = std::find_if(m.tracks.begin(), m.tracks.end(), [&](const NativeTrack& t) {
        return t.mid == config.mid && t.config.ssrc == config.ssrc && t.config.kind == config.kind &&
               t.config.rid == config.rid;
      });
      NativeTrack t{config.mid, *sfu::parseSource(req->source), config, 0, *answered};
      // A shared tab's sound is not somebody talking: only the microphone picks the active speaker.
      if (t.source != sfu::Source::kMicrophone) t.config.audioLevelExtensionId = 0;
      t.config.screenShare = t.source == sfu::Source::kScreen;
      for (auto& layer : layers) {
        layer.audioLevelExtensionId = 0;
        layer.screenShare = t.config.screenShare;
      }
      spdlog::debug("sfu: {} publishes mid {} rid '{}' ({} layers, vp8 {})", peer, config.mid, config.rid,
                    layers.size(), config.vp8);
      if (old != m.tracks.end()) {
        t.track = old->track;
        old->track = 0;  // kept
      } else if (auto id = layers.size() > 1 ? r.router->addSimulcastTrack(routerId, layers)
                                             : r.router->addTrack(routerId, t.config)) {
        t.track = *id;
      } else {
        continue;
      }
      now.push_back(std::move(t));
    }
    for (const NativeTrack& gone : m.tracks) {
      if (gone.track != 0) r.router->removeTrack(gone.track);
    }
    m.tracks = std::move(now);
    std::vector<sfu::PublishedTrack> published;
    for (const NativeTrack& t : m.tracks) published.push_back({t.source, t.config.kind, t.track});
    r.members->setTracks(peer, std::move(published));
    recordTracks(r);
    sendOffers(room, r);
    return sdp::write(*answer);
  }

  void unpublish(const std::string& room, const std::string& peer) {
    KAIWA_ON_LOOP(loop_);
    Room* r = findRoom(room);
    if (r == nullptr || !r->members) return;
    auto it = r->natives.find(peer);
    if (it == r->natives.end()) return;
    it->second.endedPublishFingerprint.clear();
    // A retired member's unpublish says its mesh connections carry media now: both its transports end.
    if (r->members->retiring(peer)) return removeMember(room, peer);
    if (it->second.publish == 0) return;
    remove(it->second.publish);  // nativeTransportGone ends its tracks for everybody
  }

  const NativeTrack* publishedTrack(Room& r, sfu::TrackId id) {
    for (auto& [peer, m] : r.natives) {
      for (const NativeTrack& t : m.tracks) {
        if (t.track == id) return &t;
      }
    }
    return nullptr;
  }

  // kaiwa's offers to the subscribers whose tracks changed, delivered through the listener after this call.
  void sendOffers(const std::string& room, Room& r) {
    for (sfu::Offer& o : r.members->takeOffers()) {
      Member& m = r.natives[o.peer];
      if (m.subscribeUfrag.empty()) {
        auto credentials = newIceCredentials();
        m.subscribeUfrag = std::move(credentials.ufrag);
        m.subscribePwd = std::move(credentials.pwd);
        m.sessionId = std::to_string(rng_() >> 1);
      }
      std::vector<sdp::OutgoingTrack> lines;
      std::string tracks = "[";
      for (const sfu::OfferLine& line : o.lines) {
        sdp::OutgoingTrack t;
        t.mid = line.mid;
        t.kind = std::string(sfu::toString(line.kind));
        const NativeTrack* published = line.track ? publishedTrack(r, *line.track) : nullptr;
        auto& codecs = m.lineCodecs[line.mid];
        if (published != nullptr) {
          t.direction = sdp::Direction::kSendOnly;
          t.streamId = line.peer;
          t.trackId = line.peer + ":" + std::string(sfu::toString(line.source));
          t.cname = line.peer;
          t.ssrc = line.ssrc;
          codecs.clear();
          bool rtx = false;
          for (sdp::Codec codec : published->answered.codecs) {
            // kaiwa estimates each subscriber's bandwidth from its transport-cc feedback (the router writes kaiwa's
            // own transport-wide numbers); it reads no REMB.
            std::erase_if(codec.feedback, [](const sdp::RtcpFeedback& f) { return f.type == "goog-remb"; });
            rtx = rtx || codec.name == "rtx" || codec.name == "RTX";
            codecs.push_back(std::move(codec));
          }
          if (rtx) t.rtxSsrc = line.rtxSsrc;
          for (const sdp::Extmap& e : published->answered.extmaps) {
            // MID and RID name the publisher's m-lines, not the subscriber's. transport-cc is kept: its element
            // carries kaiwa's own numbers towards the subscriber.
            if (e.uri == sdp::uri::kMid || e.uri == sdp::uri::kRid || e.uri == sdp::uri::kRepairedRid) continue;
            t.extmaps.push_back(e);
          }
          if (tracks.size() > 1) tracks += ',';
          tracks += "{\"mid\":";
          common::appendJsonString(tracks, line.mid);
          tracks += ",\"peer\":";
          common::appendJsonString(tracks, line.peer);
          tracks += ",\"source\":\"";
          tracks += sfu::toString(line.source);
          tracks += "\",\"kind\":\"";
          tracks += sfu::toString(line.kind);
          tracks += "\"}";
        } else {
          t.direction = sdp::Direction::kInactive;
          t.streamId = "-";
          t.trackId = "inactive" + line.mid;
          t.cname = "kaiwa";
          t.ssrc = line.ssrc;
          if (codecs.empty()) codecs = sdp::defaultOfferCodecs(t.kind);
        }
        t.codecs = codecs;
        lines.push_back(std::move(t));
      }
      tracks += ']';
      sdp::ServerParams params = serverParams(m.subscribeUfrag, m.subscribePwd);
      params.sessionId = m.sessionId;
      params.sessionVersion = std::to_string(o.version);
      auto offer = sdp::offer(lines, std::nullopt, params);
      if (!offer) {
        spdlog::warn("sfu: no offer for {} in room '{}': {}", o.peer, room, offer.error().message());
        continue;
      }
      media::Listener* listener = service_.listener_;
      if (listener == nullptr) continue;
      loop_.post([listener, room, peer = o.peer, version = o.version, sdp = sdp::write(*offer),
                  tracks = std::move(tracks)]() mutable {
        listener->onSubscribeOffer(room, peer, version, std::move(sdp), std::move(tracks));
      });
    }
  }

  std::optional<SfuError> subscribeAnswer(const std::string& room, const std::string& peer, std::string_view sdpText,
                                          uint64_t version, const Address& clientIp) {
    KAIWA_ON_LOOP(loop_);
    using E = SfuErrorCode;
    Room* r = findRoom(room);
    auto member = r && r->members ? r->natives.find(peer) : decltype(r->natives.end()){};
    if (r == nullptr || !r->members || member == r->natives.end()) {
      return SfuError{E::kStaleAnswer, "no subscribe-offer is outstanding"};
    }
    if (r->members->outstanding(peer) != version) {
      return SfuError{E::kStaleAnswer, "version " + std::to_string(version) + " is not the outstanding offer"};
    }
    auto answer = sdp::parse(sdpText);
    if (!answer) return SfuError{E::kBadSdp, "not a valid SDP answer: " + answer.error().message()};
    auto remoteT = sdp::remoteTransport(*answer);
    if (!remoteT) return SfuError{E::kBadSdp, "answer refused: " + remoteT.error().message()};
    if (remoteT->fingerprints.empty()) return SfuError{E::kBadSdp, "answer refused: no fingerprint"};
    if (remoteT->setup == sdp::Setup::kPassive) return SfuError{E::kBadSdp, "answer refused: kaiwa is the DTLS server"};
    Member& m = member->second;
    Client* c = m.subscribe != 0 ? clients_.find(m.subscribe) : nullptr;
    if (c == nullptr) {
      std::string why;
      c = newClient(room, peer, false, clientIp, why);
      if (c == nullptr) return SfuError{E::kLimit, why};
      demux_.remove(c->id);
      c->ufrag = m.subscribeUfrag;
      c->pwd = m.subscribePwd;
      sfu::TransportConfig tc;
      tc.local = {c->ufrag, c->pwd};
      tc.remote = {remoteT->iceUfrag, remoteT->icePwd};
      tc.remoteFingerprint = remoteT->fingerprints.front().algorithm + " " + remoteT->fingerprints.front().value;
      auto transport = sfu::Transport::make(dtls_, tc, Clock::now(), *c);
      if (!transport || !demux_.addUfrag(c->ufrag, c->id)) {
        remove(c->id);
        return SfuError{E::kBadSdp, "answer refused: its fingerprint does not parse"};
      }
      transport->releaseDtlsOnceKeyed();  // kaiwa's offers to subscribers have no data channel
      c->transport.emplace(std::move(*transport));
      c->remoteUfrag = remoteT->iceUfrag;
      routerIds_[uint32_t(c->id)] = c->id;
      r->router->addSubscriber(uint32_t(c->id));
      m.subscribe = c->id;
    } else if (c->remoteUfrag != remoteT->iceUfrag) {
      return SfuError{E::kBadSdp, "an ICE restart of the subscribe connection is not supported"};
    }
    auto result = r->members->answer(peer, version);
    if (!result.changes) return SfuError{E::kStaleAnswer, "no subscribe-offer is outstanding"};
    const uint32_t sub = uint32_t(c->id);
    for (sfu::TrackId gone : result.changes->stop) {
      r->router->unsubscribe(sub, gone);
      std::erase_if(c->pending, [gone](const auto& p) { return p.first == gone; });
    }
    for (const sfu::OfferLine& line : result.changes->start) {
      const NativeTrack* published = publishedTrack(*r, *line.track);
      auto viewer = std::find_if(answer->media.begin(), answer->media.end(),
                                 [&](const sdp::Media& x) { return x.mid && *x.mid == line.mid && x.port != 0; });
      if (published == nullptr || viewer == answer->media.end()) continue;
      auto sc = sfu::subscriptionConfig(published->answered, *viewer, line.ssrc, line.rtxSsrc);
      if (!sc) continue;
      if (std::none_of(viewer->codecs.begin(), viewer->codecs.end(),
                       [](const sdp::Codec& x) { return x.name == "rtx" || x.name == "RTX"; })) {
        sc->rtxSsrc = 0;
      }
      sc->initialSequence = uint16_t(rng_());
      sc->initialTimestamp = uint32_t(rng_());
      if (c->connected) {
        r->router->subscribe(sub, *line.track, *sc, Clock::now());
      } else {
        c->pending.emplace_back(*line.track, *sc);
      }
    }
    applyTiles(*r, m, peer);
    sendOffers(room, *r);
    return std::nullopt;
  }

  Room* roomOf(Client& c) { return findRoom(c.room); }
  void sendTcp(TcpId id, std::span<const uint8_t> datagram) { tcp_->send(id, datagram); }

  // --- TcpPortIo: the ICE-TCP connections of this worker ---
  std::optional<uint32_t> ownerOfUfrag(std::string_view ufrag) override {
    const uint32_t owner = ownerOfUfragName(ufrag);
    if (owner >= service_.workers_.size()) return std::nullopt;
    return owner;
  }
  void handOver(uint32_t owner, std::unique_ptr<TcpConnection> connection) override {
    Service& service = service_;
    service_.pool_.post(owner, [&service, owner, connection = std::move(connection)]() mutable {
      service.workers_[owner]->tcp_->adopt(std::move(connection));
    });
  }
  bool attach(std::string_view ufrag, TcpId connection, const Address& remote, SlotId& transport,
              TcpClose& why) override {
    auto id = demux_.byUfrag(ufrag);
    Client* c = id ? clients_.find(*id) : nullptr;
    if (c == nullptr || !c->transport || c->closing) {
      why = TcpClose::kUnknownUfrag;
      return false;
    }
    if (c->tcp.size() >= Client::kMaxTcpPaths) {
      why = TcpClose::kTooManyPaths;
      return false;
    }
    c->tcp.emplace_back(remote, connection);
    transport = c->id;
    return true;
  }
  void onFrame(SlotId transport, std::span<uint8_t> frame, const Address& remote, TimePoint now) override {
    Client* c = clients_.find(transport);
    if (c != nullptr && c->transport) c->transport->receive(frame, remote, now);
  }
  void afterFrames() override { flush(); }
  std::optional<TimePoint> lastValidCheck(SlotId transport, const Address& remote) override {
    Client* c = clients_.find(transport);
    if (c == nullptr || !c->transport) return std::nullopt;
    for (const ice::Path& p : c->transport->ice().paths()) {
      if (p.remote == remote) return p.lastValid;
    }
    return std::nullopt;
  }
  void onTcpClosed(SlotId transport, TcpId connection) override {
    if (Client* c = clients_.find(transport)) {
      std::erase_if(c->tcp, [&](const auto& t) { return t.second == connection; });
    }
  }
  net::Loop& loop() { return loop_; }

 private:
  Service& service_;
  net::Loop& loop_;
  uint32_t index_;
  dtls::Context dtls_;
  int fd_ = -1;
  Address listen_;
  Listener listener_{this};
  net::Loop::WatchId watch_ = 0;
  net::Loop::TimerId tick_ = 0;
  net::Loop::TimerId speakerTick_ = 0;
  net::RecvBatch recv_;
  net::SendBatch send_;
  ice::Demux demux_;
  net::Slots<Client> clients_;
  // The buffers of every router's send queues on this worker; declared before the rooms, which give them back.
  sfu::SendPool pool_;
  std::unordered_map<std::string, Room> rooms_;
  std::unordered_map<uint32_t, SlotId> routerIds_;
  std::vector<uint32_t> ready_;
  alignas(16) std::array<uint8_t, 1500 + srtp::kMaxTrailer> rtcp_{};  // Transport::sendRtcp protects in place
  std::mt19937_64 rng_{std::random_device{}()};
  uint64_t dropped_ = 0;         // datagrams no transport takes
  uint64_t sendFailed_ = 0;      // packets a transport could not send (not connected yet, or closing)
  sfu::RouterCounters retired_;  // the counts of rooms that ended
  sfu::DataRelayCounters retiredData_;
  struct DataCounts {
    uint64_t refused = 0;     // channels other than the relay's, and associations usrsctp would not start
    uint64_t notRelayed = 0;  // messages on another stream or of another PPID, SCTP without an association
  } data_;
  uint64_t sctpDropped_ = 0;  // the associations' own drops (too big, unopened stream, bad DCEP), of ended ones
  std::array<uint64_t, 4 + metrics::kSfuDataDropNames.size()> publishedData_{};
  net::Loop::TimerId sctpTick_ = 0;
  TimePoint lastSctpTick_{};
  static constexpr size_t kPublished = 26;
  std::array<uint64_t, kPublished> published_{};
  int64_t publishedLossy_ = 0;
  int64_t publishedEstimating_ = 0;  // subscribers with an estimate, and their sum, as last published
  int64_t publishedEstimateSum_ = 0;
  net::Loop::TimerId publish_ = 0;
  std::optional<TcpPort> tcp_;  // ICE-TCP on the media port (when Options::tcp)
  net::Loop::TimerId tcpExpire_ = 0;
};

void Client::sendTo(const Address& to, std::span<const uint8_t> datagram) {
  if (const TcpId* tcpId = tcpTo(to)) return worker->sendTcp(*tcpId, datagram);
  worker->send(*this, to, datagram);
}
void Client::onValidAddress(const Address& from) {
  if (tcpTo(from) == nullptr) worker->connectClient(*this, from);
}
void Client::onConnected() {
  connected = true;
  worker->subscribePending(*this);
  if (acceptsData && !sctp) worker->startData(*this);
}
void Client::onRtp(std::span<uint8_t> packet) {
  if (!publisher) return;
  if (auto* r = worker->roomOf(*this)) r->router->onPublisherRtp(uint32_t(id), packet, Clock::now());
}
void Client::onRtcp(std::span<uint8_t> packet) {
  auto* r = worker->roomOf(*this);
  if (r == nullptr) return;
  if (publisher) return r->router->onPublisherRtcp(uint32_t(id), packet, Clock::now());
  r->router->onSubscriberRtcp(uint32_t(id), packet, Clock::now());
}
void Client::onClosed(std::string_view why) {
  if (closing) return;
  closing = true;
  spdlog::debug("sfu: transport of room '{}' closed: {}", room, why);
  Service::Worker* w = worker;
  const SlotId self = id;
  w->loop().post([w, self] { w->remove(self); });
}
void Client::onApplicationData(std::span<const uint8_t> record) {
  if (sctp)
    sctp->receive(record);
  else
    worker->dataWithoutAssociation();
}
void DataChannels::onPacket(std::span<const uint8_t> packet) { client->transport->sendApplicationData(packet); }
void DataChannels::onChannelOpen(uint16_t stream, const sctp::ChannelParams& params) {
  client->worker->dataChannelOpened(*client, stream, params);
}
void DataChannels::onMessage(uint16_t stream, sctp::Ppid ppid, std::span<const uint8_t> message) {
  client->worker->dataMessage(*client, stream, ppid, message);
}
void DataChannels::onChannelClosed(uint16_t stream) { client->worker->dataChannelClosed(*client, stream); }
void DataChannels::onClosed() { client->worker->dataChannelClosed(*client, std::nullopt); }
void Client::onReady(uint32_t) { worker->drain(fd, this); }
void Client::Path::onReady(uint32_t) { client->worker->drain(fd, client, &remote); }

void Service::addMember(const std::string& room, const std::string& peer) { ownerWorker(room).addMember(room, peer); }
void Service::removeMember(const std::string& room, const std::string& peer) {
  ownerWorker(room).removeMember(room, peer);
}
Service::PublishResult Service::publish(const std::string& room, const std::string& peer, std::string_view sdp,
                                        const std::vector<TrackRequest>& tracks, const Address& clientIp) {
  return ownerWorker(room).publish(room, peer, sdp, tracks, clientIp);
}
std::optional<SfuError> Service::subscribeAnswer(const std::string& room, const std::string& peer, std::string_view sdp,
                                                 uint64_t version, const Address& clientIp) {
  return ownerWorker(room).subscribeAnswer(room, peer, sdp, version, clientIp);
}
void Service::unpublish(const std::string& room, const std::string& peer) { ownerWorker(room).unpublish(room, peer); }
void Service::retireMember(const std::string& room, const std::string& peer) {
  ownerWorker(room).retireMember(room, peer);
}
void Service::setTileSizes(const std::string& room, const std::string& peer, const std::vector<TileSize>& tiles) {
  ownerWorker(room).setTileSizes(room, peer, tiles);
}
std::optional<SfuError> Service::restartSubscribe(const std::string& room, const std::string& peer) {
  return ownerWorker(room).restartSubscribe(room, peer);
}

std::variant<int64_t, SfuError> Service::startRecording(const std::string& room, const std::string& peer,
                                                        const std::string& name) {
  return ownerWorker(room).startRecording(room, peer, name);
}
std::optional<SfuError> Service::stopRecording(const std::string& room, std::string_view reason) {
  return ownerWorker(room).stopRecording(room, reason);
}
std::string Service::recordingDirectory(const std::string& room) { return ownerWorker(room).recordingDirectory(room); }

Service::Service(net::WorkerPool& pool, Options options) : pool_(pool), options_(std::move(options)) {}
Service::~Service() = default;

std::optional<std::string> Service::start() {
  auto certificate = dtls::Certificate::generate();
  if (!certificate) return "SFU: the DTLS certificate could not be made";
  fingerprint_ = certificate->fingerprint();
  Address listen = options_.listen;
  // SO_REUSEPORT would let a second kaiwa of the same user share the port (and take half of every client's first
  // checks): a plain bind first tells that the port is someone else's.
  if (listen.port != 0) {
    std::string err;
    const int probe = net::bindUdp(listen, net::UdpBindOptions{}, &err);
    if (probe < 0) return "SFU UDP " + err;
    ::close(probe);
  }
  if (options_.tcp) {
    if (listen.port != 0) {
      std::string err;
      const int probe = net::listenTcp(listen, false, &err);
      if (probe < 0) return "SFU TCP " + err;
      ::close(probe);
    }
    tcp_ = std::make_unique<TcpShared>(options_.tcpLimits);
  }
  for (uint32_t i = 0; i < pool_.size(); ++i) {
    auto ctx = dtls::Context::make(*certificate, dtls::Role::kServer);
    if (!ctx) return "SFU: the DTLS context could not be made";
    workers_.push_back(std::make_unique<Worker>(*this, i, std::move(*ctx)));
    if (auto e = workers_.back()->bind(listen)) return e;
    listen.port = workers_.back()->port();  // an ephemeral port (0) is the first worker's for all
  }
  port_ = listen.port;
  if (options_.announceIps.empty()) {
    const bool unspecified = std::all_of(listen.ip.begin(), listen.ip.end(), [](uint8_t b) { return b == 0; });
    if (!unspecified) {
      options_.announceIps.push_back(listen.ipString());
    } else {
      // A wildcard address is no candidate: announce every address of the machine the port is reachable at (of the
      // listen family; [::] is dual-stack), the routable ones first and loopback last, so a client elsewhere on the
      // network connects as one on this machine does. IPv6 link-local addresses are left out (they need a scope).
      // Behind NAT only --sfu-announce-ip knows the public address.
      std::vector<std::string> routable, loopback;
      for (const common::Address& a : net::interfaceAddresses()) {
        if (listen.family == common::Family::kV4 && a.family != common::Family::kV4) continue;
        const bool v6 = a.family == common::Family::kV6;
        if (v6 && a.ip[0] == 0xfe && (a.ip[1] & 0xc0) == 0x80) continue;
        const bool lo = v6 ? a.ipString() == "::1" : a.ip[0] == 127;
        (lo ? loopback : routable).push_back(a.ipString());
      }
      if (loopback.empty()) loopback.push_back(listen.family == common::Family::kV4 ? "127.0.0.1" : "::1");
      options_.announceIps = routable;
      options_.announceIps.insert(options_.announceIps.end(), loopback.begin(), loopback.end());
      spdlog::info("sfu: listening on a wildcard address; candidates: {} (--sfu-announce-ip to choose)",
                   fmt::join(options_.announceIps, ", "));
    }
  }
  return std::nullopt;
}

bool Service::http(const http::Request& req, http::Responder& respond) {
  std::string_view path = req.path;
  if (!path.starts_with("/whip/") && !path.starts_with("/whep/")) return false;
  path.remove_prefix(6);
  auto room = http::percentDecode(path.substr(0, path.find('/')));
  if (!room || !options_.validRoomName(*room)) {
    respond(error(404, "no such room name"));
    return true;
  }
  if (req.method == "OPTIONS") {
    auto r = cors(http::Response::text(204, ""));
    r.headers.emplace_back("Access-Control-Allow-Methods", "POST, PATCH, DELETE, OPTIONS");
    r.headers.emplace_back("Access-Control-Allow-Headers", "Authorization, Content-Type, If-Match");
    r.headers.emplace_back("Accept-Post", "application/sdp");
    respond(std::move(r));
    return true;
  }
  std::string user;  // the room token's subject
  if (options_.authSecret) {
    std::string_view auth = req.authorization;
    const bool bearer = auth.size() > 7 && (auth.starts_with("Bearer ") || auth.starts_with("bearer "));
    auto verified = bearer ? auth::verifyRoomToken(auth.substr(7), *options_.authSecret, *room, wallMillis() / 1000)
                           : auth::Verified{};
    if (!verified.claims) {
      auto r = error(401, bearer ? std::string(auth::toString(verified.error)) : "a Bearer token is needed");
      r.headers.emplace_back("WWW-Authenticate", "Bearer");
      respond(std::move(r));
      return true;
    }
    user = verified.claims->user;
  }
  if (!options_.locate) {
    serveHere(req, respond, *room, std::move(user));
    return true;
  }
  // A cluster: the room's media lives on one node (media does not hop between nodes), and RFC 9725 lets a WHIP/WHEP
  // server redirect. The client sends the same request to the owner: 307 keeps its method and body.
  options_.locate(
      *room, [this, req, room = *room, user = std::move(user), respond = std::move(respond)](Placement where) mutable {
        switch (where.where) {
          case Placement::Where::kHere:
            return serveHere(req, respond, room, std::move(user));
          case Placement::Where::kElsewhere: {
            while (!where.url.empty() && where.url.back() == '/') where.url.pop_back();
            auto r = cors(http::Response::text(307, "the room lives on another node\n"));
            r.headers.emplace_back("Location", where.url + req.target);
            r.headers.emplace_back("Cache-Control", "no-store");
            return respond(std::move(r));
          }
          case Placement::Where::kFull:
            return respond(error(503, "the cluster holds the most rooms it may"));
          case Placement::Where::kUnavailable: {
            auto r = error(503, "the cluster cannot place this room now: try again");
            r.headers.emplace_back("Retry-After", "1");
            return respond(std::move(r));
          }
        }
      });
  return true;
}

void Service::serveHere(const http::Request& req, http::Responder& respond, const std::string& roomName,
                        std::string user) {
  std::string_view path = req.path;
  const bool publisher = path.starts_with("/whip/");
  const std::string base(path.substr(0, 5));
  path.remove_prefix(6);
  const auto slash = path.find('/');
  const std::string_view sessionName = slash == std::string_view::npos ? "" : path.substr(slash + 1);
  const std::string* room = &roomName;
  const uint32_t owner = options_.ownerOf(*room);
  if (owner >= workers_.size()) {
    respond(error(503, "the SFU is not running"));
    return;
  }
  Worker* worker = workers_[owner].get();
  if (sessionName.empty()) {
    if (req.method != "POST") {
      auto r = error(405, "method not allowed");
      r.headers.emplace_back("Allow", "POST, OPTIONS");
      respond(std::move(r));
      return;
    }
    if (!mediaTypeIs(req.contentType, "application/sdp")) {
      auto r = error(415, "an offer is application/sdp");
      r.headers.emplace_back("Accept-Post", "application/sdp");
      respond(std::move(r));
      return;
    }
    auto offer = sdp::parse(req.body);
    if (!offer) {
      respond(error(400, "not a valid SDP offer: " + offer.error().message()));
      return;
    }
    auto clientIp = Address::parse(req.remoteAddress, true).value_or(Address{});
    std::string roomBase = base + "/" + std::string(path.substr(0, slash));
    // A WHIP publisher's name in its room (Roster; checked there like any display name).
    std::string name = req.queryParam("name").value_or("stream");
    pool_.post(owner, [worker, room = *room, publisher, offer = std::move(*offer), clientIp, roomBase,
                       name = std::move(name), user = std::move(user), respond = std::move(respond)]() mutable {
      respond(worker->create(room, publisher, offer, clientIp, roomBase, name, user));
    });
    return;
  }
  if (req.method != "PATCH" && req.method != "DELETE") {
    auto r = error(405, "method not allowed");
    r.headers.emplace_back("Allow", "PATCH, DELETE, OPTIONS");
    respond(std::move(r));
    return;
  }
  const bool del = req.method == "DELETE";
  sdp::IceFragment fragment;
  if (!del) {
    if (!mediaTypeIs(req.contentType, "application/trickle-ice-sdpfrag")) {
      auto r = error(415, "a PATCH is application/trickle-ice-sdpfrag");
      r.headers.emplace_back("Accept-Patch", "application/trickle-ice-sdpfrag");
      respond(std::move(r));
      return;
    }
    auto parsed = sdp::parseIceFragment(req.body);
    if (!parsed) {
      respond(error(400, "not a valid trickle-ice-sdpfrag: " + parsed.error().message()));
      return;
    }
    fragment = std::move(*parsed);
  }
  pool_.post(owner, [worker, room = *room, name = std::string(sessionName), del, fragment = std::move(fragment),
                     ifMatch = req.ifMatch, respond = std::move(respond)]() mutable {
    Client* c = worker->session(name, room);
    if (c == nullptr) return respond(error(404, "no such session"));
    if (del) {
      worker->remove(c->id);
      return respond(cors(http::Response::text(200, "")));
    }
    respond(worker->patch(*c, fragment, ifMatch));
  });
}

}  // namespace kaiwa::media

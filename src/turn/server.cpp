#include "turn/server.hpp"

#include "stun/saslprep.hpp"

#include <openssl/rand.h>

#include <algorithm>
#include <cstring>

#include "common/bytes.hpp"

namespace kaiwa::turn {

using stun::Address;
using stun::Class;
using stun::Family;
using stun::Message;
using stun::Method;
namespace attr = stun::attr;

namespace {

constexpr size_t kScratch = 65536 + 256;
constexpr uint8_t kUdpProtocol = 17;
constexpr uint8_t kTcpProtocol = 6;
constexpr size_t kUnauthBuckets = 1024;
constexpr std::array<uint16_t, 27> kKnown = {0x0003 /* CHANGE-REQUEST (RFC 5780): answered from the same address */,
                                             attr::kMappedAddress,
                                             attr::kUsername,
                                             attr::kMessageIntegrity,
                                             attr::kErrorCode,
                                             attr::kUnknownAttributes,
                                             attr::kChannelNumber,
                                             attr::kLifetime,
                                             attr::kXorPeerAddress,
                                             attr::kData,
                                             attr::kRealm,
                                             attr::kNonce,
                                             attr::kXorRelayedAddress,
                                             attr::kRequestedAddressFamily,
                                             attr::kEvenPort,
                                             attr::kRequestedTransport,
                                             attr::kDontFragment,
                                             attr::kMessageIntegritySha256,
                                             attr::kPasswordAlgorithm,
                                             attr::kUserhash,
                                             attr::kXorMappedAddress,
                                             attr::kReservationToken,
                                             attr::kPriority,
                                             attr::kUseCandidate,
                                             0x0026 /* PADDING (RFC 5780) */,
                                             0x0027 /* RESPONSE-PORT (RFC 5780) */,
                                             0x002A /* CONNECTION-ID (RFC 6062) */};

using common::be16;

uint64_t hashIp(const Address& a) {
  Address ipOnly = a;
  ipOnly.port = 0;
  return uint64_t(stun::AddressHash{}(ipOnly)) | 1;
}

// The client address as the per-address quota counts it: the IP, and of an IPv6 address only its /64 (one host may
// use any address of its /64).
size_t addressQuotaHash(const Address& a) {
  Address key = a.family == Family::kV6 ? normalizePeer(a) : a;
  key.port = 0;
  if (key.family == Family::kV6)
    for (size_t i = 8; i < 16; ++i) key.ip[i] = 0;
  return stun::AddressHash{}(key);
}

std::optional<Family> familyAttr(const Message& m, uint16_t type) {
  auto v = m.find(type);
  if (!v) return std::nullopt;
  if (v->size() != 4) return Family(0xFF);
  return Family((*v)[0]);
}

size_t familyIndex(Family f) { return f == Family::kV4 ? 0 : 1; }

}  // namespace

struct TurnServer::Allocation {
  ClientTuple tuple;
  std::array<std::optional<std::pair<RelayId, Address>>, 2> relays;  // [0] IPv4, [1] IPv6
  std::string username;
  Key key;
  bool sha256 = false;
  TimePoint expiry;
  stun::TransactionId allocateTx{};
  std::optional<uint64_t> reservationToken;
  size_t userBucket = 0;
  size_t addressBucket = 0;
  struct Permission {
    Address ip;
    TimePoint expiry;
  };
  std::vector<Permission> permissions;
  struct Channel {
    uint16_t number;
    Address peer;
    TimePoint expiry;
  };
  std::vector<Channel> channels;
  double tokens = 0;
  TimePoint lastRefill{};
  bool tcp = false;                    // RFC 6062 TCP allocation: a TCP relay, Connect and ConnectionBind
  std::vector<ConnectionId> tcpConns;  // its peer data connections (TurnServer::tcpConns_)

  Permission* permission(const Address& peer, TimePoint now) {
    for (auto& p : permissions)
      if (p.ip.sameIp(peer) && p.expiry > now) return &p;
    return nullptr;
  }
  const std::pair<RelayId, Address>* relayFor(Family f) const {
    const auto& r = relays[familyIndex(f)];
    return r ? &*r : nullptr;
  }
};

std::optional<ChannelData> ChannelData::parse(std::span<const uint8_t> bytes) {
  if (bytes.size() < 4) return std::nullopt;
  uint16_t channel = be16(bytes.data());
  uint16_t length = be16(bytes.data() + 2);
  if (!isChannelNumber(channel) || bytes.size() - 4 < length) return std::nullopt;
  return ChannelData{channel, bytes.subspan(4, length)};
}

std::optional<size_t> tcpFrameLength(std::span<const uint8_t> bytes) {
  if (bytes.empty()) return std::nullopt;
  uint8_t top = bytes[0] >> 6;
  if (top == 0) {
    if (bytes.size() < 4) return std::nullopt;
    return stun::Message::framedLength(bytes).value_or(0);
  }
  if (top == 1) {
    if (bytes.size() < 4) return std::nullopt;
    if (!isChannelNumber(be16(bytes.data()))) return size_t(0);
    return (4 + size_t(be16(bytes.data() + 2)) + 3) & ~size_t(3);
  }
  return size_t(0);
}

uint64_t Reservations::add(const Entry& entry) {
  std::lock_guard lock(mutex_);
  for (;;) {
    uint64_t token = 0;
    if (RAND_bytes(reinterpret_cast<unsigned char*>(&token), sizeof token) != 1)
      token = uint64_t(Clock::now().time_since_epoch().count()) * 0x9E3779B97F4A7C15ull;
    if (token != 0 && entries_.emplace(token, entry).second) return token;
  }
}

std::optional<Reservations::Entry> Reservations::take(uint64_t token) {
  std::lock_guard lock(mutex_);
  auto it = entries_.find(token);
  if (it == entries_.end()) return std::nullopt;
  Entry e = it->second;
  entries_.erase(it);
  return e;
}

std::vector<Reservations::Entry> Reservations::takeExpired(TimePoint now) {
  std::vector<Entry> out;
  std::lock_guard lock(mutex_);
  std::erase_if(entries_, [&](const auto& kv) {
    if (kv.second.expiry > now) return false;
    out.push_back(kv.second);
    return true;
  });
  return out;
}

std::vector<Reservations::Entry> Reservations::takeOwnedBy(const void* owner) {
  std::vector<Entry> out;
  std::lock_guard lock(mutex_);
  std::erase_if(entries_, [&](const auto& kv) {
    if (kv.second.owner != owner) return false;
    out.push_back(kv.second);
    return true;
  });
  return out;
}

size_t Reservations::size() const {
  std::lock_guard lock(mutex_);
  return entries_.size();
}

TurnServer::TurnServer(TurnIo& io, std::shared_ptr<const Credentials> credentials,
                       std::shared_ptr<const PeerFilter> filter, TurnLimits limits, std::shared_ptr<Quotas> quotas,
                       std::shared_ptr<Reservations> reservations, std::string software)
    : TurnServer(io, std::make_shared<CredentialsSlot>(std::move(credentials)), std::move(filter), limits,
                 std::move(quotas), std::move(reservations), std::move(software)) {}

TurnServer::TurnServer(TurnIo& io, std::shared_ptr<CredentialsSlot> credentials,
                       std::shared_ptr<const PeerFilter> filter, TurnLimits limits, std::shared_ptr<Quotas> quotas,
                       std::shared_ptr<Reservations> reservations, std::string software)
    : io_(io), credentialSlot_(std::move(credentials)), credentialGeneration_(credentialSlot_->generation()),
      credentials_(credentialSlot_->load()), filter_(std::move(filter)), limits_(limits), quotas_(std::move(quotas)),
      software_(std::move(software)), reservations_(std::move(reservations)), unauthBuckets_(kUnauthBuckets),
      scratch_(kScratch) {
  if (!quotas_) quotas_ = std::make_shared<Quotas>();
  if (!reservations_) reservations_ = std::make_shared<Reservations>();
  nextToken_ = uint64_t(reinterpret_cast<uintptr_t>(this)) * 0x9E3779B97F4A7C15ull ^
               uint64_t(Clock::now().time_since_epoch().count());
}

TurnServer::~TurnServer() {
  while (!allocations_.empty()) removeAllocation(allocations_.begin()->first);
  for (const auto& r : reservations_->takeOwnedBy(this)) io_.releaseReserved(r.relay);
}

size_t TurnServer::permissionCount() const {
  size_t n = 0;
  for (const auto& [t, a] : allocations_) n += a->permissions.size();
  return n;
}

size_t TurnServer::channelCount() const {
  size_t n = 0;
  for (const auto& [t, a] : allocations_) n += a->channels.size();
  return n;
}

TurnServer::Allocation* TurnServer::findByClient(const ClientTuple& t) {
  auto it = allocations_.find(t);
  return it == allocations_.end() ? nullptr : it->second.get();
}

void TurnServer::onClientPacket(const ClientTuple& from, std::span<const uint8_t> bytes, TimePoint now,
                                int64_t nowUnix) {
  if (bytes.empty()) return drop(TurnDrop::kMalformed);
  uint8_t top = bytes[0] >> 6;
  if (top == 1) return handleChannelData(from, bytes, now);
  if (top != 0) return drop(TurnDrop::kMalformed);
  auto m = Message::parse(bytes);
  if (!m) return drop(TurnDrop::kMalformed);
  handleStun(from, *m, now, nowUnix);
}

void TurnServer::handleChannelData(const ClientTuple& from, std::span<const uint8_t> bytes, TimePoint now) {
  auto cd = ChannelData::parse(bytes);
  if (!cd) return drop(TurnDrop::kMalformed);
  Allocation* a = findByClient(from);
  if (!a) return drop(TurnDrop::kNoAllocation);
  if (a->tcp) return drop(TurnDrop::kUnexpected);  // a TCP allocation relays through data connections only
  for (auto& c : a->channels) {
    if (c.number != cd->channel) continue;
    if (c.expiry <= now) break;
    if (!a->permission(c.peer, now)) return drop(TurnDrop::kNoPermission);
    if (!spendBandwidth(*a, cd->data.size(), now)) return drop(TurnDrop::kBandwidth);
    auto relay = a->relayFor(c.peer.family);
    if (!relay) return drop(TurnDrop::kNoChannel);
    ++stats_.channelDataIn;
    stats_.bytesToPeers += cd->data.size();
    io_.sendToPeer(relay->first, c.peer, cd->data);
    return;
  }
  drop(TurnDrop::kNoChannel);
}

void TurnServer::handleSend(const ClientTuple& from, const Message& m, TimePoint now) {
  Allocation* a = findByClient(from);
  if (!a) return drop(TurnDrop::kNoAllocation);
  if (a->tcp) return drop(TurnDrop::kUnexpected);
  auto peer = m.xorAddress(attr::kXorPeerAddress);
  auto data = m.find(attr::kData);
  if (!peer || !data) return drop(TurnDrop::kMalformed);
  if (!a->permission(*peer, now)) return drop(TurnDrop::kNoPermission);
  auto relay = a->relayFor(peer->family);
  if (!relay) return drop(TurnDrop::kNoPermission);
  if (!spendBandwidth(*a, data->size(), now)) return drop(TurnDrop::kBandwidth);
  ++stats_.sendIndications;
  stats_.bytesToPeers += data->size();
  io_.sendToPeer(relay->first, *peer, *data);
}

void TurnServer::refill(Allocation& a, TimePoint now) {
  double rate = double(limits_.bytesPerSecond);
  double elapsed = std::max(0.0, std::chrono::duration<double>(now - a.lastRefill).count());
  a.lastRefill = now;
  a.tokens = std::min(rate, a.tokens + elapsed * rate);  // burst: one second's worth
}

bool TurnServer::spendBandwidth(Allocation& a, size_t bytes, TimePoint now) {
  if (limits_.bytesPerSecond == 0) return true;
  refill(a, now);
  if (a.tokens < double(bytes)) return false;
  a.tokens -= double(bytes);
  return true;
}

bool TurnServer::unauthenticatedAllowed(const Address& from, TimePoint now) {
  double rate = limits_.unauthenticatedPerSecond;
  if (rate <= 0) return true;
  uint64_t h = hashIp(from);
  Bucket& b = unauthBuckets_[h % unauthBuckets_.size()];
  double burst = rate * 5;
  if (b.ipHash != h) b = Bucket{h, burst, now};
  double elapsed = std::chrono::duration<double>(now - b.last).count();
  b.last = now;
  b.tokens = std::min(burst, b.tokens + std::max(0.0, elapsed) * rate);
  if (b.tokens < 1) {
    drop(TurnDrop::kRateLimited);
    return false;
  }
  b.tokens -= 1;
  return true;
}

void TurnServer::sendError(const ClientTuple& to, const Message& m, int code, std::string_view reason, const Key* key,
                           bool sha256, std::span<const uint16_t> unknown, std::optional<std::string_view> nonce) {
  stun::Builder b(scratch_, m.method(), Class::kError, m.transactionId());
  b.errorCode(code, reason);
  if (!unknown.empty()) b.unknownAttributes(unknown);
  if (nonce) {
    b.text(attr::kRealm, credentials_->realm());
    b.text(attr::kNonce, *nonce);
    // PASSWORD-ALGORITHMS: MD5 and SHA-256, no parameters.
    const uint8_t algs[] = {0, 1, 0, 0, 0, 2, 0, 0};
    b.attribute(attr::kPasswordAlgorithms, algs);
  }
  if (key) {
    if (sha256)
      b.messageIntegritySha256(key->span());
    else
      b.messageIntegrity(key->span());
  }
  if (m.hasFingerprint()) b.fingerprint();
  if (b.ok()) io_.sendToClient(to, b.bytes(), {}, 0);
}

void TurnServer::sendSuccess(const ClientTuple& to, const Message& m, stun::Builder& b, const Key& key, bool sha256) {
  if (!software_.empty()) b.text(attr::kSoftware, software_);
  if (sha256)
    b.messageIntegritySha256(key.span());
  else
    b.messageIntegrity(key.span());
  if (m.hasFingerprint()) b.fingerprint();
  if (b.ok()) io_.sendToClient(to, b.bytes(), {}, 0);
}

void TurnServer::handleStun(const ClientTuple& from, const Message& m, TimePoint now, int64_t nowUnix) {
  Class cls = m.messageClass();
  Method method = m.method();
  if (cls == Class::kIndication) {
    if (method == Method::kSend) return handleSend(from, m, now);
    return drop(TurnDrop::kUnexpected);
  }
  if (cls != Class::kRequest) return drop(TurnDrop::kUnexpected);

  std::array<uint16_t, 16> unknown{};
  size_t unknownCount = 0;
  for (const auto& a : m.attributes()) {
    if (attr::comprehensionRequired(a.type) && std::find(kKnown.begin(), kKnown.end(), a.type) == kKnown.end() &&
        unknownCount < unknown.size())
      unknown[unknownCount++] = a.type;
  }

  if (method == Method::kBinding) {
    if (!unauthenticatedAllowed(from.client, now)) return;
    ++stats_.bindingRequests;
    if (unknownCount)
      return sendError(from, m, 420, "Unknown Attribute", nullptr, false, {unknown.data(), unknownCount});
    stun::Builder b(scratch_, Method::kBinding, Class::kSuccess, m.transactionId());
    b.xorAddress(attr::kXorMappedAddress, from.client);
    if (m.hasFingerprint()) b.fingerprint();
    if (b.ok()) io_.sendToClient(from, b.bytes(), {}, 0);
    return;
  }
  if (method != Method::kAllocate && method != Method::kRefresh && method != Method::kCreatePermission &&
      method != Method::kChannelBind && method != kMethodConnect && method != kMethodConnectionBind) {
    if (!unauthenticatedAllowed(from.client, now)) return;
    return sendError(from, m, 400, "Bad Request");
  }

  // Long-term credentials (RFC 8489 section 9.2.4), as last stored in the slot (a reload).
  if (uint64_t g = credentialSlot_->generation(); g != credentialGeneration_) {
    credentialGeneration_ = g;
    credentials_ = credentialSlot_->load();
  }
  auto challenge = [&](int code, std::string_view reason) {
    if (!unauthenticatedAllowed(from.client, now)) return;
    std::string nonce = credentials_->makeNonce(from.client, now);
    sendError(from, m, code, reason, nullptr, false, {}, nonce);
  };
  bool sha256 = m.hasIntegritySha256();
  if (!m.hasIntegrity() && !sha256) return challenge(401, "Unauthorized");
  auto username = m.text(attr::kUsername);
  auto realm = m.text(attr::kRealm);
  auto nonce = m.text(attr::kNonce);
  // USERNAME and REALM are SASLprep'd (RFC 8489 section 9.2; the configured ones were at start-up). Printable ASCII
  // is left as it is without a copy; prohibited output (control characters, …) is a bad request.
  std::string preppedUser, preppedRealm;
  auto prep = [](std::optional<std::string_view>& text, std::string& buffer) {
    if (!text || stun::saslprepIdentity(*text)) return;
    auto prepped = stun::saslprep(*text);
    if (!prepped) return text.reset();
    buffer = std::move(*prepped);
    text = buffer;
  };
  prep(username, preppedUser);
  prep(realm, preppedRealm);
  if (!username || !realm || !nonce) {
    if (!unauthenticatedAllowed(from.client, now)) return;
    ++stats_.authFailures;
    return sendError(from, m, 400, "Bad Request");
  }
  if (!credentials_->nonceValid(*nonce, from.client, now)) return challenge(438, "Stale Nonce");
  auto algorithm = stun::PasswordAlgorithm::kMd5;
  if (auto pa = m.find(attr::kPasswordAlgorithm); pa && pa->size() >= 2 && be16(pa->data()) == 2)
    algorithm = stun::PasswordAlgorithm::kSha256;
  std::array<Key, Credentials::kMaxKeys> keys;
  size_t n = credentials_->keys(*username, nowUnix, algorithm, keys);
  const Key* matched = nullptr;
  for (size_t i = 0; i < n && !matched; ++i) {
    if (sha256 ? m.verifyIntegritySha256(keys[i].span()) : m.verifyIntegrity(keys[i].span())) matched = &keys[i];
  }
  if (!matched || *realm != credentials_->realm()) {
    ++stats_.authFailures;
    return challenge(401, "Unauthorized");
  }
  if (unknownCount)
    return sendError(from, m, 420, "Unknown Attribute", matched, sha256, {unknown.data(), unknownCount});

  if (method == Method::kAllocate) return handleAllocate(from, m, *matched, *username, sha256, now);
  // A ConnectionBind comes on a new connection, which has no allocation: it names one by CONNECTION-ID.
  if (method == kMethodConnectionBind) return handleConnectionBind(from, m, *matched, *username, sha256);
  Allocation* a = findByClient(from);
  if (!a || a->expiry <= now) return sendError(from, m, 437, "Allocation Mismatch", matched, sha256);
  if (a->username != *username) return sendError(from, m, 441, "Wrong Credentials", matched, sha256);
  a->key = *matched;
  a->sha256 = sha256;
  if (method == Method::kRefresh) return handleRefresh(*a, m, now);
  if (method == Method::kCreatePermission) return handleCreatePermission(*a, m, now);
  if (method == kMethodConnect) return handleConnect(*a, m, now);
  if (a->tcp) return sendError(a->tuple, m, 400, "Bad Request", &a->key, a->sha256);  // no channels on TCP relays
  return handleChannelBind(*a, m, now);
}

void TurnServer::handleAllocate(const ClientTuple& from, const Message& m, const Key& key, std::string_view user,
                                bool sha256, TimePoint now) {
  auto fail = [&](int code, std::string_view reason) { sendError(from, m, code, reason, &key, sha256); };
  auto lifetimeFor = [&](std::optional<uint32_t> requested) {
    auto l = requested ? std::chrono::seconds(*requested) : limits_.defaultLifetime;
    return std::clamp(l, limits_.defaultLifetime, limits_.maxLifetime);
  };
  auto success = [&](Allocation& a, std::optional<int> additionalError) {
    stun::Builder b(scratch_, Method::kAllocate, Class::kSuccess, m.transactionId());
    for (const auto& r : a.relays)
      if (r) b.xorAddress(attr::kXorRelayedAddress, r->second);
    if (additionalError) {
      uint8_t v[4 + 32] = {uint8_t(Family::kV6), 0, uint8_t(*additionalError / 100), uint8_t(*additionalError % 100)};
      std::string_view reason = "Address Family not Supported";
      std::memcpy(v + 4, reason.data(), reason.size());
      b.attribute(attr::kAddressErrorCode, {v, 4 + reason.size()});
    }
    auto left = std::chrono::duration_cast<std::chrono::seconds>(a.expiry - now);
    b.u32(attr::kLifetime, uint32_t(std::max<int64_t>(0, left.count())));
    if (a.reservationToken) {
      uint8_t t[8];
      for (int i = 0; i < 8; ++i) t[i] = uint8_t(*a.reservationToken >> (56 - 8 * i));
      b.attribute(attr::kReservationToken, t);
    }
    b.xorAddress(attr::kXorMappedAddress, from.client);
    sendSuccess(from, m, b, key, sha256);
  };

  if (Allocation* existing = findByClient(from)) {
    if (existing->allocateTx == m.transactionId() && existing->expiry > now) return success(*existing, std::nullopt);
    return fail(437, "Allocation Mismatch");
  }
  auto transport = m.find(attr::kRequestedTransport);
  if (!transport || transport->size() != 4) return fail(400, "Bad Request");
  uint8_t protocol = (*transport)[0];
  if (protocol != kUdpProtocol && protocol != kTcpProtocol) return fail(442, "Unsupported Transport Protocol");
  bool tcp = protocol == kTcpProtocol;
  // RFC 6062 section 5.1: a TCP relay only for a client on TCP or TLS, and without the UDP-only attributes.
  if (tcp && (from.transport == Transport::kUdp || m.has(attr::kEvenPort) || m.has(attr::kReservationToken) ||
              m.has(attr::kDontFragment) || m.has(attr::kAdditionalAddressFamily)))
    return fail(400, "Bad Request");
  auto evenPort = m.find(attr::kEvenPort);
  auto token = m.find(attr::kReservationToken);
  auto requested = familyAttr(m, attr::kRequestedAddressFamily);
  auto additional = familyAttr(m, attr::kAdditionalAddressFamily);
  if (token && (evenPort || requested || additional)) return fail(400, "Bad Request");
  if (requested && additional) return fail(400, "Bad Request");
  if (additional && *additional != Family::kV6) return fail(400, "Bad Request");
  if (evenPort && evenPort->size() != 1) return fail(400, "Bad Request");
  if (token && token->size() != 8) return fail(400, "Bad Request");
  if (requested && *requested != Family::kV4 && *requested != Family::kV6)
    return fail(440, "Address Family not Supported");

  // Quotas, over every worker: in total, per user (hashed buckets) and per client address (hashed buckets; IPv6 per
  // /64, what one host may hold). A REST username "EXPIRY:USER" counts as USER, whatever second it was minted in.
  std::string_view quotaUser = user;
  if (auto colon = user.find(':');
      colon != std::string_view::npos && colon > 0 &&
      std::all_of(user.begin(), user.begin() + long(colon), [](char c) { return c >= '0' && c <= '9'; }))
    quotaUser = user.substr(colon + 1);
  size_t userBucket = std::hash<std::string_view>{}(quotaUser) % quotas_->perUser.size();
  size_t addressBucket = addressQuotaHash(from.client) % quotas_->perAddress.size();
  auto refuse = [&](QuotaRefusal why) {
    ++stats_.quotaRefusals[size_t(why)];
    if (why == QuotaRefusal::kTotal) return fail(508, "Insufficient Capacity");
    fail(486, "Allocation Quota Reached");
  };
  if (quotas_->allocations.fetch_add(1, std::memory_order_relaxed) >= int64_t(limits_.maxAllocations)) {
    quotas_->allocations.fetch_sub(1, std::memory_order_relaxed);
    return refuse(QuotaRefusal::kTotal);
  }
  if (quotas_->perUser[userBucket].fetch_add(1, std::memory_order_relaxed) >= int32_t(limits_.maxAllocationsPerUser)) {
    quotas_->perUser[userBucket].fetch_sub(1, std::memory_order_relaxed);
    quotas_->allocations.fetch_sub(1, std::memory_order_relaxed);
    return refuse(QuotaRefusal::kUser);
  }
  if (quotas_->perAddress[addressBucket].fetch_add(1, std::memory_order_relaxed) >=
          int32_t(limits_.maxAllocationsPerAddress) &&
      limits_.maxAllocationsPerAddress != 0) {
    quotas_->perAddress[addressBucket].fetch_sub(1, std::memory_order_relaxed);
    quotas_->perUser[userBucket].fetch_sub(1, std::memory_order_relaxed);
    quotas_->allocations.fetch_sub(1, std::memory_order_relaxed);
    return refuse(QuotaRefusal::kAddress);
  }
  auto a = std::make_unique<Allocation>();
  a->tuple = from;
  a->userBucket = userBucket;
  a->addressBucket = addressBucket;
  auto release = [&] {
    for (auto& r : a->relays)
      if (r) io_.closeRelay(r->first);
    quotas_->allocations.fetch_sub(1, std::memory_order_relaxed);
    quotas_->perUser[userBucket].fetch_sub(1, std::memory_order_relaxed);
    quotas_->perAddress[addressBucket].fetch_sub(1, std::memory_order_relaxed);
  };

  std::optional<int> additionalError;
  if (token) {
    uint64_t t = 0;
    for (int i = 0; i < 8; ++i) t = t << 8 | (*token)[i];
    // The reservation may have been made on another worker: its socket is adopted by this one.
    auto r = reservations_->take(t);
    std::optional<RelayId> adopted;
    if (r && r->expiry > now) adopted = io_.adoptRelay(r->relay);
    if (!adopted) {
      if (r) io_.releaseReserved(r->relay);
      release();
      return fail(508, "Insufficient Capacity");
    }
    a->relays[familyIndex(r->address.family)] = std::pair{*adopted, r->address};
  } else {
    RelayRequest req;
    req.family = requested.value_or(Family::kV4);
    req.evenPort = evenPort.has_value();
    req.reserveNext = evenPort && ((*evenPort)[0] & 0x80);
    req.dontFragment = m.has(attr::kDontFragment);
    req.tcp = tcp;
    auto opened = io_.openRelay(req);
    if (!opened) {
      release();
      return fail(requested ? 440 : 508, requested ? "Address Family not Supported" : "Insufficient Capacity");
    }
    a->relays[familyIndex(req.family)] = std::pair{opened->id, opened->address};
    if (opened->reserved && opened->reservedAddress) {
      a->reservationToken =
          reservations_->add({*opened->reserved, *opened->reservedAddress, now + limits_.reservationLifetime, this});
    }
    if (additional) {
      RelayRequest v6 = req;
      v6.family = Family::kV6;
      v6.evenPort = v6.reserveNext = false;
      if (auto o6 = io_.openRelay(v6))
        a->relays[1] = std::pair{o6->id, o6->address};
      else
        additionalError = 440;
    }
  }
  a->tcp = tcp;
  a->username = std::string(user);
  a->key = key;
  a->sha256 = sha256;
  a->allocateTx = m.transactionId();
  a->expiry = now + lifetimeFor(m.u32(attr::kLifetime));
  a->tokens = double(limits_.bytesPerSecond);
  a->lastRefill = now;
  a->permissions.reserve(4);
  a->channels.reserve(4);
  for (const auto& r : a->relays)
    if (r) byRelay_[r->first] = a.get();
  Allocation& ref = *a;
  allocations_[from] = std::move(a);
  success(ref, additionalError);
}

void TurnServer::handleRefresh(Allocation& a, const Message& m, TimePoint now) {
  if (auto f = familyAttr(m, attr::kRequestedAddressFamily); f && !a.relayFor(*f))
    return sendError(a.tuple, m, 443, "Peer Address Family Mismatch", &a.key, a.sha256);
  auto requested = m.u32(attr::kLifetime);
  ClientTuple tuple = a.tuple;
  Key key = a.key;
  bool sha256 = a.sha256;
  std::chrono::seconds lifetime{0};
  if (requested && *requested == 0) {
    removeAllocation(tuple);
  } else {
    lifetime = std::clamp(requested ? std::chrono::seconds(*requested) : limits_.defaultLifetime,
                          limits_.defaultLifetime, limits_.maxLifetime);
    a.expiry = now + lifetime;
  }
  stun::Builder b(scratch_, Method::kRefresh, Class::kSuccess, m.transactionId());
  b.u32(attr::kLifetime, uint32_t(lifetime.count()));
  sendSuccess(tuple, m, b, key, sha256);
}

void TurnServer::handleCreatePermission(Allocation& a, const Message& m, TimePoint now) {
  std::array<Address, 16> peers;
  size_t n = 0;
  for (const auto& ref : m.attributes()) {
    if (ref.type != attr::kXorPeerAddress) continue;
    auto peer = m.xorAddressAt(ref);
    if (!peer || n == peers.size()) return sendError(a.tuple, m, 400, "Bad Request", &a.key, a.sha256);
    if (!a.relayFor(peer->family)) return sendError(a.tuple, m, 443, "Peer Address Family Mismatch", &a.key, a.sha256);
    if (!filter_->allowed(*peer)) return sendError(a.tuple, m, 403, "Forbidden", &a.key, a.sha256);
    peers[n++] = *peer;
  }
  if (n == 0) return sendError(a.tuple, m, 400, "Bad Request", &a.key, a.sha256);
  size_t added = 0;
  for (size_t i = 0; i < n; ++i)
    if (!a.permission(peers[i], now)) ++added;
  std::erase_if(a.permissions, [&](const auto& p) { return p.expiry <= now; });
  if (a.permissions.size() + added > limits_.maxPermissions)
    return sendError(a.tuple, m, 508, "Insufficient Capacity", &a.key, a.sha256);
  for (size_t i = 0; i < n; ++i) {
    if (auto* p = a.permission(peers[i], now))
      p->expiry = now + limits_.permissionLifetime;
    else
      a.permissions.push_back({peers[i], now + limits_.permissionLifetime});
  }
  stun::Builder b(scratch_, Method::kCreatePermission, Class::kSuccess, m.transactionId());
  sendSuccess(a.tuple, m, b, a.key, a.sha256);
}

void TurnServer::handleChannelBind(Allocation& a, const Message& m, TimePoint now) {
  auto bad = [&] { sendError(a.tuple, m, 400, "Bad Request", &a.key, a.sha256); };
  auto number = m.find(attr::kChannelNumber);
  auto peer = m.xorAddress(attr::kXorPeerAddress);
  if (!number || number->size() != 4 || !peer) return bad();
  uint16_t channel = be16(number->data());
  if (!isChannelNumber(channel)) return bad();
  if (!a.relayFor(peer->family)) return sendError(a.tuple, m, 443, "Peer Address Family Mismatch", &a.key, a.sha256);
  if (!filter_->allowed(*peer)) return sendError(a.tuple, m, 403, "Forbidden", &a.key, a.sha256);
  std::erase_if(a.channels, [&](const auto& c) { return c.expiry <= now; });
  Allocation::Channel* existing = nullptr;
  for (auto& c : a.channels) {
    bool sameNumber = c.number == channel, samePeer = c.peer == *peer;
    if (sameNumber != samePeer) return bad();  // bound to another peer, or the peer to another channel
    if (sameNumber) existing = &c;
  }
  if (!existing && a.channels.size() >= limits_.maxChannels)
    return sendError(a.tuple, m, 508, "Insufficient Capacity", &a.key, a.sha256);
  if (!a.permission(*peer, now) && a.permissions.size() >= limits_.maxPermissions) {
    std::erase_if(a.permissions, [&](const auto& p) { return p.expiry <= now; });
    if (a.permissions.size() >= limits_.maxPermissions)
      return sendError(a.tuple, m, 508, "Insufficient Capacity", &a.key, a.sha256);
  }
  if (existing)
    existing->expiry = now + limits_.channelLifetime;
  else
    a.channels.push_back({channel, *peer, now + limits_.channelLifetime});
  if (auto* p = a.permission(*peer, now))
    p->expiry = now + limits_.permissionLifetime;
  else
    a.permissions.push_back({*peer, now + limits_.permissionLifetime});
  stun::Builder b(scratch_, Method::kChannelBind, Class::kSuccess, m.transactionId());
  sendSuccess(a.tuple, m, b, a.key, a.sha256);
}

void TurnServer::onPeerPacket(RelayId relay, const Address& peer, std::span<const uint8_t> bytes, TimePoint now) {
  auto it = byRelay_.find(relay);
  if (it == byRelay_.end()) return drop(TurnDrop::kNoAllocation);
  Allocation& a = *it->second;
  if (a.expiry <= now) return drop(TurnDrop::kNoAllocation);
  if (!a.permission(peer, now)) return drop(TurnDrop::kNoPermission);
  if (!spendBandwidth(a, bytes.size(), now)) return drop(TurnDrop::kBandwidth);
  stats_.bytesToClients += bytes.size();
  for (const auto& c : a.channels) {
    if (c.peer == peer && c.expiry > now) {
      uint8_t head[4] = {uint8_t(c.number >> 8), uint8_t(c.number), uint8_t(bytes.size() >> 8), uint8_t(bytes.size())};
      if (bytes.size() > 0xFFFF) return drop(TurnDrop::kMalformed);
      size_t pad = a.tuple.transport == Transport::kUdp ? 0 : (4 - bytes.size() % 4) % 4;
      ++stats_.channelDataOut;
      io_.sendToClient(a.tuple, head, bytes, pad);
      return;
    }
  }
  stun::TransactionId tx{};
  nextToken_ = nextToken_ * 6364136223846793005ull + 1442695040888963407ull;
  std::memcpy(tx.data(), &nextToken_, 8);
  stun::Builder b(scratch_, Method::kData, Class::kIndication, tx);
  b.xorAddress(attr::kXorPeerAddress, peer).attribute(attr::kData, bytes);
  if (!b.ok()) return drop(TurnDrop::kMalformed);
  ++stats_.dataIndications;
  io_.sendToClient(a.tuple, b.bytes(), {}, 0);
}

void TurnServer::removeAllocation(const ClientTuple& tuple) {
  auto it = allocations_.find(tuple);
  if (it == allocations_.end()) return;
  Allocation& a = *it->second;
  // Its peer (and client) data connections first, then the relay they were made from.
  for (ConnectionId id : a.tcpConns) {
    tcpConns_.erase(id);
    io_.closeTcpConnection(id);
  }
  a.tcpConns.clear();
  for (auto& r : a.relays) {
    if (!r) continue;
    byRelay_.erase(r->first);
    io_.closeRelay(r->first);
  }
  quotas_->allocations.fetch_sub(1, std::memory_order_relaxed);
  quotas_->perUser[a.userBucket].fetch_sub(1, std::memory_order_relaxed);
  quotas_->perAddress[a.addressBucket].fetch_sub(1, std::memory_order_relaxed);
  allocations_.erase(it);
}

void TurnServer::onConnectionClosed(const ClientTuple& tuple) { removeAllocation(tuple); }

void TurnServer::tick(TimePoint now) {
  for (auto it = allocations_.begin(); it != allocations_.end();) {
    auto& a = *it->second;
    ++it;
    if (a.expiry <= now) {
      removeAllocation(a.tuple);
      continue;
    }
    std::erase_if(a.permissions, [&](const auto& p) { return p.expiry <= now; });
    std::erase_if(a.channels, [&](const auto& c) { return c.expiry <= now; });
  }
  for (const auto& r : reservations_->takeExpired(now)) io_.releaseReserved(r.relay);
  // RFC 6062 timeouts: a Connect that did not complete (447), a peer data connection nobody bound (closed).
  std::vector<ConnectionId> expired;
  for (const auto& [id, c] : tcpConns_)
    if (c.state != TcpConnection::State::kBound && c.deadline <= now) expired.push_back(id);
  for (ConnectionId id : expired) {
    auto it = tcpConns_.find(id);
    if (it == tcpConns_.end()) continue;
    TcpConnection c = it->second;
    forgetTcpConnection(id, true);
    if (c.state == TcpConnection::State::kConnecting)
      if (Allocation* a = findByClient(c.owner)) connectResult(*a, id, c.connectTx, c.fingerprint, 447);
  }
}

// --- TCP allocations (RFC 6062) ---

std::optional<ConnectionId> connectionBindId(std::span<const uint8_t> frame) {
  if (frame.empty() || frame[0] >> 6 != 0) return std::nullopt;
  auto m = Message::parse(frame);
  if (!m || !m->is(kMethodConnectionBind, Class::kRequest)) return std::nullopt;
  auto v = m->find(kAttrConnectionId);
  if (!v || v->size() != 4) return std::nullopt;
  return ConnectionId(uint32_t((*v)[0]) << 24 | uint32_t((*v)[1]) << 16 | uint32_t((*v)[2]) << 8 | (*v)[3]);
}

ConnectionId TurnServer::newConnectionId() {
  for (;;) {
    nextToken_ = nextToken_ * 6364136223846793005ull + 1442695040888963407ull;
    uint32_t low = uint32_t(nextToken_ >> 40) & 0xFFFFFF;
    ConnectionId id = workerIndex_ << 24 | low;
    if (low != 0 && !tcpConns_.count(id)) return id;
  }
}

void TurnServer::forgetTcpConnection(ConnectionId id, bool closeIo) {
  auto it = tcpConns_.find(id);
  if (it == tcpConns_.end()) return;
  if (Allocation* a = findByClient(it->second.owner)) std::erase(a->tcpConns, id);
  tcpConns_.erase(it);
  if (closeIo) io_.closeTcpConnection(id);
}

void TurnServer::connectResult(Allocation& a, ConnectionId id, const stun::TransactionId& tx, bool fingerprint,
                               std::optional<int> error) {
  stun::Builder b(scratch_, kMethodConnect, error ? Class::kError : Class::kSuccess, tx);
  if (error)
    b.errorCode(*error, *error == 447 ? "Connection Timeout or Failure" : "Insufficient Capacity");
  else
    b.u32(kAttrConnectionId, id);
  if (!software_.empty()) b.text(attr::kSoftware, software_);
  if (a.sha256)
    b.messageIntegritySha256(a.key.span());
  else
    b.messageIntegrity(a.key.span());
  if (fingerprint) b.fingerprint();
  if (b.ok()) io_.sendToClient(a.tuple, b.bytes(), {}, 0);
}

void TurnServer::handleConnect(Allocation& a, const Message& m, TimePoint now) {
  auto fail = [&](int code, std::string_view reason) { sendError(a.tuple, m, code, reason, &a.key, a.sha256); };
  if (!a.tcp) return fail(400, "Bad Request");
  auto peer = m.xorAddress(attr::kXorPeerAddress);
  if (!peer || peer->port == 0) return fail(400, "Bad Request");
  auto relay = a.relayFor(peer->family);
  if (!relay) return fail(443, "Peer Address Family Mismatch");
  if (!filter_->allowed(*peer)) return fail(403, "Forbidden");
  // 446: a Connect to this peer in progress, or its data connections pending or bound.
  for (ConnectionId id : a.tcpConns)
    if (auto it = tcpConns_.find(id); it != tcpConns_.end() && it->second.peer == *peer)
      return fail(446, "Connection Already Exists");
  if (a.tcpConns.size() >= limits_.maxTcpConnections) return fail(508, "Insufficient Capacity");
  // The Connect installs (or refreshes) a permission for the peer's IP, as CreatePermission would: the peer may
  // then also connect in, and its data is relayed.
  if (auto* p = a.permission(*peer, now)) {
    p->expiry = now + limits_.permissionLifetime;
  } else {
    std::erase_if(a.permissions, [&](const auto& p) { return p.expiry <= now; });
    if (a.permissions.size() >= limits_.maxPermissions) return fail(508, "Insufficient Capacity");
    a.permissions.push_back({*peer, now + limits_.permissionLifetime});
  }
  ConnectionId id = newConnectionId();
  TcpConnection c;
  c.owner = a.tuple;
  c.peer = *peer;
  c.deadline = now + limits_.tcpConnectTimeout;
  c.connectTx = m.transactionId();
  c.fingerprint = m.hasFingerprint();
  tcpConns_[id] = c;
  a.tcpConns.push_back(id);
  if (!io_.connectToPeer(relay->first, id, *peer)) {
    forgetTcpConnection(id, false);
    return fail(447, "Connection Timeout or Failure");
  }
}

void TurnServer::onPeerConnected(ConnectionId id, bool ok, TimePoint now) {
  auto it = tcpConns_.find(id);
  if (it == tcpConns_.end() || it->second.state != TcpConnection::State::kConnecting) return;
  Allocation* a = findByClient(it->second.owner);
  if (!a) return forgetTcpConnection(id, true);
  TcpConnection& c = it->second;
  if (!ok) {
    TcpConnection copy = c;
    forgetTcpConnection(id, true);
    return connectResult(*a, id, copy.connectTx, copy.fingerprint, 447);
  }
  c.state = TcpConnection::State::kPending;
  c.deadline = now + limits_.tcpBindTimeout;
  ++stats_.tcpConnections;
  connectResult(*a, id, c.connectTx, c.fingerprint, std::nullopt);
}

std::optional<ConnectionId> TurnServer::onPeerAccepted(RelayId relay, const Address& peer, TimePoint now) {
  auto it = byRelay_.find(relay);
  if (it == byRelay_.end()) {
    drop(TurnDrop::kNoAllocation);
    return std::nullopt;
  }
  Allocation& a = *it->second;
  if (!a.tcp || a.expiry <= now) {
    drop(TurnDrop::kNoAllocation);
    return std::nullopt;
  }
  if (!a.permission(peer, now)) {
    drop(TurnDrop::kNoPermission);
    return std::nullopt;
  }
  if (a.tcpConns.size() >= limits_.maxTcpConnections) {
    drop(TurnDrop::kRateLimited);
    return std::nullopt;
  }
  ConnectionId id = newConnectionId();
  TcpConnection c;
  c.state = TcpConnection::State::kPending;
  c.owner = a.tuple;
  c.peer = peer;
  c.deadline = now + limits_.tcpBindTimeout;
  tcpConns_[id] = c;
  a.tcpConns.push_back(id);
  ++stats_.tcpConnections;
  stun::TransactionId tx{};
  nextToken_ = nextToken_ * 6364136223846793005ull + 1442695040888963407ull;
  std::memcpy(tx.data(), &nextToken_, 8);
  stun::Builder b(scratch_, kMethodConnectionAttempt, Class::kIndication, tx);
  b.xorAddress(attr::kXorPeerAddress, peer).u32(kAttrConnectionId, id);
  if (b.ok()) io_.sendToClient(a.tuple, b.bytes(), {}, 0);
  return id;
}

void TurnServer::handleConnectionBind(const ClientTuple& from, const Message& m, const Key& key, std::string_view user,
                                      bool sha256) {
  auto fail = [&](int code, std::string_view reason) { sendError(from, m, code, reason, &key, sha256); };
  // RFC 6062 section 5.4: on a TCP or TLS connection of its own (not a control connection), naming a peer data
  // connection that waits for it.
  if (from.transport == Transport::kUdp || findByClient(from)) return fail(400, "Bad Request");
  auto v = m.find(kAttrConnectionId);
  if (!v || v->size() != 4) return fail(400, "Bad Request");
  ConnectionId id = uint32_t((*v)[0]) << 24 | uint32_t((*v)[1]) << 16 | uint32_t((*v)[2]) << 8 | (*v)[3];
  auto it = tcpConns_.find(id);
  if (it == tcpConns_.end() || it->second.state != TcpConnection::State::kPending) return fail(400, "Bad Request");
  Allocation* a = findByClient(it->second.owner);
  if (!a) return fail(400, "Bad Request");
  if (a->username != user) return fail(441, "Wrong Credentials");
  it->second.state = TcpConnection::State::kBound;
  ++stats_.tcpBinds;
  stun::Builder b(scratch_, kMethodConnectionBind, Class::kSuccess, m.transactionId());
  sendSuccess(from, m, b, key, sha256);
  io_.bindConnection(id, from);
}

void TurnServer::onTcpConnectionClosed(ConnectionId id) { forgetTcpConnection(id, false); }

TimePoint TurnServer::onTcpRelayed(ConnectionId id, size_t bytes, bool toPeer, TimePoint now) {
  auto it = tcpConns_.find(id);
  if (it == tcpConns_.end()) return now;
  (toPeer ? stats_.tcpBytesToPeers : stats_.tcpBytesToClients) += bytes;
  (toPeer ? stats_.bytesToPeers : stats_.bytesToClients) += bytes;
  if (limits_.bytesPerSecond == 0) return now;
  Allocation* a = findByClient(it->second.owner);
  if (!a) return now;
  // A stream cannot drop what is over the budget: it goes into debt and the sender waits until it is paid back.
  refill(*a, now);
  a->tokens -= double(bytes);
  if (a->tokens >= 0) return now;
  auto wait = std::chrono::duration<double>(-a->tokens / double(limits_.bytesPerSecond));
  return now + std::chrono::duration_cast<Clock::duration>(wait);
}

}  // namespace kaiwa::turn

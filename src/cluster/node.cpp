#include "cluster/node.hpp"

#include <charconv>
#include <future>
#include <optional>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "common/metrics.hpp"

namespace kaiwa::cluster {
namespace {

constexpr std::string_view kNodesKey = "kaiwa:nodes";
std::string nodeKey(std::string_view id) { return fmt::format("kaiwa:node:{}", id); }
std::string roomKey(std::string_view room) { return fmt::format("kaiwa:room:{}", room); }

// The room's owner: the one named, if its node record is alive; else this node, which takes the room over. A room new
// to the cluster counts against ARGV[3] rooms (0: no bound) in the sorted set KEYS[2] (room key -> expiry, the Redis
// clock's milliseconds); past it the script answers the error "kaiwa-full".
constexpr const char* kPlaceScript = R"(
local cur = redis.call('GET', KEYS[1])
if cur and (cur == ARGV[1] or redis.call('EXISTS', 'kaiwa:node:' .. cur) == 1) then return cur end
local max = tonumber(ARGV[3])
if max > 0 then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
  if not redis.call('ZSCORE', KEYS[2], KEYS[1]) and redis.call('ZCARD', KEYS[2]) >= max then
    return redis.error_reply('kaiwa-full')
  end
  redis.call('ZADD', KEYS[2], now + tonumber(ARGV[2]), KEYS[1])
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return ARGV[1])";
// Renews the placement of rooms this node holds, unless another node took them over meanwhile; with a cluster-wide
// bound (ARGV[3] = 1) their entries in the placed set KEYS[1] too.
constexpr const char* kRenewScript = R"(
local now = 0
if ARGV[3] == '1' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
for i = 2, #KEYS do
  local k = KEYS[i]
  local cur = redis.call('GET', k)
  if cur == false or cur == ARGV[1] then
    redis.call('SET', k, ARGV[1], 'PX', ARGV[2])
    if ARGV[3] == '1' then redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), k) end
  end
end
return #KEYS)";
constexpr std::string_view kPlacedKey = "kaiwa:placed";
std::string loadKey(std::string_view id) { return fmt::format("kaiwa:load:{}", id); }

// A label value of the Prometheus text format.
std::string labelValue(std::string_view v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

constexpr uint16_t kCloseGoingAway = 1001;

// The door named in an open item ("door\nroom\naddress").
std::string_view doorName(signal::Door door) {
  switch (door) {
    case signal::Door::kSocketIo:
      return "socketio";
    case signal::Door::kPeerjs:
      return "peerjs";
    default:
      return "native";
  }
}
std::optional<signal::Door> parseDoor(std::string_view name) {
  if (name == "native") return signal::Door::kNative;
  if (name == "socketio") return signal::Door::kSocketIo;
  if (name == "peerjs") return signal::Door::kPeerjs;
  return std::nullopt;
}
constexpr int kWorkerShift = 48;  // a link id carries its worker in the top 16 bits

}  // namespace

// A client of another node, as a WebSocket of this one: what the session writes goes back to that node.
class Node::Proxy final : public http::WsConnection {
 public:
  Proxy(Node& node, uint32_t worker, ProxyKey key, std::string address)
      : node_(node), worker_(worker), key_(std::move(key)), address_(std::move(address)) {}
  SendResult sendText(std::string frame) override {
    if (closed_) return SendResult::kClosed;
    node_.toNode(key_.first, ItemKind::kDeliver, key_.second, std::move(frame));
    return SendResult::kQueued;
  }
  SendResult sendBinary(std::string frame) override { return sendText(std::move(frame)); }
  void close(uint16_t code, std::string_view reason) override {
    if (closed_) return;
    closed_ = true;
    node_.toNode(key_.first, ItemKind::kEnd, key_.second, fmt::format("{} {}", code, reason));
    // The session's onClose follows, never from inside this call (the WsConnection contract).
    node_.pool_.post(worker_, [node = &node_, worker = worker_, key = key_] { node->endProxy(worker, key, false); });
  }
  uint32_t worker() const override { return worker_; }
  std::string remoteAddress() const override { return address_; }
  uint16_t peerCloseCode() const override { return goingAway_ ? kCloseGoingAway : 0; }

  std::unique_ptr<http::WsHandler> handler;
  bool closed_ = false;
  bool goingAway_ = false;

 private:
  Node& node_;
  uint32_t worker_;
  ProxyKey key_;
  std::string address_;
};

Node::Node(net::WorkerPool& pool, signal::Hub& hub, NodeOptions options, HandlerFactory factory)
    : pool_(pool), hub_(hub), options_(std::move(options)), factory_(std::move(factory)) {
  for (uint32_t w = 0; w < pool_.size(); ++w) workers_.push_back(std::make_unique<WorkerState>());
}

Node::~Node() = default;

template <typename F>
void Node::onHome(F&& f) {
  if (net::WorkerPool::current() == options_.home) {
    f();
  } else {
    pool_.post(options_.home, std::forward<F>(f));
  }
}

void Node::start() {
  pool_.post(options_.home, [this] { startHome(); });
}

void Node::startHome() {
  net::Loop& loop = pool_.loop(options_.home);
  RedisClient::Options ro;
  ro.address = options_.redis;
  commands_ = std::make_unique<RedisClient>(loop, ro);
  subscriber_ = std::make_unique<RedisClient>(loop, ro);
  subscriber_->subscribe(nodeKey(options_.id),
                         [this](std::string_view, std::string_view payload) { receive(payload); });
  commands_->onState([this](bool up) {
    stats_.redisUp.store(up, std::memory_order_relaxed);
    if (!up) {
      downSince_ = Clock::now();
      // The other nodes' counts can be neither renewed nor trusted: each node counts its own (docs/cluster.md).
      if (options_.addressLimits) options_.addressLimits->setElsewhere({});
      stats_.addressesElsewhere.store(0, std::memory_order_relaxed);
      spdlog::warn("cluster: redis {}:{} unreachable: serving this node's rooms only", options_.redis.host,
                   options_.redis.port);
      return;
    }
    spdlog::info("cluster: node {} connected to redis {}:{}", options_.id, options_.redis.host, options_.redis.port);
    // Away longer than a node's TTL: the others took this node for dead and ended their side of every link.
    if (downSince_ != TimePoint{} && Clock::now() - downSince_ > options_.ttl) endAllLinks("cluster link lost");
    heartbeat();
  });
  commands_->start();
  subscriber_->start();
  heartbeatTimer_ = loop.every(options_.heartbeat, [this](TimePoint) { heartbeat(); });
  refreshTimer_ = loop.every(options_.placementTtl / 3, [this](TimePoint) { refreshPlacements(); });
}

void Node::stop() {
  std::promise<void> done;
  auto f = done.get_future();
  pool_.post(options_.home, [this, &done] {
    stopped_ = true;
    net::Loop& loop = pool_.loop(options_.home);
    loop.cancel(heartbeatTimer_);
    loop.cancel(refreshTimer_);
    // Gone at once rather than when the record expires: the others end their links now, and a room placed here is
    // taken over by the next node asked instead of being sent to a node that no longer listens.
    if (commands_ && commands_->up()) {
      commands_->command({"SREM", std::string(kNodesKey), options_.id});
      commands_->command({"DEL", nodeKey(options_.id)});
    }
    flush();
    subscriber_.reset();
    // The commands connection stays until the pool stops, so the last batches and the SREM leave.
    done.set_value();
  });
  f.wait_for(std::chrono::seconds(2));
}

void Node::heartbeat() {
  if (stopped_ || !commands_ || !commands_->up()) return;
  commands_->command({"SET", nodeKey(options_.id), options_.advertise, "PX", std::to_string(options_.ttl.count())});
  commands_->command({"SADD", std::string(kNodesKey), options_.id});
  publishLoad();
  commands_->command({"SMEMBERS", std::string(kNodesKey)}, [this](Reply r) { members(r); });
  stats_.commands.store(commands_->stats().commands, std::memory_order_relaxed);
}

void Node::members(const Reply& reply) {
  if (reply.type != Reply::Type::kArray || reply.elements.empty()) return;
  std::vector<std::string> ids;
  std::vector<std::string> args{"MGET"};
  for (const auto& e : reply.elements) {
    if (e.type != Reply::Type::kString || !validNodeId(e.text)) continue;
    ids.push_back(e.text);
    args.push_back(nodeKey(e.text));
  }
  if (ids.empty()) return;
  commands_->command(args, [this, ids = std::move(ids)](Reply r) {
    if (r.type != Reply::Type::kArray || r.elements.size() != ids.size()) return;
    std::set<std::string> live;
    std::vector<std::string> gone{"SREM", std::string(kNodesKey)};
    urls_.clear();
    for (std::size_t i = 0; i < ids.size(); ++i) {
      if (r.elements[i].type == Reply::Type::kString) {
        live.insert(ids[i]);
        urls_[ids[i]] = r.elements[i].text;
      } else if (ids[i] != options_.id) {
        gone.push_back(ids[i]);
      }
    }
    if (gone.size() > 2) commands_->command(gone);
    live.insert(options_.id);
    urls_.try_emplace(options_.id, options_.advertise);
    updateLive(std::move(live));
    readLoads();
  });
}

void Node::publishLoad() {
  Load load;
  load.rooms = static_cast<uint64_t>(std::max<int64_t>(0, metrics::registry().rooms.load(std::memory_order_relaxed)));
  if (common::AddressLimits* limits = options_.addressLimits; limits && limits->options().connections > 0) {
    // Addresses with a sixteenth of the limit here or more: below that an address is not shared (docs/cluster.md).
    auto atLeast = static_cast<uint32_t>(std::max<std::size_t>(1, limits->options().connections / 16));
    load.addresses = limits->busiest(atLeast, options_.maxReportedAddresses);
  }
  commands_->command({"SET", loadKey(options_.id), encodeLoad(load), "PX", std::to_string(options_.ttl.count())});
}

void Node::readLoads() {
  if (stopped_ || !commands_) return;
  std::vector<std::string> ids(live_.begin(), live_.end());
  std::vector<std::string> args{"MGET"};
  for (const auto& id : ids) args.push_back(loadKey(id));
  commands_->command(args, [this, ids = std::move(ids)](Reply r) {
    if (r.type != Reply::Type::kArray || r.elements.size() != ids.size()) return;
    std::map<common::Address16, uint32_t> elsewhere;
    std::string nodes, rooms;
    uint64_t total = 0;
    for (std::size_t i = 0; i < ids.size(); ++i) {
      std::optional<Load> load;
      if (r.elements[i].type == Reply::Type::kString) {
        load = parseLoad(r.elements[i].text, options_.maxReportedAddresses);
        if (!load) stats_.dropped.fetch_add(1, std::memory_order_relaxed);  // a record that does not parse: ignored
      }
      const std::string node = labelValue(ids[i]);
      auto url = urls_.find(ids[i]);
      fmt::format_to(std::back_inserter(nodes), "kaiwa_cluster_node{{node=\"{}\",url=\"{}\"}} 1\n", node,
                     labelValue(url == urls_.end() ? "" : url->second));
      if (!load) continue;
      total += load->rooms;
      fmt::format_to(std::back_inserter(rooms), "kaiwa_cluster_node_rooms{{node=\"{}\"}} {}\n", node, load->rooms);
      if (ids[i] == options_.id) continue;
      for (const auto& [address, count] : load->addresses) {
        uint32_t& sum = elsewhere[address];
        sum = static_cast<uint32_t>(std::min<uint64_t>(uint64_t{sum} + count, UINT32_MAX));
      }
    }
    if (options_.addressLimits) options_.addressLimits->setElsewhere({elsewhere.begin(), elsewhere.end()});
    stats_.addressesElsewhere.store(elsewhere.size(), std::memory_order_relaxed);
    std::string view = fmt::format(
        "# HELP kaiwa_cluster_node A live node of the cluster and its --advertise URL, as of the last heartbeat.\n"
        "# TYPE kaiwa_cluster_node gauge\n{}"
        "# HELP kaiwa_cluster_node_rooms Rooms each live node holds, as it said at its last heartbeat.\n"
        "# TYPE kaiwa_cluster_node_rooms gauge\n{}"
        "# HELP kaiwa_cluster_rooms Rooms in the whole cluster (the sum of kaiwa_cluster_node_rooms).\n"
        "# TYPE kaiwa_cluster_rooms gauge\nkaiwa_cluster_rooms {}\n",
        nodes, rooms, total);
    std::lock_guard lock(viewMutex_);
    view_ = std::move(view);
  });
}

void Node::locateUrl(std::string room, UrlFn done) {
  onHome([this, room = std::move(room), done = std::move(done)]() mutable {
    locate(room, [this, done = std::move(done)](signal::Placement where, const std::string& owner) {
      if (where != signal::Placement::kElsewhere) return done(where, {});
      auto url = urls_.find(owner);
      // An owner this node has not heard of yet (its first heartbeat since it came up is still to come).
      if (url == urls_.end()) return done(signal::Placement::kUnavailable, {});
      done(where, url->second);
    });
  });
}

void Node::updateLive(std::set<std::string> live) {
  for (const auto& n : live_) {
    if (!live.contains(n)) nodeGone(n);
  }
  for (const auto& n : live) {
    if (!live_.contains(n) && n != options_.id) spdlog::info("cluster: node {} is up", n);
  }
  live_ = std::move(live);
  stats_.nodes.store(live_.size(), std::memory_order_relaxed);
}

void Node::nodeGone(const std::string& node) {
  spdlog::warn("cluster: node {} is gone: its rooms move, its members here leave after their grace", node);
  stats_.nodesGone.fetch_add(1, std::memory_order_relaxed);
  std::erase_if(placements_, [&](const auto& p) { return p.second.owner == node; });
  pending_.erase(node);
  // This node's clients in its rooms: closed, so that they come back (to a room placed anew).
  for (auto it = relayed_.begin(); it != relayed_.end();) {
    if (it->second == node) {
      uint64_t link = it->first;
      auto worker = static_cast<uint32_t>(link >> kWorkerShift);
      pool_.post(worker, [this, worker, link] { closeLink(worker, link, kCloseGoingAway, "node gone"); });
      it = relayed_.erase(it);
    } else {
      ++it;
    }
  }
  stats_.links.store(relayed_.size(), std::memory_order_relaxed);
  // Its clients in rooms here: detached, as a dropped connection is; they leave when their grace ends.
  for (auto it = proxyWorkers_.begin(); it != proxyWorkers_.end();) {
    if (it->first.first == node) {
      pool_.post(it->second, [this, worker = it->second, key = it->first] { endProxy(worker, key, false); });
      it = proxyWorkers_.erase(it);
    } else {
      ++it;
    }
  }
}

void Node::endAllLinks(const char* why) {
  spdlog::warn("cluster: ending every link to other nodes ({})", why);
  for (const auto& [link, owner] : relayed_) {
    auto worker = static_cast<uint32_t>(link >> kWorkerShift);
    pool_.post(worker, [this, worker, link = link] { closeLink(worker, link, kCloseGoingAway, "cluster link lost"); });
  }
  relayed_.clear();
  stats_.links.store(0, std::memory_order_relaxed);
  for (const auto& [key, worker] : proxyWorkers_) {
    pool_.post(worker, [this, worker = worker, key = key] { endProxy(worker, key, false); });
  }
  proxyWorkers_.clear();
  placements_.clear();
}

void Node::refreshPlacements() {
  if (stopped_ || !commands_ || !commands_->up()) return;
  for (uint32_t w = 0; w < pool_.size(); ++w) {
    pool_.post(w, [this, w] {
      std::vector<std::string> names;
      hub_.rooms(w).forEachName([&](std::string_view n) { names.push_back(roomKey(n)); });
      if (names.empty() && w != options_.home) return;
      onHome([this, names = std::move(names)]() mutable {
        if (!commands_ || !commands_->up()) return;
        for (const auto& h : held_) names.push_back(roomKey(h));
        constexpr std::size_t kChunk = 1000;
        for (std::size_t i = 0; i < names.size(); i += kChunk) {
          std::size_t n = std::min(kChunk, names.size() - i);
          std::vector<std::string> args{"EVAL", kRenewScript, std::to_string(n + 1), std::string(kPlacedKey)};
          for (std::size_t j = 0; j < n; ++j) args.push_back(std::move(names[i + j]));
          args.push_back(options_.id);
          args.push_back(std::to_string(options_.placementTtl.count()));
          args.push_back(options_.maxRooms > 0 ? "1" : "0");
          commands_->command(args);
        }
      });
    });
  }
}

void Node::locate(const std::string& room, PlaceFn done) {
  const bool up = commands_ && commands_->up();
  auto now = Clock::now();
  if (auto it = placements_.find(room); it != placements_.end()) {
    const bool alive = it->second.owner == options_.id || live_.contains(it->second.owner);
    if (alive && (!up || now - it->second.at < options_.placementCache)) {
      done(it->second.owner == options_.id ? signal::Placement::kHere : signal::Placement::kElsewhere,
           it->second.owner);
      return;
    }
  }
  // Redis unreachable: no other node can be reached either, so the room is served here (docs/cluster.md).
  if (!up) return done(signal::Placement::kHere, options_.id);
  commands_->command({"EVAL", kPlaceScript, "2", roomKey(room), std::string(kPlacedKey), options_.id,
                      std::to_string(options_.placementTtl.count()), std::to_string(options_.maxRooms)},
                     [this, room, done = std::move(done)](Reply r) {
                       if (r.type == Reply::Type::kFailed) return done(signal::Placement::kHere, options_.id);
                       if (r.type == Reply::Type::kError && r.text.find("kaiwa-full") != std::string::npos) {
                         stats_.roomsRefused.fetch_add(1, std::memory_order_relaxed);
                         return done(signal::Placement::kFull, {});
                       }
                       if (r.type != Reply::Type::kString || !validNodeId(r.text)) {
                         spdlog::warn("cluster: placing room {}: {}", room, r.text);
                         return done(signal::Placement::kUnavailable, {});
                       }
                       constexpr std::size_t kMaxCached = 100'000;
                       if (placements_.size() >= kMaxCached) placements_.clear();
                       placements_[room] = CachedPlacement{r.text, Clock::now()};
                       done(r.text == options_.id ? signal::Placement::kHere : signal::Placement::kElsewhere, r.text);
                     });
}

void Node::toNode(const std::string& node, ItemKind kind, uint64_t link, std::string body) {
  onHome([this, node, kind, link, body = std::move(body)] { queue(node, kind, link, body); });
}

void Node::queue(const std::string& node, ItemKind kind, uint64_t link, std::string_view body) {
  if (stopped_ && !commands_) return;
  if (!commands_ || !commands_->up()) {
    stats_.dropped.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  auto& writer = pending_.try_emplace(node, options_.id).first->second;
  if (writer.size() + body.size() > options_.maxBatchBytes) {
    stats_.dropped.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  writer.add(kind, link, body);
  stats_.itemsOut.fetch_add(1, std::memory_order_relaxed);
  if (!flushPosted_) {
    flushPosted_ = true;
    pool_.post(options_.home, [this] { flush(); });
  }
}

void Node::flush() {
  flushPosted_ = false;
  for (auto& [node, writer] : pending_) {
    if (writer.empty()) continue;
    if (!commands_ || !commands_->up()) {
      stats_.dropped.fetch_add(writer.items(), std::memory_order_relaxed);
      writer.take();
      continue;
    }
    commands_->command({"PUBLISH", nodeKey(node), writer.take()});
    stats_.batchesOut.fetch_add(1, std::memory_order_relaxed);
  }
  if (commands_) stats_.commands.store(commands_->stats().commands, std::memory_order_relaxed);
}

void Node::receive(std::string_view payload) {
  auto batch = parseBatch(payload);
  if (!batch) {
    stats_.dropped.fetch_add(1, std::memory_order_relaxed);
    spdlog::debug("cluster: a batch that does not parse, dropped");
    return;
  }
  stats_.batchesIn.fetch_add(1, std::memory_order_relaxed);
  stats_.itemsIn.fetch_add(batch->items.size(), std::memory_order_relaxed);
  std::string from(batch->from);
  std::vector<std::vector<OwnedItem>> byWorker(pool_.size());
  auto drop = [this] { stats_.dropped.fetch_add(1, std::memory_order_relaxed); };
  for (const Item& item : batch->items) {
    uint32_t worker = 0;
    switch (item.kind) {
      case ItemKind::kOpen: {
        // "door\nroom\naddress"
        auto first = item.body.find('\n');
        auto second = first == std::string_view::npos ? first : item.body.find('\n', first + 1);
        if (second == std::string_view::npos || !parseDoor(item.body.substr(0, first))) {
          drop();
          continue;
        }
        if (proxyWorkers_.size() >= options_.maxRemoteMembers) {
          drop();
          queue(from, ItemKind::kEnd, item.link, "1013 too many members from other nodes");
          continue;
        }
        worker = hub_.ownerOf(item.body.substr(first + 1, second - first - 1));
        proxyWorkers_[ProxyKey{from, item.link}] = worker;
        break;
      }
      case ItemKind::kFrame:
      case ItemKind::kClose: {
        auto it = proxyWorkers_.find(ProxyKey{from, item.link});
        if (it == proxyWorkers_.end()) {
          drop();
          continue;
        }
        worker = it->second;
        if (item.kind == ItemKind::kClose) proxyWorkers_.erase(it);
        break;
      }
      case ItemKind::kDeliver:
      case ItemKind::kEnd: {
        auto it = relayed_.find(item.link);
        if (it == relayed_.end() || it->second != from) {
          drop();
          continue;
        }
        worker = static_cast<uint32_t>(item.link >> kWorkerShift);
        if (item.kind == ItemKind::kEnd) relayed_.erase(it);
        break;
      }
    }
    byWorker[worker].push_back(OwnedItem{item.kind, item.link, std::string(item.body)});
  }
  stats_.links.store(relayed_.size(), std::memory_order_relaxed);
  for (uint32_t w = 0; w < byWorker.size(); ++w) {
    if (byWorker[w].empty()) continue;
    if (w == options_.home) {
      handle(w, from, byWorker[w]);
    } else {
      pool_.post(w, [this, w, from, items = std::move(byWorker[w])]() mutable { handle(w, from, items); });
    }
  }
}

void Node::handle(uint32_t worker, const std::string& from, std::vector<OwnedItem>& items) {
  WorkerState& ws = *workers_[worker];
  for (auto& item : items) {
    switch (item.kind) {
      case ItemKind::kOpen: {
        ProxyKey key{from, item.link};
        if (ws.proxies.contains(key)) break;
        auto address = item.body.substr(item.body.find('\n', item.body.find('\n') + 1) + 1);
        auto proxy = std::make_unique<Proxy>(*this, worker, key, std::move(address));
        proxy->handler =
            factory_(parseDoor(item.body.substr(0, item.body.find('\n'))).value_or(signal::Door::kNative), *proxy);
        if (!proxy->handler) break;
        Proxy& p = *proxy;
        ws.proxies.emplace(std::move(key), std::move(proxy));
        stats_.remoteMembers.fetch_add(1, std::memory_order_relaxed);
        p.handler->onOpen();
        break;
      }
      case ItemKind::kFrame: {
        auto it = ws.proxies.find(ProxyKey{from, item.link});
        if (it != ws.proxies.end() && !it->second->closed_) it->second->handler->onMessage(item.body, false);
        break;
      }
      case ItemKind::kClose:
        endProxy(worker, ProxyKey{from, item.link}, item.body == "1");
        break;
      case ItemKind::kDeliver: {
        auto it = ws.links.find(item.link);
        if (it != ws.links.end()) it->second->onRelayText(item.body);
        break;
      }
      case ItemKind::kEnd: {
        uint16_t code = kCloseGoingAway;
        std::string_view body = item.body;
        auto space = body.find(' ');
        std::from_chars(body.data(), body.data() + std::min(space, body.size()), code);
        std::string_view reason = space == std::string_view::npos ? std::string_view{} : body.substr(space + 1);
        closeLink(worker, item.link, code, reason);
        break;
      }
    }
  }
}

void Node::closeLink(uint32_t worker, uint64_t link, uint16_t code, std::string_view reason) {
  WorkerState& ws = *workers_[worker];
  auto it = ws.links.find(link);
  if (it == ws.links.end()) return;
  signal::RemoteLink* l = it->second;
  ws.links.erase(it);
  l->onRelayClose(code, reason);
}

void Node::endProxy(uint32_t worker, const ProxyKey& key, bool goingAway) {
  WorkerState& ws = *workers_[worker];
  auto it = ws.proxies.find(key);
  if (it == ws.proxies.end()) return;
  std::unique_ptr<Proxy> proxy = std::move(it->second);
  ws.proxies.erase(it);
  stats_.remoteMembers.fetch_sub(1, std::memory_order_relaxed);
  const bool endedHere = proxy->closed_;  // the session closed it: the client's node was told (kEnd)
  proxy->closed_ = true;
  proxy->goingAway_ = goingAway;
  proxy->handler->onClose();
  if (endedHere) onHome([this, key] { proxyWorkers_.erase(key); });
}

// --- signal::Relay: the client's side ---

uint64_t Node::attach(uint32_t worker, signal::RemoteLink* link) {
  WorkerState& ws = *workers_[worker];
  uint64_t id = (static_cast<uint64_t>(worker) << kWorkerShift) | (++ws.nextLink & ((uint64_t{1} << kWorkerShift) - 1));
  ws.links[id] = link;
  return id;
}

void Node::detach(uint32_t worker, uint64_t link) { workers_[worker]->links.erase(link); }

void Node::place(uint32_t worker, uint64_t link, signal::Door door, std::string room, std::string address) {
  onHome([this, worker, link, door, room = std::move(room), address = std::move(address)] {
    locate(room, [this, worker, link, door, room, address](signal::Placement where, const std::string& owner) {
      // A placement that is not a room of the hub (Socket.IO's, docs/socketio.md) is renewed as long as this node
      // lives, so that it does not move while this node holds its sessions.
      if (where == signal::Placement::kHere && door == signal::Door::kSocketIo) held_.insert(room);
      opened(worker, link, door, where, owner, room, address);
    });
  });
}

void Node::connect(uint32_t worker, uint64_t link, signal::Door door, std::string node, std::string key,
                   std::string address) {
  onHome([this, worker, link, door, node = std::move(node), key = std::move(key), address = std::move(address)] {
    signal::Placement where = node == options_.id    ? signal::Placement::kHere
                              : live_.contains(node) ? signal::Placement::kElsewhere
                                                     : signal::Placement::kUnavailable;
    opened(worker, link, door, where, node, key, address);
  });
}

void Node::opened(uint32_t worker, uint64_t link, signal::Door door, signal::Placement where, const std::string& owner,
                  const std::string& room, const std::string& address) {
  if (where == signal::Placement::kElsewhere) {
    relayed_[link] = owner;
    stats_.links.store(relayed_.size(), std::memory_order_relaxed);
    queue(owner, ItemKind::kOpen, link, fmt::format("{}\n{}\n{}", doorName(door), room, address));
  }
  pool_.post(worker, [this, worker, link, where] {
    WorkerState& ws = *workers_[worker];
    auto it = ws.links.find(link);
    if (it != ws.links.end()) {
      it->second->onPlaced(where);
    } else if (where == signal::Placement::kElsewhere) {
      close(worker, link, false);  // gone while it was placed: the owner's side ends too
    }
  });
}

void Node::send(uint32_t /*worker*/, uint64_t link, std::string frame) {
  onHome([this, link, frame = std::move(frame)] {
    auto it = relayed_.find(link);
    if (it == relayed_.end()) {
      stats_.dropped.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    queue(it->second, ItemKind::kFrame, link, frame);
  });
}

void Node::close(uint32_t worker, uint64_t link, bool goingAway) {
  workers_[worker]->links.erase(link);
  onHome([this, link, goingAway] {
    auto it = relayed_.find(link);
    if (it == relayed_.end()) return;
    queue(it->second, ItemKind::kClose, link, goingAway ? "1" : "0");
    relayed_.erase(it);
    stats_.links.store(relayed_.size(), std::memory_order_relaxed);
  });
}

std::string Node::renderMetrics() const {
  std::string out;
  auto emit = [&out](std::string_view name, std::string_view type, std::string_view help, uint64_t value) {
    fmt::format_to(std::back_inserter(out), "# HELP {0} {1}\n# TYPE {0} {2}\n{0} {3}\n", name, help, type, value);
  };
  auto load = [](const std::atomic<uint64_t>& a) { return a.load(std::memory_order_relaxed); };
  emit("kaiwa_cluster_redis_up", "gauge", "1 while this node's Redis connection is up.", redisUp() ? 1 : 0);
  emit("kaiwa_cluster_nodes", "gauge", "Live nodes, this one included, as of the last heartbeat.", load(stats_.nodes));
  emit("kaiwa_cluster_redis_commands_total", "counter", "Redis commands sent.", load(stats_.commands));
  emit("kaiwa_cluster_published_batches_total", "counter", "Batches published to other nodes.",
       load(stats_.batchesOut));
  emit("kaiwa_cluster_received_batches_total", "counter", "Batches received from other nodes.", load(stats_.batchesIn));
  emit("kaiwa_cluster_items_out_total", "counter", "Items (frames, opens, closes) sent to other nodes.",
       load(stats_.itemsOut));
  emit("kaiwa_cluster_items_in_total", "counter", "Items received from other nodes.", load(stats_.itemsIn));
  emit("kaiwa_cluster_dropped_total", "counter",
       "Items dropped: Redis unreachable, a batch over its size, a link unknown, a batch that does not parse.",
       load(stats_.dropped));
  emit("kaiwa_cluster_nodes_gone_total", "counter", "Nodes seen to die.", load(stats_.nodesGone));
  emit("kaiwa_cluster_links", "gauge", "This node's clients in rooms of other nodes.", load(stats_.links));
  emit("kaiwa_cluster_remote_members", "gauge", "Other nodes' clients in rooms of this node.",
       load(stats_.remoteMembers));
  emit("kaiwa_cluster_rooms_refused_total", "counter", "Rooms refused because the cluster held --max-rooms rooms.",
       load(stats_.roomsRefused));
  emit("kaiwa_cluster_addresses_elsewhere", "gauge",
       "Client addresses whose connections on other nodes count against the per-address limit here.",
       load(stats_.addressesElsewhere));
  std::lock_guard lock(viewMutex_);
  out += view_;
  return out;
}

}  // namespace kaiwa::cluster

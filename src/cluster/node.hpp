#pragma once
// This kaiwa as one node of a cluster on Redis (docs/cluster.md). All of its Redis work runs on one worker, the
// home (worker 0): two connections (commands, and pub/sub on the node's channel), the heartbeat that keeps the node
// record alive and reads the list of live nodes, room placement, and the batches to and from other nodes.
//
// Two roles per cross-node connection ("link"):
// - on the client's node, a front door's connection whose room lives elsewhere (signal::RemoteLink): its frames go
//   to the owner in batches, the owner's frames for it come back the same way;
// - on the owner, a proxy: a WsConnection with no socket, driven by those batches, under a front door's ordinary
//   session made for it (the HandlerFactory), so the room core runs as for any member of the room.
// Everything queued for one node during a round of the home loop goes out as one PUBLISH.
#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "cluster/batch.hpp"
#include "cluster/load.hpp"
#include "cluster/redis.hpp"
#include "http/handler.hpp"
#include "net/worker_pool.hpp"
#include "signal/hub.hpp"
#include "signal/relay.hpp"

namespace kaiwa::cluster {

struct NodeOptions {
  RedisAddress redis;
  std::string id;         // unique in the cluster (validNodeId)
  std::string advertise;  // how other nodes and clients reach this node (a URL), stored in its record
  Millis heartbeat{1000};
  Millis ttl{3000};                     // a node whose record was not renewed this long is dead
  Millis placementTtl{30'000};          // a room's placement lives this long unless its owner renews it (every ttl/3)
  Millis placementCache{5'000};         // how long a placement read from Redis is used without asking again
  std::size_t maxBatchBytes = 4 << 20;  // queued for one node in one round; items past it are dropped, counted
  std::size_t maxRemoteMembers = 100'000;  // proxies for other nodes' clients on this node
  std::size_t maxRooms = 0;  // rooms placed in the whole cluster (--max-rooms), checked when a room is placed; 0: none
  // This node's per-address limits: its busiest addresses go into its load record, and the other nodes' counts are
  // counted against the connection limit here (docs/cluster.md, "Cluster-wide limits"). nullptr: not shared.
  common::AddressLimits* addressLimits = nullptr;
  std::size_t maxReportedAddresses = 10'000;  // addresses in a node's load record (the busiest first)
  uint32_t home = 0;
};

class Node final : public signal::Relay {
 public:
  // Makes the front door's session for a proxy (only kNative for now).
  using HandlerFactory = std::function<std::unique_ptr<http::WsHandler>(signal::Door, http::WsConnection&)>;

  Node(net::WorkerPool& pool, signal::Hub& hub, NodeOptions options, HandlerFactory factory);
  ~Node() override;

  const NodeOptions& options() const { return options_; }
  // Starts the Redis connections and the timers on the home worker (after the pool started, or before: posted).
  void start();
  // From a thread that is not a worker, before the pool stops: closes the Redis connections on the home worker.
  void stop();

  bool redisUp() const { return stats_.redisUp.load(std::memory_order_relaxed); }
  // The kaiwa_cluster_* lines of /metrics (any thread).
  std::string renderMetrics() const;

  // Where `room` lives, for the routes that redirect to its owner (WHIP/WHEP): placed here if nobody holds it. `done`
  // gets kHere, kElsewhere with the owner's --advertise URL, kUnavailable or kFull; it runs on the home worker.
  using UrlFn = std::function<void(signal::Placement, std::string url)>;
  void locateUrl(std::string room, UrlFn done);

  // signal::Relay (on the link's worker)
  uint64_t attach(uint32_t worker, signal::RemoteLink* link) override;
  void detach(uint32_t worker, uint64_t link) override;
  void place(uint32_t worker, uint64_t link, signal::Door door, std::string room, std::string address) override;
  void connect(uint32_t worker, uint64_t link, signal::Door door, std::string node, std::string key,
               std::string address) override;
  const std::string& nodeId() const override { return options_.id; }
  void send(uint32_t worker, uint64_t link, std::string frame) override;
  void close(uint32_t worker, uint64_t link, bool goingAway) override;

 private:
  class Proxy;
  struct OwnedItem {
    ItemKind kind;
    uint64_t link;
    std::string body;
  };
  using ProxyKey = std::pair<std::string, uint64_t>;  // (client's node, link)
  struct WorkerState {
    std::unordered_map<uint64_t, signal::RemoteLink*> links;  // this node's clients linked to other nodes
    uint64_t nextLink = 0;
    std::map<ProxyKey, std::unique_ptr<Proxy>> proxies;  // other nodes' clients in rooms of this worker
  };
  struct CachedPlacement {
    std::string owner;
    TimePoint at;
  };
  using PlaceFn = std::function<void(signal::Placement, const std::string& owner)>;

  template <typename F>
  void onHome(F&& f);
  void startHome();
  void heartbeat();
  void members(const Reply& reply);
  void publishLoad();
  void readLoads();
  void updateLive(std::set<std::string> live);
  void nodeGone(const std::string& node);
  void endAllLinks(const char* why);
  void refreshPlacements();
  void locate(const std::string& room, PlaceFn done);
  // On home: a link placed (or connected) at `owner`: opened towards it when elsewhere, then the link told.
  void opened(uint32_t worker, uint64_t link, signal::Door door, signal::Placement where, const std::string& owner,
              const std::string& room, const std::string& address);
  void queue(const std::string& node, ItemKind kind, uint64_t link, std::string_view body);  // on home
  void flush();
  void receive(std::string_view payload);
  void handle(uint32_t worker, const std::string& from, std::vector<OwnedItem>& items);    // on `worker`
  void closeLink(uint32_t worker, uint64_t link, uint16_t code, std::string_view reason);  // on `worker`
  void endProxy(uint32_t worker, const ProxyKey& key, bool goingAway);                     // on `worker`
  void toNode(const std::string& node, ItemKind kind, uint64_t link, std::string body);    // any worker

  net::WorkerPool& pool_;
  signal::Hub& hub_;
  NodeOptions options_;
  HandlerFactory factory_;
  std::vector<std::unique_ptr<WorkerState>> workers_;

  // On the home worker only.
  std::unique_ptr<RedisClient> commands_;
  std::unique_ptr<RedisClient> subscriber_;
  net::Loop::TimerId heartbeatTimer_ = 0;
  net::Loop::TimerId refreshTimer_ = 0;
  std::set<std::string> live_;                         // the live nodes, this one included, as of the last heartbeat
  std::unordered_map<std::string, std::string> urls_;  // live node -> its --advertise URL
  std::unordered_map<std::string, CachedPlacement> placements_;
  std::unordered_map<uint64_t, std::string> relayed_;  // link -> owner node, for this node's clients
  std::map<ProxyKey, uint32_t> proxyWorkers_;          // proxy -> the worker of its room
  std::unordered_map<std::string, BatchWriter> pending_;
  std::set<std::string> held_;  // placements that are no room of the hub, held while this node lives (Socket.IO's)
  bool flushPosted_ = false;
  TimePoint downSince_{};
  bool stopped_ = false;

  struct Stats {
    std::atomic<bool> redisUp{false};
    std::atomic<uint64_t> nodes{0};
    std::atomic<uint64_t> commands{0};
    std::atomic<uint64_t> batchesOut{0};
    std::atomic<uint64_t> batchesIn{0};
    std::atomic<uint64_t> itemsOut{0};
    std::atomic<uint64_t> itemsIn{0};
    std::atomic<uint64_t> dropped{0};
    std::atomic<uint64_t> nodesGone{0};
    std::atomic<uint64_t> links{0};
    std::atomic<uint64_t> remoteMembers{0};
    std::atomic<uint64_t> roomsRefused{0};
    std::atomic<uint64_t> addressesElsewhere{0};
  };
  Stats stats_;
  // The cluster's view for /metrics (nodes, their URLs and rooms), rendered by the home worker at each heartbeat and
  // read by the scrape: a lock taken once a second and once a scrape, never on the message path.
  mutable std::mutex viewMutex_;
  std::string view_;
};

}  // namespace kaiwa::cluster

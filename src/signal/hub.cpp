#include "signal/hub.hpp"

#include <boost/asio/steady_timer.hpp>

namespace kaiwa::signal {

struct Hub::Shard {
  explicit Shard(boost::asio::io_context& io, const Limits& limits, std::atomic<std::size_t>& count)
      : rooms(limits, count), timer(io) {}
  RoomHost rooms;
  std::unordered_map<uint64_t, Connection*> connections;
  uint64_t nextSession = 1;
  boost::asio::steady_timer timer;
  bool stopped = false;
};

Hub::Hub(net::WorkerPool& pool, HubOptions options) : pool_(pool), options_(std::move(options)) {
  for (uint32_t w = 0; w < pool_.size(); ++w) {
    shards_.push_back(std::make_unique<Shard>(pool_.context(w), options_.limits, roomCount_));
  }
}

Hub::~Hub() = default;

uint32_t Hub::ownerOf(std::string_view room) const {
  return static_cast<uint32_t>(std::hash<std::string_view>{}(room) % shards_.size());
}

Endpoint Hub::attach(uint32_t worker, Connection* connection) {
  Shard& s = *shards_[worker];
  Endpoint ep{worker, s.nextSession++};
  s.connections.emplace(ep.session, connection);
  return ep;
}

void Hub::detach(Endpoint endpoint) { shards_[endpoint.worker]->connections.erase(endpoint.session); }

void Hub::onRoom(std::string_view room, RoomTask task) {
  uint32_t owner = ownerOf(room);
  auto run = [this, owner, task = std::move(task)] {
    Outbox out;
    task(shards_[owner]->rooms, out);
    if (!out.empty()) dispatch(std::move(out));
  };
  if (net::WorkerPool::current() == owner) {
    run();
  } else {
    pool_.post(owner, std::move(run));
  }
}

void Hub::dispatch(Outbox&& out) {
  uint32_t here = net::WorkerPool::current();
  // Most outboxes go to one worker; split only when needed.
  std::vector<Outbox> byWorker(shards_.size());
  for (auto& d : out) byWorker[d.to.worker].push_back(std::move(d));
  for (uint32_t w = 0; w < byWorker.size(); ++w) {
    if (byWorker[w].empty()) continue;
    if (w == here) {
      deliverLocal(w, byWorker[w]);
    } else {
      pool_.post(w, [this, w, batch = std::move(byWorker[w])]() mutable { deliverLocal(w, batch); });
    }
  }
}

void Hub::deliverLocal(uint32_t worker, Outbox& out) {
  Shard& s = *shards_[worker];
  for (auto& d : out) {
    auto it = s.connections.find(d.to.session);
    if (it != s.connections.end()) it->second->deliver(d.event);
  }
}

void Hub::start() {
  for (uint32_t w = 0; w < shards_.size(); ++w) {
    pool_.post(w, [this, w] { armTick(w); });
  }
}

void Hub::armTick(uint32_t worker) {
  Shard& s = *shards_[worker];
  if (s.stopped) return;
  s.timer.expires_after(options_.tickInterval);
  s.timer.async_wait([this, worker](const boost::system::error_code& ec) {
    if (ec) return;
    Outbox out;
    shards_[worker]->rooms.tick(Clock::now(), out);
    if (!out.empty()) dispatch(std::move(out));
    armTick(worker);
  });
}

void Hub::shutdown(const std::string& reason) {
  auto bye = std::make_shared<const Event>(ev::Bye{reason});
  for (uint32_t w = 0; w < shards_.size(); ++w) {
    pool_.post(w, [this, w, bye] {
      Shard& s = *shards_[w];
      s.stopped = true;
      s.timer.cancel();
      // By id, not pointer: a connection's bye may close others of the same client (Socket.IO rooms).
      std::vector<uint64_t> all;
      all.reserve(s.connections.size());
      for (auto& [id, c] : s.connections) all.push_back(id);
      for (uint64_t id : all) {
        auto it = s.connections.find(id);
        if (it != s.connections.end()) it->second->deliver(bye);
      }
    });
  }
}

}  // namespace kaiwa::signal

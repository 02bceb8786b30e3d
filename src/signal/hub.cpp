#include "signal/hub.hpp"

#include <algorithm>

namespace kaiwa::signal {

struct Hub::Shard {
  Shard(const Limits& limits, std::atomic<std::size_t>& count, common::AddressLimits* addressLimits)
      : rooms(limits, count, addressLimits) {}
  RoomHost rooms;
  // The worker's connections by slot: a session id is (generation << 32) | slot, and a slot's generation changes
  // when it is freed, so a late event for a gone connection never reaches the one that took its slot. 16 bytes per
  // connection (a hash map node cost 40).
  struct Slot {
    Connection* connection = nullptr;
    uint32_t generation = 1;
  };
  std::vector<Slot> slots;
  std::vector<uint32_t> freeSlots;
  Connection* find(uint64_t session) const {
    auto index = static_cast<uint32_t>(session);
    if (index >= slots.size() || slots[index].generation != static_cast<uint32_t>(session >> 32)) return nullptr;
    return slots[index].connection;
  }
  net::Loop::TimerId timer = 0;  // the rooms' tick, in the worker's loop
  // The outbox of the last task, emptied with its capacity kept: most tasks reuse it instead of allocating one. A
  // task run from inside another one's dispatch finds it taken and starts a new one.
  Outbox spare;
  unsigned ticks = 0;
  bool stopped = false;
};

Hub::Hub(net::WorkerPool& pool, HubOptions options) : pool_(pool), options_(std::move(options)) {
  for (uint32_t w = 0; w < pool_.size(); ++w) {
    shards_.push_back(std::make_unique<Shard>(options_.limits, roomCount_, options_.addressLimits));
  }
}

// After the workers stopped: the ticks still registered go from the loops (which outlive the hub).
Hub::~Hub() {
  for (uint32_t w = 0; w < shards_.size(); ++w) pool_.loop(w).cancel(shards_[w]->timer);
}

uint32_t Hub::ownerOf(std::string_view room) const {
  return static_cast<uint32_t>(std::hash<std::string_view>{}(room) % shards_.size());
}

RoomHost& Hub::rooms(uint32_t worker) {
  KAIWA_ON_LOOP(pool_.loop(worker));
  return shards_[worker]->rooms;
}

Endpoint Hub::attach(uint32_t worker, Connection* connection) {
  KAIWA_ON_LOOP(pool_.loop(worker));
  Shard& s = *shards_[worker];
  uint32_t index;
  if (!s.freeSlots.empty()) {
    index = s.freeSlots.back();
    s.freeSlots.pop_back();
  } else {
    index = static_cast<uint32_t>(s.slots.size());
    s.slots.emplace_back();
  }
  s.slots[index].connection = connection;
  return Endpoint{worker, (static_cast<uint64_t>(s.slots[index].generation) << 32) | index};
}

void Hub::detach(Endpoint endpoint) {
  KAIWA_ON_LOOP(pool_.loop(endpoint.worker));
  Shard& s = *shards_[endpoint.worker];
  auto index = static_cast<uint32_t>(endpoint.session);
  if (!s.find(endpoint.session)) return;
  s.slots[index].connection = nullptr;
  if (++s.slots[index].generation == 0) s.slots[index].generation = 1;  // session ids are never 0
  s.freeSlots.push_back(index);
}

void Hub::run(uint32_t owner, RoomTaskRef task) {
  KAIWA_ON_LOOP(pool_.loop(owner));
  Shard& s = *shards_[owner];
  Outbox out = std::move(s.spare);  // leaves spare empty
  task(s.rooms, out);
  if (!out.empty()) dispatch(std::move(out));  // takes it only to post it
  out.clear();  // whether dispatch took its buffer or not, it is empty and valid for the next task
  recycle(owner, std::move(out));
}

void Hub::recycle(uint32_t worker, Outbox&& out) {
  constexpr std::size_t kMaxSpare = 64;  // one broadcast to a big room does not pin its outbox for good
  Shard& s = *shards_[worker];
  if (s.spare.capacity() != 0 || out.capacity() > kMaxSpare) return;
  out.clear();
  s.spare = std::move(out);
}

void Hub::dispatch(Outbox&& out) {
  if (out.empty()) return;
  uint32_t here = net::WorkerPool::current();
  // Most outboxes go to one worker (a relay: to the one receiver): no split, no allocation for it.
  const uint32_t first = out.front().to.worker;
  if (std::all_of(out.begin(), out.end(), [first](const Delivery& d) { return d.to.worker == first; })) {
    if (first == here) {
      deliverLocal(first, out);
    } else {
      pool_.post(first, [this, first, batch = std::move(out)]() mutable {
        deliverLocal(first, batch);
        recycle(first, std::move(batch));
      });
    }
    return;
  }
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
  KAIWA_ON_LOOP(pool_.loop(worker));
  Shard& s = *shards_[worker];
  for (auto& d : out) {
    if (Connection* c = s.find(d.to.session)) c->deliver(d.event);
  }
}

void Hub::start() {
  for (uint32_t w = 0; w < shards_.size(); ++w) {
    pool_.post(w, [this, w] {
      Shard& s = *shards_[w];
      if (s.stopped) return;
      s.timer = pool_.loop(w).every(options_.tickInterval,
                                    [this, w](TimePoint now) { tick(w, options_.clock ? options_.clock() : now); });
    });
  }
}

void Hub::tick(uint32_t worker, TimePoint now) {
  KAIWA_ON_LOOP(pool_.loop(worker));
  Outbox out;
  shards_[worker]->rooms.tick(now, out);
  if (!out.empty()) dispatch(std::move(out));
  // Worker 0 forgets idle client addresses now and then (every 10 s at the default tick).
  if (worker == 0 && options_.addressLimits && ++shards_[worker]->ticks % 40 == 0) options_.addressLimits->sweep(now);
}

void Hub::shutdown(ByeReason reason) {
  auto bye = std::make_shared<const Event>(ev::Bye{reason});
  for (uint32_t w = 0; w < shards_.size(); ++w) {
    pool_.post(w, [this, w, bye] {
      KAIWA_ON_LOOP(pool_.loop(w));
      Shard& s = *shards_[w];
      s.stopped = true;
      pool_.loop(w).cancel(s.timer);
      // By id, not pointer: a connection's bye may close others of the same client (Socket.IO rooms).
      std::vector<uint64_t> all;
      for (uint32_t i = 0; i < s.slots.size(); ++i) {
        if (s.slots[i].connection) all.push_back((static_cast<uint64_t>(s.slots[i].generation) << 32) | i);
      }
      for (uint64_t id : all) {
        if (Connection* c = s.find(id)) c->deliver(bye);
      }
    });
  }
}

}  // namespace kaiwa::signal

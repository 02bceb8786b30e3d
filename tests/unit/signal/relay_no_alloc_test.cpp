// The room core relays a message without allocating, once warm: signals, directed messages and relays to an attached
// peer, alone and through Hub::onRoom on the room's worker to the receiving connection. (The data string comes from
// the front door's decoder and is moved along; what the front doors allocate is not counted here.)
#include <gtest/gtest.h>

#include <future>

#include "signal/hub.hpp"

#include "alloc_counter.hpp"

namespace kaiwa::signal {
namespace {

const Endpoint kA{0, 1}, kB{0, 2};

TEST(RoomHotPath, DirectedMessagesAllocateNothing) {
  allocations = 0;
  Limits limits;
  Room room("demo", limits);
  TimePoint now{};
  Outbox out;
  std::string a = room.join(JoinRequest{kA, 1, "A", {}, {}}, now, out);
  std::string b = room.join(JoinRequest{kB, 2, "B", {}, {}}, now, out);
  out.clear();
  std::vector<std::string> data(4 * 1001, std::string(300, 'd'));  // as the decoders hand it over
  std::size_t delivered = 0;
  for (int i = 0; i <= 1000; ++i) {
    counting = i > 0;                                       // the first round makes the blocks the others reuse
    room.signal(kA, 5, a, b, std::move(data[4 * i]), out);  // and its ok
    room.signal(kA, kNoRequest, a, b, std::move(data[4 * i + 1]), out);
    room.message(kA, kNoRequest, a, b, std::move(data[4 * i + 2]), out);
    room.relay(kA, a, b, "OFFER", std::move(data[4 * i + 3]), false, now, out);
    counting = false;
    delivered += out.size();
    out.clear();
  }
  EXPECT_EQ(allocations.load(), 0u);
  EXPECT_EQ(delivered, 5u * 1001);
}

TEST(HubHotPath, RelayingOnTheRoomsWorkerAllocatesNothing) {
  allocations = 0;
  struct Sink : Connection {
    std::size_t events = 0;
    void deliver(const EventPtr&) override { ++events; }
  } sa, sb;
  net::WorkerPool pool(1);
  pool.start();
  Hub hub(pool, HubOptions{});
  std::vector<std::string> data(1001, std::string(300, 'd'));
  std::promise<std::size_t> done;
  pool.post(0, [&] {
    Endpoint ea = hub.attach(0, &sa), eb = hub.attach(0, &sb);
    std::string a, b;
    hub.onRoom("room", [&](RoomHost& rooms, Outbox& out) {
      Room* r = rooms.findOrCreate("room");
      a = r->join(JoinRequest{ea, 1, "A", {}, {}}, Clock::now(), out);
      b = r->join(JoinRequest{eb, 1, "B", {}, {}}, Clock::now(), out);
    });
    sb.events = 0;
    for (int i = 0; i <= 1000; ++i) {
      counting = i > 0;
      // As a front door's task: copies of the (short) ids and room name, the data moved in.
      hub.onRoom("room", [ep = ea, peer = a, room = std::string("room"), to = b, data = std::move(data[i])](
                             RoomHost& rooms, Outbox& out) mutable {
        if (Room* r = rooms.find(room)) r->message(ep, kNoRequest, peer, to, std::move(data), out);
      });
      counting = false;
    }
    done.set_value(sb.events);
  });
  auto events = done.get_future();
  EXPECT_EQ(events.get(), 1001u);
  EXPECT_EQ(allocations.load(), 0u);
  pool.stop();
}

}  // namespace
}  // namespace kaiwa::signal

// The PeerJS door's placement: every WebSocket of a key is served by the worker that owns the key's room, so a relay
// between its clients never crosses threads.
#include <gtest/gtest.h>

#include "signal/hub.hpp"
#include "signal/peerjs/session.hpp"

namespace kaiwa::signal::peerjs {
namespace {

http::Request upgrade(std::string path) {
  http::Request r;
  r.method = "GET";
  r.path = std::move(path);
  r.query = "key=peerjs&id=a&token=t";
  return r;
}

TEST(PeerjsService, PlacesEveryWebSocketOfTheKeyOnTheOwnerOfItsRoom) {
  net::WorkerPool pool(4);
  Hub hub(pool, HubOptions{});
  for (std::string key : {"peerjs", "other", "k3", "k4", "k5"}) {
    Options o;
    o.key = key;
    Service service(hub, o);
    auto w = service.websocketWorker(upgrade("/peerjs"));
    ASSERT_TRUE(w.has_value());
    EXPECT_EQ(*w, hub.ownerOf("peerjs:" + key));
    EXPECT_EQ(service.room(), "peerjs:" + key);
  }
}

TEST(PeerjsService, LeavesOtherPathsAlone) {
  net::WorkerPool pool(2);
  Hub hub(pool, HubOptions{});
  Options o;
  o.path = "/signal/";
  Service service(hub, o);
  EXPECT_TRUE(service.websocketWorker(upgrade("/signal/peerjs")).has_value());
  EXPECT_FALSE(service.websocketWorker(upgrade("/peerjs")).has_value());
  EXPECT_FALSE(service.websocketWorker(upgrade("/ws")).has_value());
  EXPECT_FALSE(service.websocketWorker(upgrade("/signal/peerjsx")).has_value());
}

}  // namespace
}  // namespace kaiwa::signal::peerjs

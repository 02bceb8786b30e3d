#pragma once
// The Socket.IO front door's settings (`--socketio-*` flags, docs/socketio.md). Defaults are the `socket.io` npm
// server's (4.8), so socket.io-client with default options behaves as against it.
#include <cstddef>
#include <string>

#include "common/clock.hpp"

namespace kaiwa::signal::socketio {

struct Options {
  bool enabled = true;
  std::string path = "/socket.io/";  // Engine.IO's mount point, '/' at both ends
  Millis pingInterval{25000};        // the server pings this often...
  Millis pingTimeout{20000};         // ...and closes a session whose pong is this late
  Millis upgradeTimeout{10000};      // a WebSocket probe that does not finish the upgrade in time is closed
  Millis connectTimeout{10000};      // an Engine.IO session whose client sends no Socket.IO CONNECT in time is closed
  std::size_t maxPayload = 1000000;  // one Engine.IO packet / polling POST body; more closes the session
  std::string defaultRoom = "default";  // where unaddressed events go for a socket that joined no room
  bool relayUnknownEvents = false;      // relay events kaiwa does not know to the sender's rooms (else an error ack)
  std::size_t maxForwarded = 10000;     // in a cluster: HTTP requests forwarded to other nodes and not yet answered
};

}  // namespace kaiwa::signal::socketio

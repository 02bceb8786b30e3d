#pragma once
// The PeerJS front door's settings (`--peerjs-*` flags, docs/peerjs.md). Defaults are PeerServer's, except the
// alive timeout (the `peerjs` CLI's 60 s; the library's is 90 s).
#include <cstddef>
#include <string>

#include "common/clock.hpp"

namespace kaiwa::signal::peerjs {

struct Options {
  std::string key = "peerjs";  // the one API key accepted (PeerServer's `key`)
  std::string path = "/";      // mount point: {path}{key}/id, {path}{key}/peers, {path}peerjs; '/' at both ends
  Millis expireTimeout{5000};  // messages held for an id that is not connected
  Millis aliveTimeout{60000};  // a client silent (no HEARTBEAT, no message) this long is closed
  std::size_t concurrentLimit = 5000;
  bool discovery = false;  // GET {path}{key}/peers lists connected ids (401 otherwise)
};

}  // namespace kaiwa::signal::peerjs

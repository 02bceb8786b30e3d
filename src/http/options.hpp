#pragma once
// The HTTP server's settings, apart from the server (which brings Asio and Beast along), so that the configuration
// can take its defaults from here.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "common/clock.hpp"
#include "common/limits.hpp"

namespace kaiwa::common {
class AddressLimits;
}

namespace kaiwa::http {

struct TlsConfig {
  std::string certificateChainPem;  // PEM text
  std::string privateKeyPem;
};

struct ServerOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 8080;
  std::optional<TlsConfig> tls;
  std::size_t maxHeaderBytes = 16 * 1024;
  std::size_t maxBodyBytes = 1024 * 1024;
  std::size_t wsMaxMessageBytes = 1024 * 1024;           // frames above this close the connection (1009)
  std::size_t maxQueuedBytes = common::kMaxQueuedBytes;  // per connection, then it is closed as a slow consumer
  Millis pingTimeout{30000};  // close a WebSocket silent this long; a ping is sent when half of it has passed
  // A WebSocket message begun (a partial frame, the fragments of a message, a partial TLS record) must be complete
  // within this long, else the connection is closed (1008): its bytes are held meanwhile, and a byte now and then
  // would otherwise keep up to a whole frame's worth pinned past the ping timeout. 0: no deadline.
  Millis messageTimeout{10000};
  Millis requestTimeout{30000};  // HTTP: time to read one request
  // Per-client-address limits (connections here; shared with the front doors). nullptr: none. Outlives the server.
  common::AddressLimits* addressLimits = nullptr;
};

}  // namespace kaiwa::http

#pragma once
// The HTTP server's settings, apart from the server (which brings Asio and Beast along), so that the configuration
// can take its defaults from here.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "common/clock.hpp"
#include "ws/connection.hpp"

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
  // The WebSocket limits start from ws::ConnectionOptions' defaults (their one place).
  std::size_t wsMaxMessageBytes = ws::ConnectionOptions{}.maxMessageBytes;  // above this: close with 1009
  std::size_t maxQueuedBytes = ws::ConnectionOptions{}.maxQueuedBytes;      // per connection, then a slow consumer
  Millis pingTimeout = ws::ConnectionOptions{}.pingTimeout;  // close a WebSocket silent this long; ping at half
  // A WebSocket message begun (a partial frame, the fragments of a message, a partial TLS record) must be complete
  // within this long, else the connection is closed (1008): its bytes are held meanwhile, and a byte now and then
  // would otherwise keep up to a whole frame's worth pinned past the ping timeout. 0: no deadline.
  Millis messageTimeout = ws::ConnectionOptions{}.messageTimeout;
  Millis requestTimeout{30000};  // HTTP: time to read one request
  // Per-client-address limits (connections here; shared with the front doors). nullptr: none. Outlives the server.
  common::AddressLimits* addressLimits = nullptr;
};

}  // namespace kaiwa::http

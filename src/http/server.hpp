#pragma once
// HTTP/1.1 and WebSocket server (Boost.Beast), one SO_REUSEPORT listener per worker, optional TLS.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "common/address_limits.hpp"
#include "common/clock.hpp"
#include "http/handler.hpp"
#include "net/worker_pool.hpp"

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
  std::size_t wsMaxMessageBytes = 1024 * 1024;   // frames above this close the connection (1009)
  std::size_t maxQueuedBytes = 4 * 1024 * 1024;  // per connection, then it is closed as a slow consumer
  Millis pingTimeout{30000};  // close a WebSocket silent this long; a ping is sent when half of it has passed
  // A WebSocket message begun (a partial frame, the fragments of a message, a partial TLS record) must be complete
  // within this long, else the connection is closed (1008): its bytes are held meanwhile, and a byte now and then
  // would otherwise keep up to a whole frame's worth pinned past the ping timeout. 0: no deadline.
  Millis messageTimeout{10000};
  Millis requestTimeout{30000};  // HTTP: time to read one request
  // Per-client-address limits (connections here; shared with the front doors). nullptr: none. Outlives the server.
  common::AddressLimits* addressLimits = nullptr;
};

class Server {
 public:
  Server(net::WorkerPool& pool, ServerOptions options, Routes routes);
  ~Server();
  // Binds one listener per worker. Throws std::runtime_error with a clear message (e.g. port in use).
  // Returns the bound port (useful when options.port is 0).
  uint16_t start();
  // Closes the listeners; open connections go on.
  void stopAccepting();
  // Asks every open connection to close (WebSockets get a close frame with `code`/`reason`).
  void closeAll(uint16_t code, std::string reason);

  bool tls() const;

  // Makes new TLS connections use `tls` (SIGHUP: a renewed certificate); connections already open keep theirs.
  // Returns an error, with nothing changed, if the certificate or key is not usable or the server has no TLS.
  std::optional<std::string> reloadTls(const TlsConfig& tls);

  struct Impl;  // in server.cpp

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace kaiwa::http

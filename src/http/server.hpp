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
#include "http/options.hpp"
#include "net/worker_pool.hpp"

namespace kaiwa::http {

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

#pragma once
// The TURN/STUN service on the worker pool: per worker one SO_REUSEPORT UDP socket and one TCP listener on the TURN
// port, the relay sockets of the allocations that worker owns, and a TurnServer core. Datagrams are received with
// recvmmsg until the socket is empty and the replies go out with sendmmsg once every ready socket was drained.
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "stun/address.hpp"
#include "turn/peer_filter.hpp"
#include "turn/server.hpp"
#include "turn/stream_connection.hpp"

struct ssl_ctx_st;

namespace kaiwa::net {
class WorkerPool;
}

namespace kaiwa::turn {

struct TurnServiceOptions {
  stun::Address listen;                    // UDP and TCP
  std::optional<stun::Address> tlsListen;  // TURN over TLS (RFC 8656 section 3.1), with this certificate:
  std::string tlsCertificateChainPem, tlsPrivateKeyPem;
  std::vector<stun::Address> relayIps;      // at most one per family; the port is ignored
  std::optional<stun::Address> externalIp;  // advertised instead of the IPv4 relay address (behind NAT)
  uint16_t minPort = 49152, maxPort = 65535;
  std::string realm = "kaiwa";
  std::vector<std::pair<std::string, std::string>> users;
  std::vector<std::string> secrets;
  std::vector<Cidr> allowPeers, denyPeers;
  TurnLimits limits;
  TcpTimeouts timeouts;
};

class TurnService {
 public:
  TurnService(net::WorkerPool& pool, TurnServiceOptions options);
  ~TurnService();
  TurnService(const TurnService&) = delete;
  TurnService& operator=(const TurnService&) = delete;

  // Binds the listeners of every worker (before the pool starts). An error message on failure.
  std::optional<std::string> start();
  uint16_t port() const { return port_; }
  uint16_t tlsPort() const { return tlsPort_; }
  const TurnServiceOptions& options() const { return options_; }

  // Replaces the static users and REST secrets (the realm stays), from any thread, while the workers run: the next
  // request any worker authenticates uses the new lists (allocations already made live on until they expire or
  // fail to refresh). Nonces handed out stay valid. An error (a user SASLprep refuses) changes nothing. Exactly these
  // lists: an empty `secrets` accepts no REST credentials (start-up's random default is the caller's business).
  std::optional<std::string> reloadCredentials(std::vector<std::pair<std::string, std::string>> users,
                                               std::vector<std::string> secrets);
  // The credentials in force (after the last reload).
  std::shared_ptr<const Credentials> credentials() const { return credentials_->load(); }

  class Worker;

 private:
  net::WorkerPool& pool_;
  TurnServiceOptions options_;
  std::shared_ptr<CredentialsSlot> credentials_;  // replaced by reloadCredentials, read by every worker
  std::shared_ptr<const PeerFilter> filter_;
  std::shared_ptr<Quotas> quotas_;
  std::shared_ptr<Reservations> reservations_ = std::make_shared<Reservations>();  // EVEN-PORT, across workers
  std::vector<std::unique_ptr<Worker>> workers_;
  uint16_t port_ = 0;
  uint16_t tlsPort_ = 0;
  ssl_ctx_st* tls_ = nullptr;  // SSL_CTX, shared by the workers (SSL_new is thread-safe)
};

}  // namespace kaiwa::turn

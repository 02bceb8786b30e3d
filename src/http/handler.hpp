#pragma once
// What the HTTP server offers the rest of kaiwa, free of Beast types: requests and responses for REST and static
// files, and a WebSocket connection that front doors (native signaling, PeerJS, Socket.IO) drive.
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace kaiwa::http {

struct Request {
  std::string method;  // "GET", "POST", ...
  std::string target;  // path and query as sent
  std::string path;    // target before '?', not percent-decoded
  std::string query;   // after '?', may be empty
  std::string origin;  // Origin header, may be empty
  std::string ifNoneMatch;
  std::string host;
  std::string authorization;  // Authorization header, may be empty
  std::string contentType;    // Content-Type header as sent, may be empty
  std::string ifMatch;        // If-Match header as sent, may be empty
  std::string body;
  std::string remoteAddress;  // the client's IP address, without port; IPv6 without brackets (from the socket)
  uint32_t worker = 0;        // the worker thread serving this request

  // The value of query parameter `key` (percent-decoded), or nullopt.
  std::optional<std::string> queryParam(std::string_view key) const;
};

struct Response {
  unsigned status = 200;
  std::string contentType = "text/plain; charset=utf-8";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;

  static Response text(unsigned status, std::string body) {
    Response r;
    r.status = status;
    r.body = std::move(body);
    return r;
  }
  static Response json(unsigned status, std::string body) {
    Response r;
    r.status = status;
    r.contentType = "application/json";
    r.body = std::move(body);
    return r;
  }
};

// A WebSocket connection, seen from a front door. Lives on one worker; use it only from that worker's thread and
// only until WsHandler::onClose has been called.
class WsConnection {
 public:
  enum class SendResult : uint8_t { kQueued, kClosed };
  virtual ~WsConnection() = default;
  // Sends a text frame: written at once when nothing is queued before it, else queued behind what is. If the
  // connection's queued bytes pass the server's limit it is closed as a slow consumer and kClosed is returned (the
  // handler's onClose follows later, never from inside this call).
  virtual SendResult sendText(std::string frame) = 0;
  virtual SendResult sendBinary(std::string frame) = 0;
  // Sends a close frame after what is queued, then closes. `code` is a WebSocket close code.
  virtual void close(uint16_t code, std::string_view reason) = 0;
  virtual uint32_t worker() const = 0;
  virtual std::string remoteAddress() const = 0;
  // The close code of the peer's close frame, once one came (valid in WsHandler::onClose); 0 if none did.
  virtual uint16_t peerCloseCode() const { return 0; }
  // Moves the connection, with its handler, to `worker` (docs/architecture.md, "Connection placement"): reading
  // stops after the message being handled, and `done(w)` is called on worker `w`, the one the connection is on from
  // then on — `worker`, or this one if the connection closed or failed meanwhile (onClose follows then). Reading
  // goes on there after `done`, with the messages that came behind the one being handled. Returns false, with
  // nothing changed and `done` not called, when the connection cannot move (closing, moving already, the same
  // worker, or a kind of connection that never moves).
  virtual bool moveTo(uint32_t worker, std::function<void(uint32_t worker)> done) { return false; }
};

// One per WebSocket connection, made by the front door that owns the path.
class WsHandler {
 public:
  virtual ~WsHandler() = default;
  virtual void onOpen() {}
  virtual void onMessage(std::string_view payload, bool binary) = 0;
  // The connection is gone (closed by either side, failed, or timed out). The WsConnection is dead after this.
  virtual void onClose() = 0;
};

// Answers one request later, exactly once, from any thread (the server takes the response back to the connection's
// worker). Dropping it unanswered leaves the client waiting until it gives up: don't.
using Responder = std::function<void(Response)>;

struct Routes {
  // Requests answered later (Engine.IO long polls, requests owned by another worker): returns false when the path
  // is not its own, else has taken `respond`. Tried before `api`.
  std::function<bool(const Request&, Responder& respond)> deferred;
  // REST and anything computed: returns nullopt when the path is not its own.
  std::function<std::optional<Response>(const Request&)> api;
  // Static files: returns nullopt when there is no such file.
  std::function<std::optional<Response>(const Request&)> files;
  // The worker a WebSocket should live on (the owner of the room it will use), or nullopt for no preference. A plain
  // TCP connection accepted elsewhere is handed to that worker before the upgrade, so that its messages need no hop
  // between threads (docs/architecture.md). TLS connections stay where they are.
  std::function<std::optional<uint32_t>(const Request&)> websocketWorker;
  // WebSocket upgrade: a handler, or nullptr when the path takes no WebSocket (404).
  std::function<std::unique_ptr<WsHandler>(WsConnection&, const Request&)> websocket;
};

// Percent-decoding of one URL component ('+' stays '+'). nullopt for a bad escape or an encoded NUL.
std::optional<std::string> percentDecode(std::string_view s);

}  // namespace kaiwa::http

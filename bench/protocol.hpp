// Protocol adapters of the load generator. The generator owns sockets, WebSocket framing, pacing and
// measurement; an adapter only knows one signaling protocol's text messages: how to get a connection to the
// "established" state (joined to its room, or registered), how to address a relayed message to another
// client, and what an incoming relayed message looks like. Adding a server to compare with (PeerServer,
// socket.io) means adding one class here and one line in makeProtocol().
//
// Dialects: native (kaiwa), peerjs (PeerServer), socketio (Engine.IO v4 / Socket.IO v5 with the guide's events:
// kaiwa's /socket.io/ and the socket.io reference server), floor (bench/floor_relay.cpp, the bare relay).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace kaiwa::bench {

// Tiny JSON scanning for the few fields the generator needs. Not a parser: it finds `"key"` followed by `:`
// and returns the raw (still escaped) string value or the integer. Good enough for server messages whose
// values we only compare with plain ASCII.
namespace json {

inline size_t skipSpace(std::string_view s, size_t i) {
  while (i < s.size() && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')) ++i;
  return i;
}

// Position just after the ':' of the first `"key":`, or npos.
inline size_t findValue(std::string_view s, std::string_view key) {
  size_t from = 0;
  while (true) {
    const size_t q = s.find(key, from);
    if (q == std::string_view::npos) return q;
    from = q + 1;
    if (q == 0 || s[q - 1] != '"' || q + key.size() >= s.size() || s[q + key.size()] != '"') continue;
    size_t i = skipSpace(s, q + key.size() + 1);
    if (i < s.size() && s[i] == ':') return skipSpace(s, i + 1);
  }
}

inline std::string_view stringField(std::string_view s, std::string_view key) {
  size_t i = findValue(s, key);
  if (i == std::string_view::npos || i >= s.size() || s[i] != '"') return {};
  const size_t start = ++i;
  while (i < s.size() && s[i] != '"') i += (s[i] == '\\') ? 2 : 1;
  if (i >= s.size()) return {};
  return s.substr(start, i - start);
}

inline bool intField(std::string_view s, std::string_view key, int64_t& out) {
  size_t i = findValue(s, key);
  if (i == std::string_view::npos || i >= s.size()) return false;
  bool neg = false;
  if (s[i] == '-') {
    neg = true;
    ++i;
  }
  if (i >= s.size() || s[i] < '0' || s[i] > '9') return false;
  int64_t v = 0;
  while (i < s.size() && s[i] >= '0' && s[i] <= '9') v = v * 10 + (s[i++] - '0');
  out = neg ? -v : v;
  return true;
}

}  // namespace json

// What an adapter sees of one client connection.
class Session {
 public:
  virtual ~Session() = default;
  virtual void sendText(std::string_view text) = 0;
  // The connection is ready for traffic; selfId is how other clients address it.
  virtual void established(std::string_view selfId) = 0;
  virtual void setupFailed(std::string_view reason) = 0;
  // A relayed application message arrived; the generator finds its own payload inside `text`.
  virtual void relayed(std::string_view text) = 0;
  virtual void serverError(std::string_view code) = 0;
  virtual void bye(std::string_view reason) = 0;
  // Advisory limits announced by the server (0 = unknown).
  virtual void serverLimit(std::string_view name, int64_t value) = 0;

  virtual bool wantsJoin() const = 0;
  virtual bool isEstablished() const = 0;
  virtual const std::string& room() const = 0;  // room name, unique per generator run
  virtual const std::string& name() const = 0;  // client name, unique per generator run
  // Per-connection scratch owned by the adapter (e.g. an id learned before the connection is established).
  virtual std::string& state() = 0;
};

class Protocol {
 public:
  virtual ~Protocol() = default;
  virtual const char* id() const = 0;
  virtual const char* defaultPath() const = 0;
  // HTTP request target of the WebSocket upgrade.
  virtual std::string requestTarget(std::string_view path, const Session& s) const = 0;
  // Called once the HTTP upgrade succeeded.
  virtual void opened(Session& s) const = 0;
  virtual void text(Session& s, std::string_view msg) const = 0;
  // Appends the text of one application message to peer `to` carrying `data` (a JSON-string-safe ASCII
  // string).
  virtual void encodeRelay(std::string& out, std::string_view to, std::string_view data) const = 0;
  // Called before the generator closes an established connection (e.g. to leave the room cleanly).
  virtual void closing(Session& s) const = 0;
};

// kaiwa's native protocol (docs/protocol.md): hello → join → ok{peer}; message{to,data} → message{from,data}.
class NativeProtocol final : public Protocol {
 public:
  const char* id() const override { return "native"; }
  const char* defaultPath() const override { return "/ws"; }
  // ?room= as the browser SDK sends it: kaiwa serves the connection on the worker that owns the room.
  std::string requestTarget(std::string_view path, const Session& s) const override {
    std::string t(path);
    t.append(t.find('?') == std::string::npos ? "?room=" : "&room=").append(s.room());
    return t;
  }
  void opened(Session&) const override {}  // the server speaks first (hello)

  void text(Session& s, std::string_view msg) const override {
    const std::string_view type = json::stringField(msg, "type");
    if (type == "message") {
      s.relayed(msg);
    } else if (type == "hello") {
      int64_t v = 0;
      if (json::intField(msg, "messagesPerSecond", v)) s.serverLimit("messagesPerSecond", v);
      if (json::intField(msg, "maxMessageBytes", v)) s.serverLimit("maxMessageBytes", v);
      if (json::intField(msg, "peersPerRoom", v)) s.serverLimit("peersPerRoom", v);
      if (s.isEstablished()) return;
      if (!s.wantsJoin()) {
        s.established({});
        return;
      }
      std::string join = R"({"v":1,"type":"join","id":1,"room":")";
      join.append(s.room()).append(R"(","name":")").append(s.name()).append("\"}");
      s.sendText(join);
    } else if (type == "ok") {
      int64_t re = 0;
      if (json::intField(msg, "re", re) && re == 1 && !s.isEstablished()) {
        const std::string_view peer = json::stringField(msg, "peer");
        if (peer.empty()) {
          s.setupFailed("join-ok-without-peer");
        } else {
          s.established(peer);
        }
      }
    } else if (type == "error") {
      int64_t re = 0;
      const std::string_view code = json::stringField(msg, "code");
      if (json::intField(msg, "re", re) && re == 1 && !s.isEstablished()) {
        s.setupFailed(std::string("join-error:").append(code.empty() ? "?" : code));
      } else {
        s.serverError(code.empty() ? std::string_view("?") : code);
      }
    } else if (type == "bye") {
      s.bye(json::stringField(msg, "reason"));
    }
    // peer-joined, peer-left, peer-state, pong, chat, signal: not needed by the generator.
  }

  void encodeRelay(std::string& out, std::string_view to, std::string_view data) const override {
    out.append(R"({"v":1,"type":"message","to":")").append(to).append(R"(","data":")").append(data).append("\"}");
  }

  void closing(Session& s) const override {
    if (s.wantsJoin() && s.isEstablished()) s.sendText(R"({"v":1,"type":"leave"})");
  }
};

// PeerJS PeerServer (npm `peer`), see shared docs protocols.md: /peerjs?key=&id=&token= → {"type":"OPEN"};
// {"type":"OFFER","dst":id,"payload":…} is relayed with "src". No rooms: pairs are formed by the generator.
class PeerJsProtocol final : public Protocol {
 public:
  const char* id() const override { return "peerjs"; }
  const char* defaultPath() const override { return "/peerjs"; }
  std::string requestTarget(std::string_view path, const Session& s) const override {
    std::string t(path);
    t.append("?key=peerjs&id=").append(s.name()).append("&token=t").append(s.name());
    return t;
  }
  void opened(Session&) const override {}
  void text(Session& s, std::string_view msg) const override {
    const std::string_view type = json::stringField(msg, "type");
    if (type == "OFFER") {
      s.relayed(msg);
    } else if (type == "OPEN") {
      if (!s.isEstablished()) s.established(s.name());
    } else if (type == "ERROR" || type == "ID-TAKEN") {
      if (!s.isEstablished()) {
        s.setupFailed(std::string("peerjs-").append(type));
      } else {
        s.serverError(type);
      }
    } else if (type == "EXPIRE" || type == "LEAVE") {
      s.serverError(type);
    }
  }
  void encodeRelay(std::string& out, std::string_view to, std::string_view data) const override {
    out.append(R"({"type":"OFFER","dst":")").append(to).append(R"(","payload":{"sdp":")").append(data).append("\"}}");
  }
  void closing(Session& s) const override {
    if (s.isEstablished()) s.sendText(R"({"type":"LEAVE"})");
  }
};

// Socket.IO v5 over a direct Engine.IO v4 WebSocket (shared docs protocols.md; kaiwa docs/socketio.md), with the
// events of the guide's signaling server: `0{open}` → `40` → `40{"sid":S}` → `42["join-room",room]`;
// relayed: `42["offer",{"to":S,"offer":{…}}]` → `42["offer",{"from":…,"offer":{…}}]`; Engine.IO pings `2` are
// answered `3`.
// Pairing: the guide's server tells the earlier members of a room about a joiner (`user-joined`, its socket id)
// and nothing to the joiner. So a member that gets `user-joined` answers the joiner with a directed `answer`
// (`{"sdp":"kwb-hello"}`, never a relayed message), and a client is established — both ends in the room, its
// socket id known — when it got either of the two. Rooms of 2 (the generator's default) pair exactly; in larger
// rooms a client is established after its first such message.
class SocketIoProtocol final : public Protocol {
 public:
  const char* id() const override { return "socketio"; }
  const char* defaultPath() const override { return "/socket.io/"; }
  std::string requestTarget(std::string_view path, const Session&) const override {
    std::string t(path);
    t.append("?EIO=4&transport=websocket");
    return t;
  }
  void opened(Session&) const override {}  // the server speaks first (the Engine.IO open packet)

  void text(Session& s, std::string_view msg) const override {
    if (msg.empty()) return;
    switch (msg[0]) {
      case '2':  // ping → pong (with the same data, if any)
        s.sendText(std::string("3").append(msg.substr(1)));
        return;
      case '0':  // Engine.IO open: connect the default namespace
        if (!s.isEstablished()) s.sendText("40");
        return;
      case '1':
        s.bye("engineio-close");
        return;
      case '4':
        break;
      default:  // 3 pong, 5 upgrade, 6 noop
        return;
    }
    if (msg.size() < 2) return;
    const std::string_view body = msg.substr(2);
    switch (msg[1]) {
      case '0': {  // CONNECT answer: 40{"sid":"<socket id>"}
        if (s.isEstablished()) return;
        const std::string_view sid = json::stringField(body, "sid");
        if (sid.empty()) {
          s.setupFailed("sio-connect-without-sid");
          return;
        }
        if (!s.wantsJoin()) {
          s.established(sid);
          return;
        }
        s.state().assign(sid);
        std::string join = R"(42["join-room",")";
        join.append(s.room()).append("\"]");
        s.sendText(join);
        return;
      }
      case '4':  // CONNECT_ERROR
        if (!s.isEstablished()) {
          s.setupFailed("sio-connect-error");
        } else {
          s.serverError("sio-connect-error");
        }
        return;
      case '1':
        s.bye("sio-disconnect");
        return;
      case '2':
        break;
      default:  // acks, binary events: not used by the generator
        return;
    }
    size_t i = 0;
    while (i < body.size() && body[i] >= '0' && body[i] <= '9') ++i;  // ack id (the server requests none)
    if (i + 1 >= body.size() || body[i] != '[' || body[i + 1] != '"') return;
    const size_t nameEnd = body.find('"', i + 2);
    if (nameEnd == std::string_view::npos) return;
    const std::string_view event = body.substr(i + 2, nameEnd - i - 2);
    const std::string_view rest = body.substr(nameEnd + 1);
    if (event == "offer") {
      s.relayed(msg);
    } else if (event == "user-joined") {
      if (!s.wantsJoin() || s.state().empty()) return;
      // 42["user-joined","<id>"]: rest is `,"<id>"]`
      const size_t q = rest.find('"');
      const size_t qe = q == std::string_view::npos ? q : rest.find('"', q + 1);
      if (qe == std::string_view::npos) return;
      std::string hello = R"(42["answer",{"to":")";
      hello.append(rest.substr(q + 1, qe - q - 1)).append(R"(","answer":{"type":"answer","sdp":"kwb-hello"}}])");
      s.sendText(hello);
      if (!s.isEstablished()) s.established(s.state());
    } else if (event == "answer") {
      if (!s.isEstablished() && !s.state().empty()) s.established(s.state());
    } else if (event == "kaiwa:error") {
      const std::string_view code = json::stringField(rest, "error");
      s.serverError(code.empty() ? std::string_view("kaiwa:error") : code);
    }
    // user-left, ice-candidate, toggles: not needed by the generator.
  }

  void encodeRelay(std::string& out, std::string_view to, std::string_view data) const override {
    out.append(R"(42["offer",{"to":")")
        .append(to)
        .append(R"(","offer":{"type":"offer","sdp":")")
        .append(data)
        .append("\"}}]");
  }

  void closing(Session& s) const override {
    if (s.isEstablished()) s.sendText("41");
  }
};

// The bare relay floor (bench/floor_relay.cpp): /floor?room=R; the server answers "ok" once the connection is
// paired with the other member of R, and forwards every text message as it is to that member. No JSON, no ids.
class FloorProtocol final : public Protocol {
 public:
  const char* id() const override { return "floor"; }
  const char* defaultPath() const override { return "/floor"; }
  std::string requestTarget(std::string_view path, const Session& s) const override {
    std::string t(path);
    t.append("?room=").append(s.room());
    return t;
  }
  void opened(Session&) const override {}
  void text(Session& s, std::string_view msg) const override {
    if (msg == "ok") {
      if (!s.isEstablished()) s.established(s.name());
    } else {
      s.relayed(msg);
    }
  }
  void encodeRelay(std::string& out, std::string_view, std::string_view data) const override { out.append(data); }
  void closing(Session&) const override {}
};

inline std::unique_ptr<Protocol> makeProtocol(std::string_view name) {
  if (name == "native") return std::make_unique<NativeProtocol>();
  if (name == "peerjs") return std::make_unique<PeerJsProtocol>();
  if (name == "socketio") return std::make_unique<SocketIoProtocol>();
  if (name == "floor") return std::make_unique<FloorProtocol>();
  return nullptr;
}

}  // namespace kaiwa::bench

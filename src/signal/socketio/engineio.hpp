#pragma once
// The Engine.IO v4 session as a sans-I/O state machine (docs/socketio.md, "Engine.IO"): the open packet, the
// ping/pong schedule and its timeout, the connect timeout, long polling (a held GET, the queue it is answered with,
// POST bodies), the WebSocket transport and the upgrade probe (2probe / 3probe / 5), maxPayload and close.
//
// It owns no socket, no timer and no clock. The caller passes what arrived (a POST body, a WebSocket frame, a GET)
// with the current time, and gets back what to send through a Listener: frames for a WebSocket transport (named by
// a LinkId the caller chose), the body for the held long poll, Engine.IO messages for the Socket.IO layer, and what
// happened (upgraded, closed). Time: nextDeadline() says when the caller must call tick(now) at the latest; ticking
// earlier or more often does no harm.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.hpp"
#include "common/limits.hpp"
#include "signal/socketio/codec.hpp"
#include "signal/socketio/inline_id.hpp"
#include "ws/close_code.hpp"

namespace kaiwa::signal::socketio::engineio {

// A WebSocket transport of a session, named by the caller; kNoLink names none.
using LinkId = uint32_t;
inline constexpr LinkId kNoLink = 0;

using ws::kCloseGoingAway;  // (one set of close codes: ws/close_code.hpp)
using ws::kCloseNormal;
using ws::kClosePolicy;
using ws::kCloseTooBig;

struct Config {
  Millis pingInterval{25000};        // the server pings this often...
  Millis pingTimeout{20000};         // ...and closes a session whose pong is this late
  Millis upgradeTimeout{10000};      // a probe that does not finish the upgrade in time is closed
  Millis connectTimeout{10000};      // a session whose Socket.IO layer connected nothing by then is closed
  std::size_t maxPayload = 1000000;  // one packet, one POST body
  std::size_t maxQueuedBytes = common::kMaxQueuedBytes;  // what waits for a long poll
};

class Session {
 public:
  class Listener {
   public:
    virtual ~Listener() = default;
    // One WebSocket frame on `link` ("<type><data>" text, or a binary message's bytes).
    virtual void sendFrame(LinkId link, std::string frame, bool binary) = 0;
    virtual void closeLink(LinkId link, uint16_t code, std::string_view reason) = 0;
    // The answer (status 200, a polling payload) to the long poll onPollGet held.
    virtual void answerPoll(std::string body) = 0;
    // An Engine.IO message for the Socket.IO layer: text without the type digit, or a binary message's bytes.
    virtual void onMessage(std::string_view data, bool binary, TimePoint now) = 0;
    // The session moved from long polling to its WebSocket (no long poll from now on).
    virtual void onUpgraded() = 0;
    // Once, when the session ends; its transports were told already (close frames, the held poll answered).
    virtual void onClosed(std::string_view why) = 0;
  };

  // `config` outlives the session (one for all of them).
  Session(Listener& listener, const Config& config, std::string_view sid)
      : listener_(listener), config_(config), sid_(sid) {}
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  std::string_view sid() const { return sid_.view(); }
  bool closed() const { return closed_; }
  // On a WebSocket (direct, or upgraded); kNoLink while polling.
  LinkId webSocket() const { return ws_; }
  // The upgrade probe, while there is one.
  LinkId probe() const { return probe_; }
  bool polling() const { return poll_ != nullptr; }

  // A polling handshake: the session starts on long polling; returns the handshake's body (the open packet).
  std::string openPolling(TimePoint now);
  // A direct WebSocket: the open packet is sent on `link`, which is the session's transport for life.
  void openWebSocket(LinkId link, TimePoint now);

  // A long-poll GET. kHold: the session holds it and answers it later through Listener::answerPoll; kNow: answer it
  // with `body` at once; kBadRequest: refuse it (Engine.IO error 3; two polls at once also close the session, and
  // the one held before is answered with a close packet).
  struct GetAnswer {
    enum class Kind : uint8_t { kHold, kNow, kBadRequest } kind = Kind::kHold;
    std::string body;
  };
  GetAnswer onPollGet(TimePoint now);
  // A POST body: its packets are handled before this returns. kOk: "ok"; kTooLarge: 413 (the session is closed);
  // kBadRequest: Engine.IO error 3 (a malformed payload, the session is closed); kUnknownSid: the session is over.
  enum class PostAnswer : uint8_t { kOk, kTooLarge, kBadRequest, kUnknownSid };
  PostAnswer onPollPost(std::string_view body, TimePoint now);

  // A WebSocket that names this session's sid: the upgrade probe. False if no upgrade is possible (a WebSocket
  // session, a probe on already, closed): the caller closes it (1008).
  bool attachProbe(LinkId link, TimePoint now);
  void onFrame(LinkId link, std::string_view frame, bool binary, TimePoint now);
  // The transport `link` is gone (the probe: the session stays on polling; its WebSocket: the session closes).
  void onLinkClosed(LinkId link);

  // Outgoing Engine.IO messages: a Socket.IO packet's text; or a frame already written for a WebSocket ("4<text>",
  // or a binary message's bytes), sent as it is on a WebSocket and unwrapped for a long poll.
  void sendMessage(std::string text);
  void sendFrame(std::string_view frame, bool binary);

  // Ends the session: a close packet first if `sendClosePacket`, WebSockets closed with `wsCode`.
  void close(std::string_view why, bool sendClosePacket, uint16_t wsCode = kCloseNormal);

  // The Socket.IO layer connected a socket: the connect timeout no longer applies.
  void socketConnected() { socketConnected_ = true; }

  // When tick() has something to do next (a ping, a pong late, the connect or upgrade timeout); TimePoint::max()
  // when nothing (closed).
  TimePoint nextDeadline() const;
  void tick(TimePoint now);

 private:
  // Long polling and the upgrade, for sessions that start with it; dropped once the upgrade is done.
  struct Polling {
    std::vector<EioPacket> queue;
    std::size_t queuedBytes = 0;
    TimePoint probeBy{};  // the upgrade timeout of the probe
    bool getHeld = false;
    bool upgrading = false;  // the probe answered 3probe
  };

  std::string openPacket(bool upgrades) const;
  void startTimers(TimePoint now);
  void schedulePing(TimePoint now);
  void onPacket(EioPacket p, TimePoint now);
  void onProbeFrame(const std::optional<EioPacket>& p);
  void sendPacket(EioPacket p);
  // The held long poll answered with what is queued (or a noop when nothing is and `noopIfEmpty`).
  std::string takeQueue(bool noopIfEmpty);
  void flushPoll(bool noopIfEmpty = false);

  Listener& listener_;
  const Config& config_;
  Sid sid_;
  TimePoint connectBy_ = TimePoint::max();
  TimePoint pingDue_ = TimePoint::max();  // when to ping, or (awaitingPong_) when the pong is late
  std::unique_ptr<Polling> poll_;
  LinkId ws_ = kNoLink;
  LinkId probe_ = kNoLink;
  bool closed_ = false, awaitingPong_ = false, socketConnected_ = false;
};

}  // namespace kaiwa::signal::socketio::engineio

#pragma once
// The server side of an RFC 6455 connection after the upgrade, sans-I/O: the state machine of a WebSocket that the
// glue (http/websocket.cpp) runs on a socket. Plaintext bytes and the time come in (receive, receiveEnd), the
// application's calls come in (send, close), the glue's timer tick comes in (tick); bytes to send go out through
// Link::write, messages and the one end of the connection go to the Events, and the socket's fate goes to the glue
// as actions (Link::halfClose, Link::closeSocket). No socket, epoll, TLS or clock inside: tests drive it with a fake
// clock and a fake link.
//
// States: open (messages flow) → closing (our close frame sent; reading and dropping until the peer's comes, at most
// closeTimeout) → draining (the close handshake is over: what is queued goes out, then the socket is half-closed and
// what the peer still sends is read and dropped, at most lingerTime and lingerBytes, so that our close frame is not
// lost to a reset) → dead (the socket is closed). A protocol error, a message too slow or the peer's close frame
// lead to draining at once; a silent peer, the peer's end of the stream, a failed socket or a slow consumer to dead.
//
// What it keeps: a partial frame's bytes (nothing while idle; whole frames are parsed in place in the caller's
// buffer), the reader's fragments of a message, and its state. What the socket did not take is the glue's (its queue
// is below TLS), but the decision that it is too much is made here (Link::queued, maxQueuedBytes). Nothing here
// allocates per message: a frame's header and payload go to Link::write as two views.
//
// Events::onClose is heard exactly once by a connection that was opened, whichever way it ends: at once when the end
// comes from the peer, the socket or the tick, and from finish() (which the glue calls when it lets the connection
// go) when it comes from inside one of the application's calls — a send that found a slow consumer never calls back
// into the application that made it.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/clock.hpp"
#include "common/limits.hpp"
#include "ws/frame.hpp"

namespace kaiwa::ws {

// Every limit of a connection, with its default (the server's options start from these).
struct ConnectionOptions {
  // A peer silent this long is closed; a ping goes out when half of it has passed.
  Millis pingTimeout{30000};
  // A message begun (a partial frame, the fragments of a message, a partial TLS record) must be complete within this
  // long, else the connection is closed with 1008: its bytes are held meanwhile. 0: no deadline.
  Millis messageTimeout{10000};
  Millis closeTimeout{5000};              // for the peer's close frame after ours
  Millis lingerTime{3000};                // reading after the half-close...
  std::size_t lingerBytes = 8 << 20;      // ... and at most this much
  std::size_t maxMessageBytes = 1 << 20;  // a longer message closes the connection (1009)
  // Bytes the socket did not take, then the peer is a slow consumer (the default shared with the other queues).
  std::size_t maxQueuedBytes = common::kMaxQueuedBytes;
  std::size_t keepCapacity = 4096;  // a partial-frame buffer above this is freed once empty
};

// What the connection needs of the glue: the socket's sending side and its end.
class Link {
 public:
  // Writes `a` then `b` (over TLS: as one record), at once if nothing is queued before them, else queued behind.
  // False when the socket failed (the glue has nothing more to send then; the connection closes the socket).
  virtual bool write(std::string_view a, std::string_view b) = 0;
  // Bytes written and not yet taken by the socket (after TLS: ciphertext).
  virtual std::size_t queued() const = 0;
  // Action: everything is sent (queued() is 0); end our direction (over TLS: close_notify first, then the TCP
  // half-close). The connection reads on, dropping what comes, until the peer ends too or the linger is over.
  virtual void halfClose() = 0;
  // Action: close the socket now. Nothing is written or received after this.
  virtual void closeSocket() = 0;
  // For log lines: who the peer is.
  virtual std::string peerName() const { return "?"; }

 protected:
  ~Link() = default;
};

// What the application hears.
class Events {
 public:
  // A whole message; the view lives until the call returns.
  virtual void onMessage(std::string_view payload, bool binary) = 0;
  // The connection is over (exactly once, if it was opened); the application sends nothing more.
  virtual void onClose() = 0;

 protected:
  ~Events() = default;
};

class Connection final : private FrameSink {
 public:
  enum class State : uint8_t { kOpen, kClosing, kDraining, kDead };
  enum class SendResult : uint8_t { kQueued, kClosed };

  // `options` is shared by the connections of a server and outlives them (a copy each would cost every idle one).
  Connection(const ConnectionOptions& options, Link& link, Events& events);
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // --- the start (one of the two, once) ---
  // Writes the upgrade's answer (101) and opens: messages flow from here on. False if the socket failed at once.
  bool open(std::string_view response, TimePoint now);
  // Writes a refusal (a 404, say) and drains: the application never hears of this connection.
  void refuse(std::string_view response, TimePoint now);

  // --- from the socket ---
  // Bytes the peer sent (plaintext after TLS; modified in place by unmasking). Whole frames are handled in place and
  // only an unfinished frame's tail is kept. `transportHolds`: the layer below holds part of a message too (a
  // partial TLS record), which starts the message deadline as a partial frame does. Over TLS, call it also with no
  // bytes after a read whose records gave no plaintext, so that the peer's activity and the deadline are seen.
  // In draining, the bytes only count towards lingerBytes.
  void receive(char* data, std::size_t size, TimePoint now, bool transportHolds = false);
  // The peer's end of the stream (EOF, over TLS close_notify), or a read error or a bad record: the socket closes.
  void receiveEnd();
  // The glue's queue has become empty (Link::queued() is 0): a draining connection half-closes now.
  void sent(TimePoint now);
  // The socket failed on a write or a wait: it closes; the application hears of it from finish().
  void fail();

  // --- from the application ---
  SendResult sendText(std::string_view payload) { return send(payload, Opcode::kText); }
  SendResult sendBinary(std::string_view payload) { return send(payload, Opcode::kBinary); }
  // Our close frame after what is queued, then the close handshake (the peer's close awaited at most closeTimeout).
  // Only while open; the application hears onClose when the handshake is over.
  void close(uint16_t code, std::string_view reason, TimePoint now);

  // --- reading paused (the glue moves the connection to another thread) ---
  // Reading stops after the message being handled: what follows it, and whatever is received meanwhile, is kept.
  void pause() { paused_ = true; }
  // Parses what was kept while paused; the glue reads the socket on after it.
  void resume(TimePoint now);
  bool paused() const { return paused_; }

  // --- timers ---
  // Pings, the idle timeout, the message deadline, the close handshake's wait and the linger's end, as of `now`.
  void tick(TimePoint now);
  // When tick() has something to do next (TimePoint::max() when nothing is due).
  TimePoint nextDeadline() const;

  // The glue lets the connection go: the application hears onClose if it has not yet.
  void finish() { notifyClosed(); }

  State state() const { return state_; }
  bool opened() const { return opened_; }
  // True while the peer's bytes are parsed (open or closing), false while they are only counted or after the end.
  bool reading() const { return state_ == State::kOpen || state_ == State::kClosing; }
  // The code of the peer's close frame, 0 if none came (or it had none).
  uint16_t peerCloseCode() const { return peerCloseCode_; }
  // Bytes of a partial frame kept (0 while idle).
  std::size_t heldBytes() const { return rx_.size(); }
  std::size_t heldCapacity() const { return rx_.capacity(); }

 private:
  SendResult send(std::string_view payload, Opcode opcode);
  bool write(std::string_view a, std::string_view b = {});
  void ingest(char* data, std::size_t size);
  void track(TimePoint now, bool transportHolds, uint32_t before);
  void enterDraining(TimePoint now);
  void maybeHalfClose(TimePoint now);
  void die();
  void notifyClosed();

  // FrameSink
  bool onMessage(std::string_view payload, bool binary) override;
  void onPing(std::string_view payload) override;
  void onClose(uint16_t code, std::string_view reason) override;

  const ConnectionOptions& options_;
  Link& link_;
  Events& events_;
  FrameReader reader_;
  std::string rx_;  // a partial frame (empty while idle)
  TimePoint lastRx_{};
  TimePoint deadline_{};      // kClosing: for the peer's close frame; kDraining after the half-close: the linger's end
  TimePoint messageSince_{};  // when the unfinished message held began; {} when none is
  TimePoint now_{};           // of the call being handled (the reader's callbacks have no time of their own)
  std::size_t drained_ = 0;
  uint32_t completed_ = 0;  // messages (and pings outside a fragmented message) read so far
  uint16_t peerCloseCode_ = 0;
  State state_ = State::kOpen;
  bool started_ = false, opened_ = false, notified_ = false, pingSent_ = false, halfClosed_ = false, paused_ = false;
};

}  // namespace kaiwa::ws

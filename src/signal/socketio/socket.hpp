#pragma once
// The Socket.IO v5 socket of one Engine.IO session, sans-I/O (docs/socketio.md): CONNECT (namespace, the auth
// payload's token, the socket id), DISCONNECT, EVENT / BINARY_EVENT (attachments gathered, placeholders checked,
// the rate limit) and what a client may not send (ACK, CONNECT_ERROR). It takes the Engine.IO messages of its
// session with the current time, and hands Socket.IO packets to send and the socket's events up through a Listener.
// The relayed events (offer, ice-candidate...) are read in one pass, without a DOM (decodeRelayEvent).
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "common/clock.hpp"
#include "signal/limits.hpp"
#include "signal/socketio/codec.hpp"
#include "signal/socketio/inline_id.hpp"

namespace kaiwa::signal::socketio {

inline constexpr std::size_t kMaxTokenBytes = 4096;  // a longer room token is not kept (nor checked): no token

class Socket {
 public:
  struct Config {
    bool relayUnknownEvents = false;   // decodeRelayEvent's relayUnknown
    bool keepAuthToken = false;        // the CONNECT's auth token is kept only where it is checked (--auth-secret)
    std::size_t maxPayload = 1000000;  // the attachments of one packet, together
    double messagesPerSecond = 0;      // the rate limit of CONNECT and events (Limits); 0: none
    double burst = 100;
  };

  class Listener {
   public:
    virtual ~Listener() = default;
    // One Socket.IO packet (its text; an Engine.IO message) to the client.
    virtual void sendPacket(std::string text) = 0;
    // The client broke the protocol (bad packet, attachments nobody announced): the session must close (1008).
    virtual void protocolError(std::string_view why) = 0;
    // A CONNECT was accepted; `authToken`: the auth payload's token if kept, else "". `answer` is the CONNECT's
    // answer, not sent yet: the listener sends it once the socket is where a client may expect it to be (in its
    // room), so that nothing sent to that room after the client saw `connect` can miss it.
    virtual void onConnected(std::string_view authToken, std::string answer, TimePoint now) = 0;
    virtual void onDisconnected() = 0;
    // An event of a connected socket (default namespace, attachments complete and checked, within the rate).
    virtual void onEvent(SioPacket packet, TimePoint now) = 0;
    // A relayed event read in one pass (the fast path), within the rate; the listener may take its strings.
    virtual void onRelayEvent(RelayEvent& event, TimePoint now) = 0;
    // An event over the rate limit (dropped and counted already).
    virtual void onRateLimited(std::optional<uint64_t> ack, std::string_view event, TimePoint now) = 0;
  };

  // `config` outlives the socket.
  Socket(Listener& listener, const Config& config, TimePoint now)
      : listener_(listener), config_(config), limiter_(config.burst, now) {}
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;

  bool connected() const { return connected_; }
  // The socket's id, given at its first CONNECT (a new one at each CONNECT after a DISCONNECT).
  std::string_view id() const { return id_.view(); }

  // An Engine.IO message of the session: text without the '4', or a binary message (an attachment).
  void onMessage(std::string_view data, bool binary, TimePoint now);
  // The socket goes (the session closed, or the client sent DISCONNECT): Listener::onDisconnected if connected.
  void disconnect();

 private:
  void onPacket(SioPacket p, TimePoint now);
  void onConnect(SioPacket p, TimePoint now);
  void refuseConnect(std::string_view nsp, std::string_view message);

  Listener& listener_;
  const Config& config_;
  TokenBucket limiter_;
  SocketId id_;
  std::unique_ptr<BinaryAssembler> assembler_;  // while a packet waits for its attachments
  bool connected_ = false;
};

}  // namespace kaiwa::signal::socketio

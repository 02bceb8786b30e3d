#pragma once
// One SCTP association of a WebRTC data channel transport (RFC 8261: SCTP over DTLS; RFC 8831/8832: channels and
// their opening), on Debian's usrsctp. The bytes in and out are the DTLS application data of one transport; what
// this class adds is the channels: DCEP opens and acknowledgements, messages with their PPIDs (empty ones too), and
// closing a channel by resetting its streams.
//
// usrsctp keeps process-wide state and was not built to be called from several threads at once (mediasoup #1352),
// so every call into it takes one process-wide lock, and it runs without threads of its own
// (`usrsctp_init_nothreads`): its timers advance only through `Association::tickTimers`, which one worker calls.
// usrsctp calls back from inside those calls — with packets to send and with what it received — so the callbacks
// only queue an event on their association, found by id (the usrsctp "address" is the id, never a pointer), and the
// events are handled on the association's owner thread once the call returned: at once when the owner made the
// call, or through `Options::post` when the timers did, from another thread. An association that is gone by then
// is simply not found.
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <vector>

#include "sctp/dcep.hpp"

struct socket;

namespace kaiwa::sctp {

class Association {
 public:
  struct Options {
    uint16_t localPort = 5000;  // a=sctp-port (RFC 8841)
    uint16_t remotePort = 5000;
    size_t maxMessageSize = 256 * 1024;  // a=max-message-size that kaiwa announces and accepts
    uint16_t streams = 1024;             // outgoing and incoming streams asked for
    size_t sendBuffer = 1024 * 1024;     // bytes queued towards the peer at most: past it send() says kBufferFull
    // The largest SCTP packet to send: what one DTLS record carries (dtls::Session::maxPayload). Path MTU
    // discovery is off; 0 keeps usrsctp's default.
    size_t mtu = 0;
    // The side of the DTLS handshake: the client opens channels on even stream ids, the server on odd (RFC 8832).
    bool dtlsClient = false;
    // Runs a task on the owner thread (for events raised while another thread drove usrsctp's timers). Without
    // one, such events are handled on whatever thread called tickTimers (single-threaded tests).
    std::function<void(std::function<void()>)> post{};
  };

  class Listener {
   public:
    virtual void onPacket(std::span<const uint8_t> packet) = 0;  // an SCTP packet for the peer (to DTLS)
    virtual void onConnected() = 0;
    virtual void onChannelOpen(uint16_t stream, const ChannelParams& params) = 0;  // opened by the peer
    virtual void onMessage(uint16_t stream, Ppid ppid, std::span<const uint8_t> message) = 0;
    virtual void onChannelClosed(uint16_t stream) = 0;
    virtual void onClosed() = 0;  // the association ended (ABORT, SHUTDOWN, lost)

   protected:
    ~Listener() = default;
  };

  enum class SendResult : uint8_t { kSent, kTooBig, kBufferFull, kNoChannel, kClosed };

  struct Counters {
    uint64_t packetsIn = 0;
    uint64_t packetsOut = 0;
    uint64_t messagesIn = 0;
    uint64_t messagesOut = 0;
    uint64_t dropped = 0;  // messages over the size limit, on unopened streams, or bad DCEP: dropped
  };

  // The listener must outlive the association; an association must not be destroyed from inside its callbacks.
  Association(Options options, Listener& listener);
  ~Association();
  Association(const Association&) = delete;
  Association& operator=(const Association&) = delete;

  // Starts the association (both sides do; SCTP settles the crossing INITs). False if usrsctp refused.
  bool connect();
  // Hands over one SCTP packet received from the peer (decrypted DTLS application data).
  void receive(std::span<const uint8_t> packet);
  // Opens a channel (DCEP) on the next free stream of this side; nullopt if none is left or it is not connected.
  std::optional<uint16_t> openChannel(const ChannelParams& params);
  SendResult send(uint16_t stream, Ppid ppid, std::span<const uint8_t> message);
  // Closes a channel: resets its outgoing stream (the peer then resets its own, RFC 8831 section 6.7).
  void closeChannel(uint16_t stream);

  bool connected() const { return connected_; }
  size_t channels() const { return channels_.size(); }
  const Counters& counters() const { return counters_; }

  // Advances usrsctp's timers (retransmissions, heartbeats, delayed acks) by the time since the last call. One
  // place calls it for the whole process, every ~10 ms while associations exist. The time must be real: usrsctp's
  // timer handlers also read the clock (a chunk sent less than one RTO ago is not retransmitted, whatever the
  // timer says), so a fake clock that runs ahead of the real one stalls retransmission.
  static void tickTimers(std::chrono::milliseconds elapsed);
  // Associations alive in the process.
  static size_t live();

  struct Event;  // what usrsctp's callbacks queue (association.cpp)

 private:
  struct Channel {
    ChannelParams params;
    bool outgoingReset = false;
  };

  void handleEvents();
  void handleMessage(uint16_t stream, uint32_t ppid, std::vector<uint8_t>& data);
  SendResult sendRaw(uint16_t stream, uint32_t ppid, const ChannelParams* params, std::span<const uint8_t> bytes);
  void resetOutgoing(uint16_t stream);

  Options options_;
  Listener& listener_;
  uint64_t id_;
  struct socket* socket_ = nullptr;  // usrsctp's socket (elaborated: ::socket is also a function)
  bool connected_ = false;
  bool closed_ = false;
  bool handling_ = false;
  uint16_t nextStream_;
  std::map<uint16_t, Channel> channels_;
  struct Partial {
    std::vector<uint8_t> bytes;
    bool tooBig = false;  // past maxMessageSize: its pieces are dropped until its end
  };
  std::map<uint16_t, Partial> partial_;  // messages delivered in pieces, by stream
  Counters counters_;
};

}  // namespace kaiwa::sctp

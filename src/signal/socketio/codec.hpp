#pragma once
// Engine.IO v4 and Socket.IO v5 wire formats (docs/socketio.md; specs: socketio/engine.io-protocol and
// socketio/socket.io-protocol). Sans-I/O and allocation-light; nothing here throws on bad input: decoders return
// nullopt for anything malformed, and the session drops and counts it.
#include <boost/json/value.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kaiwa::signal::socketio {

// ---------------------------------------------------------------------------------------------------- Engine.IO
enum class EioType : uint8_t { kOpen = 0, kClose = 1, kPing = 2, kPong = 3, kMessage = 4, kUpgrade = 5, kNoop = 6 };

struct EioPacket {
  EioType type = EioType::kMessage;
  std::string data;     // after the type digit (text), or the raw bytes (binary)
  bool binary = false;  // only kMessage can be binary
};

// One packet from one WebSocket frame: a text frame is "<digit><data>", a binary frame is a binary message whose
// bytes are the whole frame. nullopt: empty text frame, unknown type digit.
std::optional<EioPacket> decodeFrame(std::string_view frame, bool binaryFrame);
// The WebSocket frame for `p`: text "<digit><data>", or the raw bytes for a binary message (send it as binary).
std::string encodeFrame(const EioPacket& p);

// A polling payload (POST body): packets separated by '\x1e'; "b<base64>" is a binary message. nullopt if any
// packet is malformed (empty, unknown type, bad base64) or there are more than `maxPackets`.
std::optional<std::vector<EioPacket>> decodePayload(std::string_view body, std::size_t maxPackets = 4096);
// Appends `p` to a polling payload being built (adds the separator when `body` is not empty; binary as "b"+base64).
void appendToPayload(std::string& body, const EioPacket& p);

// The handshake packet's JSON: {"sid":…,"upgrades":[…],"pingInterval":…,"pingTimeout":…,"maxPayload":…}.
std::string encodeOpenData(std::string_view sid, bool offerWebSocketUpgrade, int64_t pingIntervalMs,
                           int64_t pingTimeoutMs, std::size_t maxPayload);

// Engine.IO's HTTP error bodies: {"code":N,"message":"…"} (sent with status 400, or 403 for kForbidden).
enum class EioError : uint8_t {
  kUnknownTransport = 0,
  kUnknownSid = 1,
  kBadHandshakeMethod = 2,
  kBadRequest = 3,
  kForbidden = 4,
  kUnsupportedProtocolVersion = 5,
};
std::string encodeError(EioError code);

// ---------------------------------------------------------------------------------------------------- Socket.IO
enum class SioType : uint8_t {
  kConnect = 0,
  kDisconnect = 1,
  kEvent = 2,
  kAck = 3,
  kConnectError = 4,
  kBinaryEvent = 5,
  kBinaryAck = 6,
};

struct SioPacket {
  SioType type = SioType::kEvent;
  std::string nsp = "/";
  std::optional<uint64_t> ackId;
  std::size_t attachments = 0;             // declared count (binary types only)
  std::optional<boost::json::value> data;  // absent when the packet has no JSON part
  std::vector<std::string> buffers;        // attachment bytes, in order (filled by BinaryAssembler or the sender)
};

struct SioLimits {
  std::size_t maxAttachments = 16;  // per packet
  std::size_t maxJsonDepth = 32;
};

// Decodes one Socket.IO packet from the text of an Engine.IO message. Checks, as the reference parser does: a known
// type; for binary types a "<n>-" prefix; a namespace starting with '/' ended by ',' or by the end of the packet;
// decimal ack id (< 2^53); CONNECT data absent or an object; EVENT / BINARY_EVENT data a non-empty array whose first
// element is a string; ACK / BINARY_ACK data an array; CONNECT_ERROR data an object or a string; DISCONNECT no data;
// JSON without non-finite numbers. nullopt otherwise (also for trailing garbage after the JSON).
std::optional<SioPacket> decodePacket(std::string_view text, const SioLimits& limits = {});

// The text of `p` for an Engine.IO message (without the Engine.IO '4'). For binary types the attachment count
// written is p.buffers.size(); send each buffer after it as a binary Engine.IO message.
std::string encodePacket(const SioPacket& p);

// Convenience encoders for the server's hot path (default namespace):
//   encodeEvent("user-joined", R"("abc")")        -> 2["user-joined","abc"]
//   encodeEvent("offer", R"({"from":"x"})", 7)    -> 27["offer",{"from":"x"}]
// `argsJson` is zero or more JSON values already serialized and joined with ',' (may be empty).
std::string encodeEvent(std::string_view event, std::string_view argsJson, std::optional<uint64_t> ackId = {});
// 3<id>[<argsJson>]
std::string encodeAck(uint64_t ackId, std::string_view argsJson);

// How the server passes on an event (docs/socketio.md): `offer`, `answer` and `ice-candidate` go to the socket
// named by `to`; `call-user`, `answer-call` and `signal` (and unknown events when `relayUnknown`) to the other
// members of the sender's rooms, under the name `relayedAs`; everything else (join-room, leave-room, the toggles,
// unknown events) is kOther: the session handles it itself.
enum class EventRoute : uint8_t { kOther, kDirected, kBroadcast };
struct EventRule {
  EventRoute route = EventRoute::kOther;
  std::string_view relayedAs;
};
EventRule ruleOf(std::string_view event, bool relayUnknown);

// A relayed event decoded in one pass of the parser, without a DOM, and already written out for its receivers.
struct RelayEvent {
  EventRoute route = EventRoute::kOther;
  std::string event;              // as the sender named it
  std::string relayedAs;          // as the receivers get it (EventRule::relayedAs, owned)
  std::optional<uint64_t> ackId;  // the sender's
  std::string target;             // kDirected: `to`
  // The receivers' Engine.IO frame, `42["<relayedAs>",…]`: no ack id; a kDirected event's object argument starts
  // with "from" and has no "to"; a kBroadcast event's object argument ends with "from". Other arguments, and the
  // other members, are written as sent less whitespace (a member that appears twice is passed on twice).
  std::string frame;
};

// The fast path for the relayed events (EVENT, default namespace, no attachments). nullopt when it does not apply —
// another packet type or namespace, a kOther event, a directed event without a string `to` in an object second
// argument, a broadcast one whose object carries "_placeholder" — and for anything decodePacket() refuses: the
// caller then decodes with decodePacket(), which judges it. `from` is the sender's socket id.
std::optional<RelayEvent> decodeRelayEvent(std::string_view text, std::string_view from, bool relayUnknown,
                                           const SioLimits& limits = {});

// Collects the attachments of BINARY_EVENT / BINARY_ACK packets that arrive as later Engine.IO binary messages.
class BinaryAssembler {
 public:
  explicit BinaryAssembler(std::size_t maxBytes) : maxBytes_(maxBytes) {}
  // Starts a packet waiting for p.attachments buffers. Returns the packet at once if it declares none.
  std::optional<SioPacket> start(SioPacket p);
  // Adds one attachment. Returns the completed packet when it was the last. kError: no packet waiting, or the
  // attachments passed maxBytes (the session closes).
  enum class Result : uint8_t { kNeedMore, kComplete, kError };
  Result add(std::string bytes, SioPacket& completed);
  bool waiting() const { return pending_.has_value(); }
  void reset() {
    pending_.reset();
    bytes_ = 0;
  }

 private:
  std::size_t maxBytes_;
  std::size_t bytes_ = 0;
  std::optional<SioPacket> pending_;
};

// A fresh id: 20 characters of base64url from the CSPRNG (what socket.io's ids look like).
std::string randomSocketId();

}  // namespace kaiwa::signal::socketio

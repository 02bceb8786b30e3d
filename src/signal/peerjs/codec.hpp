#pragma once
// PeerJS's PeerServer wire format (the `peer` npm package 1.0.2; docs/peerjs.md): JSON text frames
// {type, payload, dst} from clients, {type, src, dst, payload} and the server's OPEN / ID-TAKEN / ERROR to them.
// decode() never throws; what PeerServer ignores (not JSON, not an object, no string type) decodes to nullopt.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace kaiwa::signal::peerjs {

enum class MessageType : uint8_t { kHeartbeat, kOffer, kAnswer, kCandidate, kLeave, kExpire, kUnknown };

struct Message {
  MessageType type = MessageType::kUnknown;
  std::string typeName;            // as sent (for kUnknown too)
  std::optional<std::string> dst;  // absent, or not a string: nullopt
  std::string payload;             // the payload re-serialized as JSON; empty when absent
};

std::optional<Message> decode(std::string_view text);

// The wire name of a relayed type (OFFER...); empty for kHeartbeat and kUnknown.
std::string_view toString(MessageType type);
// Relayed types: OFFER, ANSWER, CANDIDATE, LEAVE, EXPIRE.
inline bool relayed(MessageType t) { return t != MessageType::kHeartbeat && t != MessageType::kUnknown; }
// Held for an id that is not connected (all relayed types but LEAVE and EXPIRE).
inline bool heldForAbsent(MessageType t) {
  return t == MessageType::kOffer || t == MessageType::kAnswer || t == MessageType::kCandidate;
}

// PeerServer's ERROR texts.
inline constexpr std::string_view kNoParams = "No id, token, or key supplied to websocket server";
inline constexpr std::string_view kInvalidKey = "Invalid key provided";
inline constexpr std::string_view kLimitReached = "Server has reached its concurrent user limit";

std::string encodeOpen();
std::string encodeIdTaken();
std::string encodeError(std::string_view msg);
// {"type":type,"src":src,"dst":dst[,"payload":payload]}; `payload` is JSON text or empty.
std::string encodeRelay(std::string_view type, std::string_view src, std::string_view dst, std::string_view payload);

// Ids and tokens kaiwa accepts: 1-256 bytes of printable ASCII except '"' and '\' (PeerServer takes anything;
// the peerjs client's own ids are [A-Za-z0-9] with inner ' ', '_', '-').
bool validId(std::string_view id);

// The first message a client's node sends over a link to the node that holds the key's room (docs/cluster.md,
// "PeerJS"): "open " + the client's upgrade query (key, id, token), or "peers", the question of GET /{key}/peers.
// The bytes come from another node through Redis: decodeLinkHello checks them like a client's (nullopt: neither).
inline constexpr std::string_view kLinkOpen = "open ";
inline constexpr std::string_view kLinkPeers = "peers";
struct LinkHello {
  bool peers = false;
  std::optional<std::string> key, id, token;  // of "open": each as the query has it (nullopt: absent or bad)
};
std::optional<LinkHello> decodeLinkHello(std::string_view text);

// A fresh random id for GET /{key}/id: a UUID v4 like PeerServer's, lower-case hex.
std::string randomId();

}  // namespace kaiwa::signal::peerjs

#pragma once
// Protocol-neutral vocabulary of the room core. Front doors (native, PeerJS, Socket.IO) translate their wire
// messages into calls on Room and translate these events back into their own wire format.
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace kaiwa::signal {

// Where a peer's connection lives: the worker that owns it and the connection's id on that worker.
struct Endpoint {
  uint32_t worker = 0;
  uint64_t session = 0;
  bool operator==(const Endpoint&) const = default;
};

struct MediaState {
  bool audioMuted = false;
  bool videoOff = false;
  bool screenSharing = false;
  bool operator==(const MediaState&) const = default;
};

// A partial update of MediaState: absent fields keep their value.
struct MediaStatePatch {
  std::optional<bool> audioMuted;
  std::optional<bool> videoOff;
  std::optional<bool> screenSharing;
  void applyTo(MediaState& s) const {
    if (audioMuted) s.audioMuted = *audioMuted;
    if (videoOff) s.videoOff = *videoOff;
    if (screenSharing) s.screenSharing = *screenSharing;
  }
};

enum class ErrorCode : uint8_t {
  kBadMessage,
  kTooLarge,
  kRateLimited,
  kNotJoined,
  kAlreadyJoined,
  kRoomFull,
  kTooManyRooms,
  kUnknownPeer,
  kUnauthorized,
  kResumeFailed,
  kInternal,
  kNotSfu,             // an SFU request in a mesh room, or on a server without the SFU
  kBadSdp,             // an SDP the SFU cannot use (the message says why)
  kTooManyPublishers,  // the room has its maximum of publishers
  kTooManyTracks,      // a publish with more tracks than a publisher may have
  kStaleAnswer,        // a subscribe-answer whose version is not the outstanding offer's
  kNotAllowed,         // the member's room token does not allow this (record-start/-stop without `record`)
  kRecordingOff,       // record-start on a server without --record-dir
  kAlreadyRecording,   // record-start in a room being recorded
  kNotRecording,       // record-stop in a room not being recorded
  kRecordingFailed,    // the recording could not start (its directory, the free disk space)
};
std::string_view toString(ErrorCode code);

enum class LeaveReason : uint8_t { kLeft, kDisconnected, kTimeout, kKicked };
std::string_view toString(LeaveReason reason);

// Why the server ends a connection's session (`bye`): the front doors close the connection after it, with a close
// code that depends on the reason. toString gives the wire text ("shutdown", "timeout", "replaced").
enum class ByeReason : uint8_t {
  kShutdown,  // the server is stopping
  kTimeout,   // a peer silent past its room's alive timeout (RoomPolicy::aliveTimeout)
  kReplaced,  // a resume from a new connection took the peer over
};
std::string_view toString(ByeReason reason);

// A room's media policy (set by the join that creates it) and its effective mode (docs/protocol.md, "SFU rooms").
// kNone: a room of a front door without the SFU (PeerJS, Socket.IO): no media fields, no media-mode events.
enum class MediaPolicy : uint8_t { kNone, kAuto, kSfu, kMesh };
enum class MediaMode : uint8_t { kMesh, kSfu };
std::string_view toString(MediaPolicy policy);
std::string_view toString(MediaMode mode);
std::optional<MediaPolicy> parseMediaPolicy(std::string_view text);

struct PeerInfo {
  std::string id;
  std::string name;  // the display name the peer chose
  MediaState state;
  std::string user = {};  // the room token's subject (who the server vouches for); empty on a server without tokens
};

// Request ids are chosen by clients; kNoRequest marks an event that answers nothing.
inline constexpr int64_t kNoRequest = -1;

namespace ev {
struct Joined {  // reply to join and resume
  int64_t re;
  std::string room, peer, resume;
  std::vector<PeerInfo> peers;
  bool resumed = false;
  MediaPolicy mediaPolicy = MediaPolicy::kNone;  // kNone: not said (rooms without the SFU)
  MediaMode media = MediaMode::kMesh;            // the room's effective mode after this join
};
struct Ok {
  int64_t re;
  int64_t ts = 0;     // set for chat: the server time stamped on the message
  std::string sdp{};  // set for publish: kaiwa's answer
};
struct Error {
  int64_t re;
  ErrorCode code;
  std::string message;
  bool refusesJoin = false;  // the answer to a join or resume: the connection is in no room
};
struct PeerJoined {
  PeerInfo peer;
};
struct PeerLeft {
  std::string peer;
  LeaveReason reason;
};
struct PeerState {
  std::string peer;
  MediaState state;
};
struct Signal {  // directed WebRTC signaling (offer, answer, candidate...)
  std::string from;
  std::string data;       // serialized JSON, passed through untouched (may be empty from Room::relay: no payload)
  std::string kind = {};  // Room::relay: the front door's message type (PeerJS OFFER, CANDIDATE...); empty for native
};
struct Expired {  // what this connection sent to `peer`, an id that never came, was dropped undelivered
  std::string peer;
};
struct Message {  // application message, to one peer or the whole room
  std::string from;
  std::string data;  // serialized JSON
  bool broadcast = false;
};
struct Chat {
  std::string from, name, text;
  int64_t ts;
};
struct Bye {
  ByeReason reason;
};
struct MediaModeChanged {  // the room's effective mode changed (`media-mode`)
  MediaMode mode;
};
struct Recording {  // the room's recording started or stopped (`recording`)
  bool active = false;
  std::string by;      // who started it (active) or stopped it; empty when it stopped by itself
  std::string name;    // that member's display name
  int64_t since = 0;   // active: when it started (Unix milliseconds)
  std::string reason;  // stopped: stopped, mesh, write-failed, disk-full
};
struct ActiveSpeaker {  // the SFU room's dominant speaker changed to `peer` (`active-speaker`)
  std::string peer;
};
struct SubscribeOffer {  // kaiwa's offer for the member's subscribe connection
  std::string sdp;
  uint64_t version = 0;
  std::string tracks;  // the `tracks` array as JSON text, written by the SFU glue
};
}  // namespace ev

using Event = std::variant<ev::Joined, ev::Ok, ev::Error, ev::PeerJoined, ev::PeerLeft, ev::PeerState, ev::Signal,
                           ev::Message, ev::Chat, ev::Bye, ev::Expired, ev::MediaModeChanged, ev::SubscribeOffer,
                           ev::Recording, ev::ActiveSpeaker>;
using EventPtr = std::shared_ptr<const Event>;

// An event bound for one connection. A broadcast shares one EventPtr among all its deliveries.
struct Delivery {
  Endpoint to;
  EventPtr event;
};
using Outbox = std::vector<Delivery>;

// Rough wire size of an event, for the queue bounds; front doors differ by a few bytes, never by a factor.
std::size_t approximateSize(const Event& e);

}  // namespace kaiwa::signal

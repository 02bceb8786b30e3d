#pragma once
// The SFU's media I/O and its two ways in. The media port, the transports and the routers are shared by WHIP/WHEP
// (HTTP, below) and the native protocol's SFU rooms (publish/subscribe, called by the native door on the room's
// worker; the per-room protocol state is sfu::Room, sans-I/O).
//
// The SFU's service: the one UDP media port on the worker loops, and WHIP (RFC 9725) / WHEP over HTTP. A room's
// media is handled on the worker that owns the room (Options::ownerOf, the hub's): its transports (sfu::Transport)
// live in that worker's net::Slots, its forwarding (sfu::Router) too, with no lock and no allocation per packet.
//
// The port (docs/sfu.md, "The media port"): every worker binds an unconnected socket on it (SO_REUSEPORT). Those
// see a client's first ICE checks; kaiwa's ufrag names the owner worker ("w<worker>" + random), so a check that the
// kernel gave to another worker is posted there. After the first valid check the owner opens a socket of its own
// for that client on the same port, connect()ed to the client's address: the kernel delivers the client's 4-tuple
// to it, on the owner's loop, from then on.
//
// HTTP (deferred routes, answered from the owner worker): POST /whip/<room> (a publisher's offer) and
// POST /whep/<room> (a viewer's recvonly offer) → 201 with Location, ETag and the answer; PATCH on the session →
// 204 for trickled candidates (kaiwa is ICE-lite: it needs none), 200 and kaiwa's new credentials for an ICE restart;
// DELETE → 200; OPTIONS → CORS and Accept-Post. A WHIP publisher is a member of its room (Roster) named by ?name=,
// and a WHEP viewer receives what the room's members publish.
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "common/address.hpp"
#include "http/handler.hpp"
#include "media/recording.hpp"
#include "media/tcp_port.hpp"
#include "net/worker_pool.hpp"
#include "sfu/room.hpp"

namespace kaiwa::media {

// Bounds, with their defaults in one place.
struct Limits {
  size_t publishersPerRoom = 1;  // WHIP: this slice forwards one WHIP publisher per room
  // A native SFU room: publishers, tracks per publisher, m-lines per subscriber (--sfu-max-publishers,
  // --sfu-max-tracks). A member holds at most two transports (one publish, one subscribe connection).
  sfu::RoomLimits room{};
  size_t viewersPerRoom = 100;
  size_t transportsPerAddress = 16;  // per client IP address, counted on each owner worker
  size_t transports = 2000;          // in all
  RecordLimits record{};             // recording (--record-max-tracks, --record-min-free-mb)
};

// In a cluster (docs/cluster.md, "SFU rooms and WHIP/WHEP"): where a room lives, as Options::locate answers.
struct Placement {
  enum class Where : uint8_t { kHere, kElsewhere, kUnavailable, kFull };
  Where where = Where::kHere;
  std::string url;  // kElsewhere: the owner node's base URL (its --advertise)
};

struct Options {
  common::Address listen;  // the media port (UDP, and TCP for ICE-TCP)
  bool tcp = true;         // passive ICE-TCP on the same port number (media/tcp_port.hpp)
  TcpLimits tcpLimits;
  std::vector<std::string> announceIps;  // the addresses put in candidates (the listen address if empty)
  std::optional<std::string> authSecret;
  Limits limits;
  std::function<uint32_t(std::string_view room)> ownerOf;  // the worker that owns a room
  std::function<bool(std::string_view room)> validRoomName;
  // In a cluster: asks where a room lives (placing it here if nobody holds it) and calls `done` once, from any
  // thread. A WHIP/WHEP request for a room of another node is answered 307 to the same path there. Unset: one node.
  std::function<void(std::string room, std::function<void(Placement)> done)> locate;
  // --record-dir: where rooms' recordings go (a directory per recording); empty: recording is refused.
  std::string recordDir;
};

// What the native door's SFU rooms hear back: kaiwa's offers to a member's subscribe connection, called on the room's
// worker after the call that made them (never from inside it).
class Listener {
 public:
  virtual ~Listener() = default;
  // `tracks`: the JSON array of the m-lines that carry media, [{mid, peer, source, kind}].
  virtual void onSubscribeOffer(const std::string& room, const std::string& peer, uint64_t version, std::string sdp,
                                std::string tracks) = 0;
  // The room's recording stopped by itself: a write failed ("write-failed") or the disk is nearly full
  // ("disk-full"). Not called for a stopRecording() or a room that ended.
  virtual void onRecordingStopped(const std::string& /*room*/, const std::string& /*reason*/) {}
  // The room's dominant speaker (sfu::ActiveSpeaker, fed by its publishers' audio levels) is now `peer`. At most
  // one change per detector hold (500 ms) and room, after a tick of the 100 ms speaker timer.
  virtual void onActiveSpeaker(const std::string& room, const std::string& peer) = 0;
};

// Where a WHIP publisher becomes a member of its room (the native door's rooms: docs/protocol.md, "SFU rooms"), so the
// room's people see it in the roster and receive its tracks like a member's. Called on the room's owner worker.
class Roster {
 public:
  virtual ~Roster() = default;
  struct Refusal {
    unsigned status;  // the HTTP status WHIP answers with
    std::string reason;
  };
  // Enters `room` as member `peer` named `name` (`user`: its room token's subject, if any), at once: the room's
  // observer calls (Service::addMember) happen inside this call. nullopt when it is in, else why not.
  virtual std::optional<Refusal> joinPublisher(const std::string& room, const std::string& peer,
                                               const std::string& name, const std::string& user) = 0;
  // The member leaves (its session ended). Not from inside a Service call that the room's observer may re-enter:
  // the Service posts it.
  virtual void leavePublisher(const std::string& room, const std::string& peer) = 0;
};

enum class SfuErrorCode : uint8_t {
  kBadSdp,
  kTooManyPublishers,
  kTooManyTracks,
  kStaleAnswer,
  kLimit,
  kRateLimited,
  kRecordingOff,      // no --record-dir
  kAlreadyRecording,  // record-start in a room that records
  kNotRecording,      // record-stop in a room that does not
  kRecordingFailed,   // the recording's directory cannot be made, or the disk is too full
};
struct SfuError {
  SfuErrorCode code;
  std::string message;
};
// A track of a publish request: the offer's m-line and its source (camera, microphone, screen, screen-audio).
struct TrackRequest {
  std::string mid;
  std::string source;
};

// The rendered size of the video on one m-line of a member's subscribe connection (0 x 0: hidden).
struct TileSize {
  std::string mid;
  uint16_t width = 0;
  uint16_t height = 0;
};

class Service {
 public:
  // kaiwa's answer, or why not.
  using PublishResult = std::variant<std::string, SfuError>;
  Service(net::WorkerPool& pool, Options options);
  ~Service();
  Service(const Service&) = delete;
  Service& operator=(const Service&) = delete;

  // Makes the certificate and binds every worker's socket (before the pool starts). An error message on failure.
  std::optional<std::string> start();
  uint16_t port() const { return port_; }
  // The ICE-TCP port (the media port's number), or nullopt when ICE-TCP is off.
  std::optional<uint16_t> tcpPort() const { return tcp_ ? std::optional<uint16_t>(port_) : std::nullopt; }

  // http::Routes::deferred for /whip/ and /whep/: false when the path is not its own.
  bool http(const http::Request& req, http::Responder& respond);

  // The native protocol's SFU rooms. Call on the room's owner worker (ownerOf), in the room's order of events.
  void setListener(Listener* listener) { listener_ = listener; }
  // Set: a WHIP publisher is a member of its room (Roster); unset: WHIP rooms stand alone, one publisher each.
  void setRoster(Roster* roster) { roster_ = roster; }
  // The member receives the others' tracks (subscribe-offer from the first one on).
  void addMember(const std::string& room, const std::string& peer);
  // The member left: its transports and tracks end.
  void removeMember(const std::string& room, const std::string& peer);
  // The room went back to mesh: the member's transports and tracks go on until its unpublish(), or
  // Limits::room.meshGrace (10 s), whichever comes first; addMember() takes it back into the SFU afresh.
  void retireMember(const std::string& room, const std::string& peer);
  PublishResult publish(const std::string& room, const std::string& peer, std::string_view sdp,
                        const std::vector<TrackRequest>& tracks, const common::Address& clientIp);
  std::optional<SfuError> subscribeAnswer(const std::string& room, const std::string& peer, std::string_view sdp,
                                          uint64_t version, const common::Address& clientIp);
  // Ends the publish connection and its tracks; for a retired member (the room is mesh now) both connections.
  void unpublish(const std::string& room, const std::string& peer);
  // subscribe-restart: the member's subscribe transport ends and a new subscribe-offer (version 1, new ICE
  // credentials, every current track) follows, at most once per Limits::room.subscribeRestartInterval.
  std::optional<SfuError> restartSubscribe(const std::string& room, const std::string& peer);
  // tile-size: the member's rendered size of the video on some of its subscribe m-lines; a simulcast track's layer
  // follows it (a hidden tile gets none). Sizes for m-lines the member was never offered are ignored; the others are
  // kept (one per m-line) and apply to what the line carries, now and later.
  void setTileSizes(const std::string& room, const std::string& peer, const std::vector<TileSize>& tiles);

  // Recording (docs/sfu.md, "Recording"): every track the room's members publish, from now until stopRecording(),
  // the room's end or shutdown, each into a WebM file, with a manifest. Call on the room's owner worker. On success,
  // when it started (Unix milliseconds).
  bool recordingEnabled() const { return !options_.recordDir.empty(); }
  std::variant<int64_t, SfuError> startRecording(const std::string& room, const std::string& peer,
                                                 const std::string& name);
  // `reason` goes in the manifest: "stopped" (record-stop), "mesh" (the room switched to mesh).
  std::optional<SfuError> stopRecording(const std::string& room, std::string_view reason = "stopped");
  // The directory of the room's running recording (tests, logs); empty if none.
  std::string recordingDirectory(const std::string& room);

  class Worker;

 private:
  // http()'s part on the node that owns `room` (the request's auth already checked; `user`: its token's subject).
  void serveHere(const http::Request& req, http::Responder& respond, const std::string& room, std::string user);
  friend class Worker;
  Worker& ownerWorker(std::string_view room) { return *workers_[options_.ownerOf(room)]; }
  Listener* listener_ = nullptr;
  Roster* roster_ = nullptr;
  net::WorkerPool& pool_;
  Options options_;
  std::string fingerprint_;
  std::unique_ptr<TcpShared> tcp_;    // before the workers: their connections give their counts back to it
  std::atomic<size_t> recorders_{0};  // tracks being recorded, in all (before the workers, who count them down)
  std::vector<std::unique_ptr<Worker>> workers_;
  std::atomic<size_t> transports_{0};
  uint16_t port_ = 0;
};

}  // namespace kaiwa::media

#pragma once
// A signaling room: who is in it, their media state, and where each one's connection is. Sans-I/O: every call
// takes the current time and appends the resulting deliveries to an Outbox; the caller sends them. A Room lives on
// one worker thread and is never touched from another.
#include <deque>
#include <list>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/clock.hpp"
#include "signal/limits.hpp"
#include "signal/types.hpp"

namespace kaiwa::signal {

struct JoinRequest {
  Endpoint from;
  int64_t re = kNoRequest;
  std::string name;
  MediaState state;
  std::string peerId;      // empty: the room makes a random one; front doors with client-chosen ids pass theirs
  std::string token = {};  // empty: the room makes a random resume token; front doors whose clients choose one pass it
  std::string user = {};   // the verified room token's subject, if any (PeerInfo::user); at most 255 bytes
  // A member only the SFU can carry (a WHIP publisher, docs/protocol.md "SFU rooms"): an `auto` room is `sfu` while
  // one is in it, and a room whose policy is not `auto` or `sfu` refuses it.
  bool sfuOnly = false;
};

class Room;

// Who hears of a room's members and media mode besides the members: the SFU (docs/sfu.md), which ends a member's
// transports when it leaves and starts or stops the room's SFU when its effective mode changes. Called on the room's
// worker from inside the room's calls: it must not call back into the room (post that for later).
class RoomObserver {
 public:
  virtual ~RoomObserver() = default;
  virtual void onPeerJoined(const Room& room, std::string_view peer) = 0;
  virtual void onPeerRemoved(const Room& room, std::string_view peer) = 0;
  virtual void onMediaMode(const Room& room, MediaMode mode) = 0;
};

// How a room behaves beyond the shared Limits. The default is the native protocol's room; the PeerJS front door
// keeps one big quiet room per key (docs/peerjs.md).
struct RoomPolicy {          // (the flags last: every room holds a copy)
  std::size_t capacity = 0;  // members; 0: Limits::peersPerRoom
  Millis holdForAbsent{0};   // > 0: relay() to an absent id is held this long for it, then ev::Expired to senders
  std::size_t holdMaxBytes = 64 << 20;  // all messages held in the room; past it a sender gets ev::Expired at once
  Millis aliveTimeout{0};    // > 0: a peer silent this long (see touch()) gets ev::Bye{kTimeout} and is removed
  bool announce = true;      // ev::PeerJoined/PeerLeft to the others, member lists in ev::Joined
  bool keepDetached = true;  // a dropped peer keeps its place for Limits::resumeGrace; false: removed at once
  bool resumable = true;     // false: no resume tokens are made (ev::Joined::resume empty) and resume() fails
  MediaPolicy media = MediaPolicy::kNone;  // the native protocol's rooms: auto, sfu or mesh
  RoomObserver* observer = nullptr;        // the SFU, for a room with a media policy; outlives the room
};

class Room {
 public:
  Room(std::string name, const Limits& limits, RoomPolicy policy = {})
      : name_(std::move(name)), limits_(limits), policy_(policy) {}
  Room(const Room&) = delete;
  Room& operator=(const Room&) = delete;
  ~Room();

  const std::string& name() const { return name_; }
  std::size_t size() const { return peers_.size(); }
  // No members and nothing held for absent ids: the room may be destroyed.
  bool empty() const { return peers_.empty() && (!held_ || held_->empty()); }
  const RoomPolicy& policy() const { return policy_; }
  bool contains(std::string_view peer) const { return find(peer) != nullptr; }

  // Adds a peer. Replies ev::Joined (or ev::Error room-full / bad-message for a taken id) to `req.from`, tells the
  // others ev::PeerJoined. Returns the new peer's id, or empty on failure.
  std::string join(JoinRequest req, TimePoint now, Outbox& out);

  // Re-attaches a detached (or still attached, e.g. a half-open old connection) peer to a new connection if the
  // resume token matches. Replies ev::Joined{resumed=true} and then flushes what was queued meanwhile. A resume token
  // the room made is used once: the reply carries a new one (a token the client chose stays).
  bool resume(Endpoint from, int64_t re, std::string_view peer, std::string_view token, TimePoint now, Outbox& out);

  // The peer says goodbye: ev::PeerLeft{left} to the others, ev::Ok to it.
  void leave(Endpoint from, int64_t re, std::string_view peer, Outbox& out);

  // The connection `from` is gone. Its peer, if any, keeps its place for limits.resumeGrace, then tick() removes
  // it. Found by endpoint, so a connection that closed while its join was in flight is handled too. `goingAway`: the
  // client said it is leaving for good (a browser closing or leaving the page sends WebSocket close 1001, even when
  // it cuts the page's own `leave` short): removed at once, the others see `left`.
  // `peerHint`: the peer id the connection believes it has, if any: found at once (else found by a scan).
  void detach(Endpoint from, TimePoint now, Outbox& out, bool goingAway = false, std::string_view peerHint = {});

  // Directed WebRTC signaling to one peer of this room.
  void signal(Endpoint from, int64_t re, std::string_view peer, std::string_view to, std::string data, Outbox& out);

  // Application message to one peer, or to every other peer when `to` is empty.
  void message(Endpoint from, int64_t re, std::string_view peer, std::string_view to, std::string data, Outbox& out);

  // Chat goes to everybody, the sender included, stamped with `wallMs`.
  void chat(Endpoint from, int64_t re, std::string_view peer, std::string text, int64_t wallMs, Outbox& out);

  void setState(Endpoint from, int64_t re, std::string_view peer, const MediaStatePatch& patch, Outbox& out);

  // Directed relay for front doors with typed messages (PeerJS): ev::Signal{kind} to `to`. No replies: an absent
  // `to` is held for it when `hold` and RoomPolicy::holdForAbsent allow (delivered when it joins, ev::Expired to
  // the sender after holdForAbsent), else dropped. Counts as a sign of life of the sender.
  void relay(Endpoint from, std::string_view peer, std::string_view to, std::string kind, std::string data, bool hold,
             TimePoint now, Outbox& out);

  // A sign of life from the peer (RoomPolicy::aliveTimeout).
  void touch(Endpoint from, std::string_view peer, TimePoint now);

  // Removes peers whose grace period ended or who went silent past RoomPolicy::aliveTimeout, and expires held
  // messages. Returns the earliest remaining deadline, or TimePoint::max().
  TimePoint tick(TimePoint now, Outbox& out);

  std::vector<PeerInfo> members() const;

  // The effective media mode (docs/protocol.md, "SFU rooms"): from the policy and, for `auto`, the member count.
  MediaMode mediaMode() const { return mode_; }
  // Whether `from` is the current connection of member `peer`.
  bool isSender(Endpoint from, std::string_view peer) const;
  // An event for one member (queued while it is detached); nothing if there is no such member.
  void deliverTo(std::string_view peer, EventPtr event, Outbox& out);
  // The SFU's active speaker detector chose `peer`: everybody hears ev::ActiveSpeaker, unless it is no member, the
  // room is not sfu or it was the active speaker already. A member who joins later is told the current one.
  void setActiveSpeaker(std::string_view peer, Outbox& out);
  // The current active speaker (empty if none: the room is mesh, nobody talked yet or the speaker left).
  std::string_view activeSpeaker() const { return speaker_ ? std::string_view(*speaker_->id) : std::string_view(); }

  // The room's recording (docs/protocol.md, "Recording"): who started it and when. The SFU does the recording; the
  // room keeps what its members are told: every member hears ev::Recording when it starts or stops, a member that
  // joins or resumes while it runs hears it after its `ok`, and a switch to mesh stops it (reason "mesh").
  struct RecordingState {
    std::string by, name;
    int64_t since = 0;
  };
  const RecordingState* recording() const { return recording_.get(); }
  void startRecording(RecordingState state, Outbox& out);
  // `by`: the member who stopped it (empty when it stopped by itself); nothing if it was not recording.
  void stopRecording(std::string_view by, std::string reason, Outbox& out);

 private:
  // A member. Its id is the key of its entry in peers_ (nodes of an unordered_map never move), so the id is held
  // once per member; the join order is a list through the members themselves. 80 bytes: with the key and the
  // next-node pointer an entry is 120 (PeerIdHash: no hash cached in it).
  struct Peer {
    const std::string* id = nullptr;  // the key of its peers_ entry
    std::string tokenAndName;         // the resume token, the token's user, then the name: one string for all three
    uint64_t session = 0;             // the endpoint, in two parts (Endpoint has 4 bytes of padding)
    TimePoint deadline{};  // attached: the last sign of life (RoomPolicy::aliveTimeout); detached: end of the grace
    Peer* prev = nullptr;  // join order
    Peer* next = nullptr;
    uint32_t worker = 0;
    uint16_t tokenLength = 0;
    uint8_t userLength = 0;
    bool attached : 1 = true;
    bool roomMadeToken : 1 = false;  // the resume token is the room's (renewed at each resume), not the client's
    bool audioMuted : 1 = false;
    bool videoOff : 1 = false;
    bool screenSharing : 1 = false;
    bool sfuOnly : 1 = false;  // JoinRequest::sfuOnly

    Endpoint endpoint() const { return Endpoint{worker, session}; }
    void setEndpoint(Endpoint e) {
      worker = e.worker;
      session = e.session;
    }
    MediaState state() const { return MediaState{audioMuted, videoOff, screenSharing}; }
    void setState(MediaState s) {
      audioMuted = s.audioMuted;
      videoOff = s.videoOff;
      screenSharing = s.screenSharing;
    }
    std::string_view resumeToken() const { return std::string_view(tokenAndName).substr(0, tokenLength); }
    std::string_view user() const { return std::string_view(tokenAndName).substr(tokenLength, userLength); }
    std::string_view name() const { return std::string_view(tokenAndName).substr(tokenLength + userLength); }
    PeerInfo info() const { return PeerInfo{*id, std::string(name()), state(), std::string(user())}; }
  };
  // A hash the standard library deems cheap (it is not std::hash<std::string>), so entries keep no copy of it.
  // Transparent: members are found by a string_view, without making a string of it.
  struct PeerIdHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view id) const noexcept { return std::hash<std::string_view>{}(id); }
  };

  // Events kept for a detached member (made by the first one; an idle member has none).
  struct Queue {
    std::list<EventPtr> items;
    std::size_t bytes = 0;
  };

  // Messages for an id that is not in the room (RoomPolicy::holdForAbsent).
  struct Held {
    TimePoint deadline{};
    std::deque<std::pair<std::string, EventPtr>> items;  // (sender id, event)
    std::size_t bytes = 0;
  };
  struct HeldMap : std::unordered_map<std::string, Held> {
    std::size_t bytes = 0;  // of all messages held in the room
  };

  // A member by id. Most rooms hold a few peers: comparing their ids in join order costs less than a lookup, whose
  // walk of a bucket hashes the ids it passes (entries keep no hash, PeerIdHash). (Const, for contains(); the
  // members are the room's to change.)
  Peer* find(std::string_view id) const {
    constexpr std::size_t kScanUpTo = 8;
    if (peers_.size() > kScanUpTo) {
      auto it = peers_.find(id);
      return it == peers_.end() ? nullptr : const_cast<Peer*>(&it->second);
    }
    for (Peer* p = first_; p; p = p->next) {
      if (*p->id == id) return p;
    }
    return nullptr;
  }
  // The peer `peer` if it exists and `from` is its current connection; otherwise replies not-joined.
  Peer* sender(Endpoint from, int64_t re, std::string_view peer, Outbox& out);
  void deliver(Peer& to, EventPtr event, Outbox& out);  // by value: an event for one peer is moved along
  void broadcast(const EventPtr& event, const Peer* except, Outbox& out);
  void remove(std::string id, LeaveReason reason, Outbox& out);  // by value: callers pass map keys
  std::vector<PeerInfo> othersThan(const Peer* except) const;
  std::size_t capacity() const { return policy_.capacity ? policy_.capacity : limits_.peersPerRoom; }
  void hold(const Peer& from, std::string_view to, EventPtr event, TimePoint now, Outbox& out);
  void flushHeld(const std::string& id, Endpoint to, Outbox& out);
  void link(Peer& p);
  void unlink(Peer& p);
  MediaMode effectiveMode() const;
  // After a join or a removal: tells everybody (ev::MediaModeChanged) and the observer when the mode changed.
  void modeChanged(MediaMode before, Outbox& out);

  std::string name_;
  const Limits& limits_;
  RoomPolicy policy_;
  std::unique_ptr<HeldMap> held_;  // made by the first message held (RoomPolicy::holdForAbsent)
  // 2 buckets to start with (the default first makes 13).
  std::unordered_map<std::string, Peer, PeerIdHash, std::equal_to<>> peers_{2};
  Peer* first_ = nullptr;  // join order: oldest...
  Peer* last_ = nullptr;   // ...newest
  MediaMode mode_ = MediaMode::kMesh;
  const Peer* speaker_ = nullptr;  // the SFU's active speaker (setActiveSpeaker); cleared when it leaves
  std::size_t sfuOnly_ = 0;        // members that joined with JoinRequest::sfuOnly
  std::unique_ptr<std::unordered_map<const Peer*, Queue>> queues_;  // detached members with events kept
  std::unique_ptr<RecordingState> recording_;                       // while the room is recorded
  // ev::Recording as a member that comes in while the room is recorded is told it.
  EventPtr recordingEvent() const;
};

// The Outbox helpers front doors and tests use.
void reply(Outbox& out, Endpoint to, Event event);
void replyError(Outbox& out, Endpoint to, int64_t re, ErrorCode code, std::string message);
// An error that answers a join or resume (ev::Error::refusesJoin), so the front door knows it is in no room even if
// replies to its earlier requests are still on their way.
void refuseJoin(Outbox& out, Endpoint to, int64_t re, ErrorCode code, std::string message);

}  // namespace kaiwa::signal

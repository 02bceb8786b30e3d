#pragma once
// The guide's signaling events on the room core (docs/socketio.md, "Events"), sans-I/O: join-room / leave-room,
// the toggles, the directed offer / answer / ice-candidate, the 1:1 examples' broadcast events, acks and errors.
//
// GuideEvents is one socket's side. It takes the socket's events (from Socket) with the current time and hands out
// RoomOps: what to do in one room of the room core. The caller runs each op on the room's owner with applyRoomOp
// (the server: through Hub::onRoom; a test: on a RoomHost of its own), and what the room produced comes back to the
// socket's memberships (each a hub Connection) as room-core events, which GuideEvents writes as Socket.IO packets.
#include <boost/container/small_vector.hpp>

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "common/clock.hpp"
#include "signal/hub.hpp"  // Connection only: GuideEvents calls nothing of the hub
#include "signal/room_host.hpp"
#include "signal/socketio/codec.hpp"
#include "signal/socketio/inline_id.hpp"
#include "signal/socketio/room_name.hpp"

namespace kaiwa::signal::socketio {

inline constexpr std::string_view kRoomPrefix = kCoreRoomPrefix;  // room-core names of Socket.IO rooms...
inline constexpr std::string_view kImplicitPrefix = "sio-idle:";  // ...and of the quiet rooms of sockets in none
inline constexpr std::size_t kMaxRoomsPerSocket = 16;

// The room core's name of a Socket.IO room (`implicit`: of a socket's quiet implicit room).
std::string roomKey(std::string_view name, bool implicit);

// What one socket asks of one room of the room core. `key` is the room core's name; `endpoint` the membership's.
namespace room_op {
struct Join {  // findOrCreate (the creator's address counted) and join; refusals answer with refuseJoin
  std::string key;
  Endpoint endpoint;
  SocketId id;
  Address address;
  bool implicit = false;
};
struct Leave {
  std::string key;
  Endpoint endpoint;
  SocketId id;
};
struct Members {  // the others in the room, as ev::Joined{re} (a repeated join-room's ack)
  std::string key;
  Endpoint endpoint;
  SocketId id;
  int64_t re = kNoRequest;
};
struct Toggle {  // the room's media state, then the event to the others
  std::string key;
  Endpoint endpoint;
  SocketId id;
  MediaStatePatch patch;
  std::string frames;
  int64_t re = kNoRequest;
};
struct Broadcast {  // to the others in the room
  std::string key;
  Endpoint endpoint;
  SocketId id;
  std::string frames;
  int64_t re = kNoRequest;
};
// A directed event on its way to the first of the sender's rooms that has its target: tried in `key`, then in the
// next route. When none has it, the sender gets ev::Error{unknown-peer} naming the event.
struct Directed {
  struct Route {
    std::string key;
    Endpoint endpoint;
  };
  boost::container::small_vector<Route, 1> routes;  // the sender's rooms, in the order it joined them
  std::size_t next = 0;
  SocketId id, target;
  std::string frames;
  // The client's ack id; without one, which directed event this is (directedRequest), so that the error that
  // nobody got it can name the event.
  int64_t re = kNoRequest;
};
}  // namespace room_op
using RoomOp = std::variant<room_op::Join, room_op::Leave, room_op::Members, room_op::Toggle, room_op::Broadcast,
                            room_op::Directed>;

// The room core's name of the room the op runs in (its owner runs it).
std::string_view roomOf(const RoomOp& op);
// Runs `op` on its room: what it produces goes into `out`. True if the op has to go on in another room (a directed
// event whose target is not in this one): run it again, on the owner of roomOf(op).
bool applyRoomOp(RoomOp& op, RoomHost& rooms, Outbox& out, TimePoint now);

// What a relayed event carries through the room core: the receivers' Engine.IO WebSocket frames, encoded once by
// the sender. One text frame "4<packet>" as it is (the common case: what decodeRelayEvent writes); "B" then
// "<len>:<bytes>" per frame for a binary event (its header's text frame first, then one binary frame per attachment).
std::string packFrames(std::string text, const std::vector<std::string>& buffers);

class GuideEvents;

// One room the socket is in, with its own hub endpoint so that every event it gets says which room it came from.
// Who else is in the room is asked of the room core when needed (directed events, a repeated join-room), not kept.
struct Membership final : Connection {
  Membership(GuideEvents& e, std::string_view n, bool imp) : events(e), name(n), implicit(imp) {}
  void deliver(const EventPtr& event) override;
  std::string key() const { return roomKey(name, implicit); }
  std::optional<uint64_t> ack() const {
    return joinAck >= 0 ? std::optional<uint64_t>(static_cast<uint64_t>(joinAck)) : std::nullopt;
  }

  GuideEvents& events;
  std::string name;  // as the client names it
  Endpoint endpoint{};
  int64_t joinAck = -1;              // the join-room's ack id, if it asked for one
  std::unique_ptr<Membership> next;  // the socket's next room (in join order)
  bool implicit;                     // the room of a socket that joined none (quiet, no announcements)
  bool joined = false;
};

class GuideEvents {
 public:
  struct Config {
    bool relayUnknownEvents = false;
    std::string defaultRoom = "default";
    std::optional<std::string> authSecret;  // set: rooms need a room token
    std::size_t maxMessageBytes = 64 * 1024;
  };

  class Listener {
   public:
    virtual ~Listener() = default;
    // A Socket.IO packet (text) to this client.
    virtual void sendPacket(std::string text) = 0;
    // A frame of a relayed event (packFrames' frames: "4<packet>" text, or an attachment), to this client.
    virtual void sendFrame(std::string_view frame, bool binary) = 0;
    // A membership's hub endpoint, made when it is, and let go of when it goes.
    virtual Endpoint attach(Membership& membership) = 0;
    virtual void detach(Endpoint endpoint) = 0;
    // Runs `op` on its room's owner (applyRoomOp there; again while it says so).
    virtual void run(RoomOp&& op) = 0;
    // Connection placement: a socket in no room is about to join `room`. True if its connection moves to the
    // worker owning the room; the caller then calls join(room, ack) there.
    virtual bool moveToOwnerOf(const std::string& room, std::optional<uint64_t> ack) = 0;
    // The room core said bye (a shutdown, a replaced peer): the session closes.
    virtual void close(std::string_view why, uint16_t wsCode) = 0;
    // The time, for the room core's events (which arrive without it).
    virtual TimePoint now() = 0;
    // Wall-clock seconds since the Unix epoch, for room tokens' expiry.
    virtual int64_t wallSeconds() = 0;
  };

  // `config` outlives this. `address`: the client's, for the per-address room rate; `roomHint` and `queryToken`: the
  // handshake's ?room= and ?token= ("" when absent).
  GuideEvents(Listener& listener, const Config& config, std::string_view address, std::string roomHint,
              std::string queryToken);
  ~GuideEvents();
  GuideEvents(const GuideEvents&) = delete;
  GuideEvents& operator=(const GuideEvents&) = delete;

  std::string_view address() const { return address_.view(); }
  bool inAnyRoom() const { return memberships_ != nullptr; }

  // From Socket: a socket connected (it enters its implicit room; `answer`, the CONNECT's answer, is sent once the
  // room core has taken or refused it, before anything else) or went (it leaves every room, others see user-left).
  void onConnected(std::string_view socketId, std::string_view authToken, std::string answer, TimePoint now);
  void onDisconnected();
  void onEvent(SioPacket p, TimePoint now);
  void onRelayEvent(RelayEvent& e, TimePoint now);  // takes its frame
  void onRateLimited(std::optional<uint64_t> ack, std::string_view event, TimePoint now);
  // After a move (Listener::moveToOwnerOf): joins `room` from here.
  void join(const std::string& room, std::optional<uint64_t> ack);

  // A room-core event for one membership (Membership::deliver).
  void onRoomEvent(Membership& m, const EventPtr& event);

 private:
  struct Credentials;

  void onRoomEvent(Membership& m, const ev::Joined& e);
  void onRoomEvent(Membership& m, const ev::Error& e);
  void onRoomEvent(Membership& m, const ev::Ok& e);
  void onRoomEvent(Membership& m, const ev::PeerJoined& e);
  void onRoomEvent(Membership& m, const ev::PeerLeft& e);
  void onRoomEvent(Membership& m, const ev::Signal& e);
  void onRoomEvent(Membership& m, const ev::Message& e);
  void onRoomEvent(Membership& m, const ev::Bye& e);
  template <typename E>
  void onRoomEvent(Membership&, const E&) {}  // PeerState, Chat, Expired: nothing on this wire

  void sendFrames(std::string_view data);
  void sendPacket(std::string text);
  void sendConnectAnswer();
  void onJoin(const SioPacket& p);
  void onLeave(const SioPacket& p);
  void onDirected(SioPacket p, const std::string& event);
  void onToggle(SioPacket p, const std::string& event);
  void onBroadcast(SioPacket p, std::string_view name);
  void relayDirected(std::string_view event, std::optional<uint64_t> ack, std::string_view target, std::string frames);
  void relayBroadcast(std::string_view name, std::optional<uint64_t> ack, std::string frames);
  Membership& addMembership(std::string_view name, bool implicit, std::optional<uint64_t> ack);
  void dropMembership(Membership& m);
  void leaveRoom(Membership& m, std::optional<uint64_t> ack);
  void joinImplicit();
  Membership* membership(std::string_view name, bool implicit);
  Membership* implicitMembership() const;
  std::size_t explicitRooms() const;
  std::string_view implicitName();
  bool refuseRoomless(std::optional<uint64_t> ack, std::string_view event, TimePoint now);
  void fail(std::optional<uint64_t> ack, std::string_view event, std::string_view code, std::string_view message,
            TimePoint now);

  Listener& listener_;
  const Config& config_;
  SocketId id_;      // the connected socket's
  Address address_;  // the client's, for the per-address room rate
  TimePoint lastErrorEvent_{};
  std::unique_ptr<Credentials> credentials_;  // when the handshake or the CONNECT carried any
  std::unique_ptr<Membership> memberships_;   // the first room; the others follow through Membership::next
  std::optional<ErrorCode> implicitRefused_;  // why the room core refused the implicit room, if it did
  std::string connectAnswer_;                 // the CONNECT's answer until the implicit room answers
  bool connected_ = false;
};

}  // namespace kaiwa::signal::socketio

#pragma once
// The seam between a front door and the cluster (docs/cluster.md). On a single node there is no Relay and the doors
// run as they always did. With one, a connection's first join asks where its room lives: here (the door goes on as
// on a single node) or on another node, in which case the connection becomes a link: the door forwards the client's
// frames to the owner node untouched, and writes back the frames the owner's room core produced for it.
#include <cstdint>
#include <string>
#include <string_view>

namespace kaiwa::signal {

enum class Placement : uint8_t {
  kHere,         // this node owns the room (or nobody else could be asked): go on as a single node
  kElsewhere,    // another node owns it: the connection is a link to it from now on
  kUnavailable,  // nobody could be asked and nothing is known: refuse the join, the client may retry
  kFull,         // the room is new and the cluster holds the most rooms it may (--max-rooms): refuse the join
};

// A front door's client connection as the relay sees it. Called on the connection's worker.
class RemoteLink {
 public:
  virtual void onPlaced(Placement where) = 0;
  // A frame for the client, written by the owner node's door.
  virtual void onRelayText(std::string_view frame) = 0;
  // The owner ended the session (a `bye`), or the owner node is gone: close the client's connection with `code`.
  virtual void onRelayClose(uint16_t code, std::string_view reason) = 0;

 protected:
  ~RemoteLink() = default;
};

// Which front door's protocol a link carries (the owner makes a session of that door for it).
enum class Door : uint8_t {
  kNative,
  kSocketIo,  // Socket.IO's transports: a forwarded HTTP request, or a WebSocket, for an Engine.IO session there
  kPeerjs,    // a PeerJS client of the key whose room the owner holds; its first frame is its handshake
};

class Relay {
 public:
  virtual ~Relay() = default;
  // All called on `worker`, the link's. `attach` registers the link until `detach` (after which it hears nothing).
  virtual uint64_t attach(uint32_t worker, RemoteLink* link) = 0;
  virtual void detach(uint32_t worker, uint64_t link) = 0;
  // Finds the owner of `room` (placing it here if nobody holds it), then calls link->onPlaced. For kElsewhere the
  // link is open towards the owner already: what `send` forwards reaches a session of `door` made for it there.
  virtual void place(uint32_t worker, uint64_t link, Door door, std::string room, std::string address) = 0;
  // Like place, to a named node rather than a room's owner: kElsewhere once the link is open towards `node`,
  // kUnavailable when that node is not live (kHere if it names this node). `key` picks the owner's worker (its hash).
  virtual void connect(uint32_t worker, uint64_t link, Door door, std::string node, std::string key,
                       std::string address) = 0;
  // This node's id in the cluster.
  virtual const std::string& nodeId() const = 0;
  virtual void send(uint32_t worker, uint64_t link, std::string frame) = 0;
  // The client's connection is gone (`goingAway`: it said so with close code 1001). Detaches the link too.
  virtual void close(uint32_t worker, uint64_t link, bool goingAway) = 0;
};

}  // namespace kaiwa::signal

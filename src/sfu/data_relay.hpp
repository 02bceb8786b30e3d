#pragma once
// The data channel relay of one SFU room (issue 15): each member opens one channel, labelled `kaiwa`, on its
// publish connection, and kaiwa forwards what arrives on it to the other members' channels — to everyone, or to
// one member. Chat and file pieces travel this way, so an SFU room never needs a mesh for them, and a file to
// everyone leaves its sender once. Sans-I/O: messages in with the member they came from, sends out through
// DataRelayIo; what the payload says is the SDK's business (docs/protocol.md, "The SFU data channel").
//
// Every message on the channel is binary (PPID 53) and starts with a kind and a member id:
//
//   client → kaiwa   [kind 1][0]               payload    to every other member
//                    [kind 2][n][n bytes: id]  payload    to one member
//   kaiwa → client   [kind 1][n][n bytes: id]  payload    a message from member `id`
//                    [kind 3][n][n bytes: id]             a notice: a message between us and `id` was dropped
//
// Identity: the id on a forwarded message is the member whose transport the message came in on, never anything
// the message says. Back-pressure: kaiwa holds nothing of its own. A receiver whose association's send buffer is
// full (1 MiB) loses that message, counted; both ends then get a kind 3 notice (the sender names the receiver, the
// receiver the sender), so a file in flight fails on both sides at once instead of arriving short. A message to one
// member without an open channel gets the sender the same notice. The sender
// itself is paced by SCTP towards kaiwa, which its channel's bufferedAmount shows.
#include <cstdint>
#include <deque>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace kaiwa::sfu {

enum class DataSendResult : uint8_t { kSent, kBufferFull, kTooBig, kGone };

class DataRelayIo {
 public:
  // Sends one message on `member`'s `kaiwa` channel.
  virtual DataSendResult sendData(std::string_view member, std::span<const uint8_t> message) = 0;

 protected:
  ~DataRelayIo() = default;
};

struct DataRelayCounters {
  uint64_t messagesIn = 0;  // messages taken from members' channels
  uint64_t bytesIn = 0;
  uint64_t delivered = 0;  // copies handed to receivers' associations
  uint64_t bytesDelivered = 0;
  uint64_t malformed = 0;        // no valid header
  uint64_t unknownTarget = 0;    // to a member without an open channel
  uint64_t bufferFull = 0;       // a receiver's send buffer was full: that copy dropped
  uint64_t tooBig = 0;           // the forwarded message would pass the size limit
  uint64_t noticesLost = 0;      // kind 3 notices that could not be sent either
  uint64_t deferredDropped = 0;  // arrived while forwarding, past kMaxDeferred
};

class DataRelay {
 public:
  enum Kind : uint8_t { kToAll = 1, kToOne = 2, kDropped = 3 };
  static constexpr size_t kMaxIdLength = 64;
  // Calls that arrive while a message is being forwarded (a receiver's association may hand over what it had
  // received when it is sent to) wait until it is done, at most this many messages; more are dropped and counted.
  static constexpr size_t kMaxDeferred = 256;

  // `maxMessage`: the largest message a channel carries (a=max-message-size).
  DataRelay(DataRelayIo& io, size_t maxMessage) : io_(io), maxMessage_(maxMessage) {}

  // The member's `kaiwa` channel is open (again): it receives from now on.
  void open(std::string_view member);
  // Its channel closed or the member left.
  void close(std::string_view member);
  bool isOpen(std::string_view member) const;
  size_t members() const { return members_.size(); }

  // A message from `from`'s channel (untrusted bytes).
  void receive(std::string_view from, std::span<const uint8_t> message);

  const DataRelayCounters& counters() const { return counters_; }

 private:
  void forward(std::string_view from, std::span<const uint8_t> message);
  void runDeferred();
  void deliver(std::string_view from, std::string_view to);
  void notify(std::string_view to, std::string_view about);

  DataRelayIo& io_;
  size_t maxMessage_;
  std::vector<std::string> members_;
  std::vector<uint8_t> out_;  // the forwarded message, built once for every receiver
  bool busy_ = false;
  struct Deferred {
    enum class Op : uint8_t { kOpen, kClose, kReceive } op;
    std::string member;
    std::vector<uint8_t> message;
  };
  std::deque<Deferred> deferred_;
  DataRelayCounters counters_;
};

}  // namespace kaiwa::sfu

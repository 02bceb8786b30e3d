// fuzz_data_relay: sfu::DataRelay (the SFU's data channel relay) fed messages from members chosen by the input,
// with receivers whose sends the input makes succeed, find a full buffer, or fail, and whose sends may hand the
// relay more messages or close a member (as an association draining its backlog does).
// Invariants: nothing crashes; every message a member receives starts with a valid header (kind 1 naming a member
// that is not the receiver, or a bare kind 3 notice) and fits the size limit; a message reaches at most the three
// other members.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <string>
#include <vector>

#include "sfu/data_relay.hpp"

using kaiwa::sfu::DataRelay;
using kaiwa::sfu::DataRelayIo;
using kaiwa::sfu::DataSendResult;

namespace {

const char* const kMembers[] = {"a", "bb", "ccc", "w0x1234567890"};
constexpr size_t kMax = 512;

struct Io final : DataRelayIo {
  std::span<const uint8_t> script;  // the input's bytes deciding each send's outcome
  DataRelay* relay = nullptr;
  int depth = 0;
  uint8_t next() {
    if (script.empty()) return 0;
    uint8_t b = script[0];
    script = script.subspan(1);
    return b;
  }
  DataSendResult sendData(std::string_view member, std::span<const uint8_t> message) override {
    if (message.size() < 2 || message.size() > kMax) std::abort();
    const size_t n = message[1];
    if (message.size() < 2 + n) std::abort();
    std::string_view id(reinterpret_cast<const char*>(message.data()) + 2, n);
    if (message[0] == DataRelay::kToAll) {
      if (id == member || id.empty()) std::abort();
    } else if (message[0] != DataRelay::kDropped || message.size() != 2 + n) {
      std::abort();
    }
    const uint8_t b = next();
    if (depth == 0 && (b & 0x30) == 0x30 && relay != nullptr) {
      ++depth;
      relay->close(kMembers[b & 3]);
      relay->receive(member, std::vector<uint8_t>{DataRelay::kToAll, 0, 'x'});
      relay->open(kMembers[b & 3]);
      --depth;
    }
    switch (b & 3) {
      case 1:
        return DataSendResult::kBufferFull;
      case 2:
        return b & 4 ? DataSendResult::kTooBig : DataSendResult::kGone;
      default:
        return DataSendResult::kSent;
    }
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Io io;
  DataRelay relay(io, kMax);
  io.relay = &relay;
  for (const char* m : kMembers) relay.open(m);
  // Records: [from (2 bits) | op (2 bits)][length][message bytes][script byte].
  size_t at = 0;
  while (at + 2 <= size) {
    const uint8_t head = data[at];
    const size_t length = std::min<size_t>(data[at + 1], size - at - 2);
    std::span<const uint8_t> message(data + at + 2, length);
    at += 2 + length;
    io.script = std::span<const uint8_t>(data + at, size - at);
    const char* from = kMembers[head & 3];
    switch ((head >> 2) & 3) {
      case 0:
        relay.close(from);
        break;
      case 1:
        relay.open(from);
        break;
      default:
        relay.receive(from, message);
        break;
    }
    at = size - io.script.size();
  }
  const auto& c = relay.counters();
  if (c.delivered > c.messagesIn * 3 || c.bytesDelivered > c.delivered * kMax) std::abort();
  return 0;
}

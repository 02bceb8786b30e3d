// fuzz_sctp: SCTP packets as kaiwa's DTLS-to-SCTP glue hands them to usrsctp (sctp/association, sctp/dcep). Each
// input gets a fresh pair of associations, connected back to back in memory, with one channel open; then the input's
// packets go to the server side, mixed with the real traffic. usrsctp's checksum check is off (as if offloaded) and
// an input packet may take the real verification tag, so the fuzzer reaches chunk handling, DCEP and the channel
// bookkeeping instead of stopping at the checksum.
//  1. Nothing crashes or leaks; no stall (every pump is bounded).
//  2. Whatever the server hears is within bounds: messages no larger than the limit, PPIDs of data channels, channels
//     opened only on the client's (even) streams and below the stream count.
// (Whether the real pair still works afterwards is not checked: a forged SACK or a stolen TSN may end or stall it,
// as it would in the wild, which is why the DTLS layer below authenticates every packet.)
//
// Input: records of [length hi][length lo][flags] then the bytes; flags bit 0: write the client's verification tag
// into bytes 4-7; bit 1: let the real packets queued so far flow first.
#include <usrsctp.h>

#include <cstdint>
#include <span>
#include <vector>

#include "fuzz_util.hpp"
#include "sctp/association.hpp"

using namespace kaiwa::sctp;

namespace {

struct Side final : Association::Listener {
  std::vector<std::vector<uint8_t>> out;
  bool connected = false;
  bool closed = false;
  size_t messages = 0;
  std::vector<uint16_t> opened;
  std::vector<uint16_t> closedChannels;
  size_t maxMessage = 256 * 1024;

  void onPacket(std::span<const uint8_t> p) override { out.emplace_back(p.begin(), p.end()); }
  void onConnected() override { connected = true; }
  void onChannelOpen(uint16_t stream, const ChannelParams&) override {
    FUZZ_CHECK(stream % 2 == 0 && stream < 1024);
    opened.push_back(stream);
  }
  void onMessage(uint16_t, Ppid ppid, std::span<const uint8_t> m) override {
    FUZZ_CHECK(m.size() <= maxMessage);
    FUZZ_CHECK(ppid == Ppid::kString || ppid == Ppid::kBinary || ppid == Ppid::kStringEmpty ||
               ppid == Ppid::kBinaryEmpty);
    ++messages;
  }
  void onChannelClosed(uint16_t stream) override { closedChannels.push_back(stream); }
  void onClosed() override { closed = true; }
};

void pump(Side& a, Association& client, Side& b, Association& server) {
  for (int i = 0; i < 64 && (!a.out.empty() || !b.out.empty()); ++i) {
    auto fromA = std::move(a.out);
    a.out.clear();
    auto fromB = std::move(b.out);
    b.out.clear();
    for (auto& p : fromA) server.receive(p);
    for (auto& p : fromB) client.receive(p);
  }
}

}  // namespace

void runInput(const uint8_t* data, size_t size);

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  runInput(data, size);
  // usrsctp frees a closed socket's state from a timer (its "inp kill" timer): let it run, so that nothing an input
  // allocated outlives it.
  Association::tickTimers(std::chrono::milliseconds(100));
  return 0;
}

void runInput(const uint8_t* data, size_t size) {
  static const bool offload = [] {
    Side s;  // usrsctp initializes with the first association
    Association first({}, s);
    usrsctp_enable_crc32c_offload();
    return true;
  }();
  (void)offload;
  Side a;
  Side b;
  Association client({.dtlsClient = true}, a);
  Association server({.dtlsClient = false}, b);
  FUZZ_CHECK(client.connect() && server.connect());
  pump(a, client, b, server);
  FUZZ_CHECK(a.connected && b.connected);
  auto stream = client.openChannel({.label = "fuzz"});
  FUZZ_CHECK(stream.has_value());
  // The client's verification tag, as the server expects it: from a real packet of the client's.
  const uint8_t probe[] = {'x'};
  client.send(*stream, Ppid::kString, probe);
  FUZZ_CHECK(!a.out.empty() && a.out.back().size() >= 12);
  std::vector<uint8_t> tag(a.out.back().begin() + 4, a.out.back().begin() + 8);
  pump(a, client, b, server);

  size_t at = 0;
  std::vector<uint8_t> packet;
  while (at + 3 <= size) {
    const size_t length = std::min<size_t>(size_t{data[at]} << 8 | data[at + 1], size - at - 3);
    const uint8_t flags = data[at + 2];
    packet.assign(data + at + 3, data + at + 3 + length);
    at += 3 + length;
    if ((flags & 1) != 0 && packet.size() >= 8) std::copy(tag.begin(), tag.end(), packet.begin() + 4);
    if ((flags & 2) != 0) pump(a, client, b, server);
    server.receive(packet);
  }
  pump(a, client, b, server);
  for (uint16_t s : b.opened) FUZZ_CHECK(s % 2 == 0);
  FUZZ_CHECK(server.channels() <= 512);
}

// native_codec_bench: the user-space work kaiwa does per relayed native message, without sockets: decode of the
// request, the room's relay, encode of the event. Google Benchmark; built with -DKAIWA_BENCH=ON when the package is
// found (build/bench/kaiwa-native-codec-bench).
#include <benchmark/benchmark.h>

#include <string>

#include "signal/native/codec.hpp"
#include "signal/room.hpp"

namespace {

using namespace kaiwa;
using namespace kaiwa::signal;

// What bench/loadgen.cpp sends: a 300-byte data string to one peer.
std::string relayMessage() {
  return R"({"v":1,"type":"message","to":"AbCdEfGhIjKl","data":")" + std::string(300, 'x') + "\"}";
}

// A browser's offer: an object with an SDP full of escapes.
std::string offerSignal() {
  std::string sdp;
  for (int i = 0; i < 40; ++i) {
    sdp += "a=candidate:1 1 udp 2122260223 192.168.1.2 5400" + std::to_string(i) + " typ host\\r\\n";
  }
  return R"({"v":1,"type":"signal","id":7,"to":"AbCdEfGhIjKl","data":{"description":{"type":"offer","sdp":")" + sdp +
         R"("},"n":[1,2.5,-3e10,true,null]}})";
}

void decodeText(benchmark::State& state, const std::string& text) {
  for (auto _ : state) {
    auto r = native::decode(text);
    benchmark::DoNotOptimize(r);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * text.size()));
}

void BM_DecodeRelayMessage(benchmark::State& state) { decodeText(state, relayMessage()); }
BENCHMARK(BM_DecodeRelayMessage);

void BM_DecodeOfferSignal(benchmark::State& state) { decodeText(state, offerSignal()); }
BENCHMARK(BM_DecodeOfferSignal);

void BM_EncodeMessage(benchmark::State& state) {
  const Event e = ev::Message{"AbCdEfGhIjKl", "\"" + std::string(300, 'x') + "\"", false};
  for (auto _ : state) {
    std::string frame = native::encode(e);
    benchmark::DoNotOptimize(frame);
  }
}
BENCHMARK(BM_EncodeMessage);

// decode → Room::message → encode of each delivery: the path of one relayed message inside one worker.
void BM_RelayThroughRoom(benchmark::State& state) {
  Limits limits;
  Room room("bench", limits);
  Outbox out;
  const TimePoint now{};
  const Endpoint a{0, 1}, b{0, 2};
  std::string ida = room.join(JoinRequest{a, kNoRequest, "a", {}, {}}, now, out);
  std::string idb = room.join(JoinRequest{b, kNoRequest, "b", {}, {}}, now, out);
  out.clear();
  std::string text = R"({"v":1,"type":"message","to":")" + idb + R"(","data":")" + std::string(300, 'x') + "\"}";
  for (auto _ : state) {
    auto r = native::decode(text);
    auto& req = std::get<native::Request>(r);
    room.message(a, req.id, ida, req.to, std::move(req.data), out);
    for (const auto& d : out) {
      std::string frame = native::encode(*d.event);
      benchmark::DoNotOptimize(frame);
    }
    out.clear();
  }
}
BENCHMARK(BM_RelayThroughRoom);

}  // namespace

BENCHMARK_MAIN();

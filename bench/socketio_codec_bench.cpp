// socketio_codec_bench: the user-space decode of a relayed Socket.IO event, without sockets: the one-pass
// decodeRelayEvent against the DOM path it replaced for relayed events (decodePacket, the object rebuilt with `from`
// first, encodePacket). Google Benchmark; built with -DKAIWA_BENCH=ON when the package is found
// (build/bench/kaiwa-socketio-codec-bench).
#include <benchmark/benchmark.h>

#include <boost/json.hpp>
#include <string>

#include "signal/socketio/codec.hpp"

namespace {

namespace json = boost::json;
using namespace kaiwa::signal::socketio;

constexpr std::string_view kFrom = "FROMFROMFROMFROMFROM";

// What bench/loadgen.cpp sends: an offer to one socket, a 300-byte SDP (42 and the Engine.IO '4' stripped).
std::string loadgenOffer() {
  return R"(2["offer",{"to":"BBBBBBBBBBBBBBBBBBBB","offer":{"type":"offer","sdp":")" + std::string(300, 'x') +
         R"("}}])";
}

// A browser's offer: an SDP full of escapes, with an ack id.
std::string browserOffer() {
  std::string sdp;
  for (int i = 0; i < 40; ++i) {
    sdp += "a=candidate:1 1 udp 2122260223 192.168.1.2 5400" + std::to_string(i) + " typ host\\r\\n";
  }
  return R"(27["offer",{"to":"BBBBBBBBBBBBBBBBBBBB","offer":{"type":"offer","sdp":")" + sdp + R"("}}])";
}

// The DOM path (what EngineSession::onDirected does for a packet that is not for the fast path).
std::string domRelay(std::string_view text) {
  auto p = decodePacket(text);
  json::array& args = p->data->as_array();
  json::object& body = args[1].as_object();
  json::object out;
  out.reserve(body.size());
  out.emplace("from", kFrom);
  for (auto& kv : body) {
    if (kv.key() != "to" && kv.key() != "from") out.emplace(kv.key(), std::move(kv.value()));
  }
  args[1] = std::move(out);
  p->ackId.reset();
  std::string frame = "4";  // appended, not "4" + string&&: GCC 12 at -O3 warns (-Wrestrict) about the latter
  frame += encodePacket(*p);
  return frame;
}

void dom(benchmark::State& state, const std::string& text) {
  for (auto _ : state) {
    std::string frame = domRelay(text);
    benchmark::DoNotOptimize(frame);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * text.size()));
}

void onePass(benchmark::State& state, const std::string& text) {
  if (decodeRelayEvent(text, kFrom, false)->frame != domRelay(text)) {
    state.SkipWithError("the two paths disagree");
    return;
  }
  for (auto _ : state) {
    auto r = decodeRelayEvent(text, kFrom, false);
    benchmark::DoNotOptimize(r);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * text.size()));
}

void BM_DomLoadgenOffer(benchmark::State& state) { dom(state, loadgenOffer()); }
BENCHMARK(BM_DomLoadgenOffer);
void BM_OnePassLoadgenOffer(benchmark::State& state) { onePass(state, loadgenOffer()); }
BENCHMARK(BM_OnePassLoadgenOffer);
void BM_DomBrowserOffer(benchmark::State& state) { dom(state, browserOffer()); }
BENCHMARK(BM_DomBrowserOffer);
void BM_OnePassBrowserOffer(benchmark::State& state) { onePass(state, browserOffer()); }
BENCHMARK(BM_OnePassBrowserOffer);

}  // namespace

BENCHMARK_MAIN();

// rtp_bench: the packet-layer work the SFU will do per forwarded RTP packet, without sockets or crypto: parse and
// rewrite (SSRC, sequence number, timestamp, extension ids) of a 1200-byte packet laid out as Chromium sends video,
// the NACK generator fed one packet, and the retransmission buffer storing one. Google Benchmark; built with
// -DKAIWA_BENCH=ON when the package is found (build/bench/kaiwa-rtp-bench). The SFU's whole budget per forwarded
// packet is a few microseconds (issue 14: 150,000 packets per second per core, SRTP included), so this layer should
// stay at tens of nanoseconds.
#include <benchmark/benchmark.h>

#include <array>
#include <vector>

#include "rtp/nack_generator.hpp"
#include "rtp/packet.hpp"
#include "rtp/retransmission_buffer.hpp"
#include "rtp/rtcp.hpp"

namespace {

using namespace kaiwa;
using namespace kaiwa::rtp;

// VP8 with Chromium's video extensions (3 transport-cc, 4 mid, 10 rid, 2 abs-send-time), padded out to 1200 bytes.
std::vector<uint8_t> videoPacket() {
  std::vector<uint8_t> p = {0x90, 0xe0, 0xff, 0xff, 0x01, 0x02, 0x03, 0x04, 0xa1, 0xb2, 0xc3, 0xd4, 0xbe, 0xde,
                            0x00, 0x03, 0x31, 0x00, 0x01, 0x40, 0x31, 0xa0, 0x68, 0x22, 0xaa, 0xbb, 0xcc, 0x00};
  p.resize(1200, 0x5a);
  return p;
}

void BM_ParseOnly(benchmark::State& state) {
  auto bytes = videoPacket();
  for (auto _ : state) {
    auto p = Packet::parse(bytes);
    benchmark::DoNotOptimize(p);
  }
}
BENCHMARK(BM_ParseOnly);

// What a forwarding leg does: parse, route by rid, then rewrite SSRC, sequence number, timestamp, the transport-wide
// sequence number and the extension ids for the subscriber.
void BM_ParseAndRewrite(benchmark::State& state) {
  auto bytes = videoPacket();
  ExtensionIdMap map;
  map.set(10, 12);
  map.set(12, 10);  // swapped back each time, so the packet stays valid whatever the iteration count
  uint16_t seq = 0;
  for (auto _ : state) {
    auto m = MutablePacket::parse(bytes);
    auto rid = parseRid(*m->view().extension(seq & 1 ? 10 : 12));
    benchmark::DoNotOptimize(rid);
    m->setSsrc(0x12345678);
    m->setSequenceNumber(++seq);
    m->setTimestamp(m->view().timestamp() + 3000);
    if (auto tcc = m->extension(3)) {
      (*tcc)[0] = uint8_t(seq >> 8);
      (*tcc)[1] = uint8_t(seq);
    }
    m->remapExtensionIds(map);
    benchmark::ClobberMemory();
  }
}
BENCHMARK(BM_ParseAndRewrite);

// One packet into the NACK generator, with 1 % loss and the collect() a 20 ms timer would make (amortised).
void BM_NackGeneratorPerPacket(benchmark::State& state) {
  NackGenerator nack;
  TimePoint now{std::chrono::seconds(1)};
  std::array<uint16_t, 64> out{};
  uint16_t seq = 0;
  for (auto _ : state) {
    ++seq;
    if (seq % 100 != 0) nack.onPacket(seq, now, false);
    now += std::chrono::microseconds(1000);
    if (seq % 20 == 0) benchmark::DoNotOptimize(nack.collect(now, out));
  }
  state.counters["requested"] = double(nack.stats().requested);
}
BENCHMARK(BM_NackGeneratorPerPacket);

void BM_RetransmissionStore(benchmark::State& state) {
  auto bytes = videoPacket();
  RetransmissionBuffer buffer;
  uint16_t seq = 0;
  for (auto _ : state) {
    buffer.store(++seq, bytes);
    benchmark::ClobberMemory();
  }
}
BENCHMARK(BM_RetransmissionStore);

// A NACK of 17 packets parsed and answered from the buffer (per NACK, not per packet).
void BM_NackAnswered(benchmark::State& state) {
  auto bytes = videoPacket();
  RetransmissionBuffer buffer;
  for (uint16_t s = 0; s < 512; ++s) buffer.store(s, bytes);
  std::array<uint8_t, 64> nack{};
  std::array<uint16_t, 17> lost{};
  for (uint16_t i = 0; i < 17; ++i) lost[i] = uint16_t(400 + i);
  const size_t n = *rtcp::writeNack(nack, {1, 2}, lost);
  for (auto _ : state) {
    rtcp::CompoundReader r(std::span<const uint8_t>(nack.data(), n));
    size_t found = 0;
    while (auto b = r.next()) {
      if (auto parsed = rtcp::Nack::parse(*b)) {
        parsed->forEachSequenceNumber([&](uint16_t s) { found += buffer.find(s).has_value(); });
      }
    }
    benchmark::DoNotOptimize(found);
  }
}
BENCHMARK(BM_NackAnswered);

}  // namespace

BENCHMARK_MAIN();

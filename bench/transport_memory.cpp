// What one SFU transport holds in memory, stage by stage: N server transports (sfu::Transport) connected in memory to
// N clients made of kaiwa's own parts (as in tests/unit/sfu/transport_test.cpp), the heap in use (glibc mallinfo2)
// and the part of it OpenSSL allocated (CRYPTO_set_mem_functions) after each stage, per transport. The clients are
// destroyed before the last figure, which is then the server's side alone. Prints a table; asserts nothing.
//
//   kaiwa-transport-mem [N] [release]   (default 200; `release`: transports without SCTP, which let their DTLS state
//                                         go at the client's first protected packet, as subscribe, WHIP and WHEP do)
#include <malloc.h>
#include <openssl/crypto.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "dtls/certificate.hpp"
#include "sfu/transport.hpp"
#include "stun/message.hpp"

namespace {

using namespace kaiwa;
using namespace std::chrono_literals;

// OpenSSL's heap in use: each block carries its size in a 16-byte header so that free can subtract it.
size_t gOpensslBytes = 0;
void* countedMalloc(size_t n, const char*, int) {
  auto* p = static_cast<size_t*>(std::malloc(n + 16));
  if (!p) return nullptr;
  *p = n;
  gOpensslBytes += n;
  return reinterpret_cast<char*>(p) + 16;
}
void countedFree(void* q, const char*, int) {
  if (!q) return;
  auto* p = reinterpret_cast<size_t*>(static_cast<char*>(q) - 16);
  gOpensslBytes -= *p;
  std::free(p);
}
void* countedRealloc(void* q, size_t n, const char* f, int l) {
  if (!q) return countedMalloc(n, f, l);
  auto* p = reinterpret_cast<size_t*>(static_cast<char*>(q) - 16);
  size_t old = *p;
  auto* r = static_cast<size_t*>(std::realloc(p, n + 16));
  if (!r) return nullptr;
  *r = n;
  gOpensslBytes = gOpensslBytes - old + n;
  return reinterpret_cast<char*>(r) + 16;
}

size_t heapInUse() { return mallinfo2().uordblks; }

const common::Address kClient = *common::Address::parse("127.0.0.1:50000");
const TimePoint kT0 = TimePoint{} + 100s;

struct Io : sfu::TransportIo {
  std::vector<std::vector<uint8_t>> sent;
  int connected = 0;
  void sendTo(const common::Address&, std::span<const uint8_t> d) override { sent.emplace_back(d.begin(), d.end()); }
  void onValidAddress(const common::Address&) override {}
  void onConnected() override { ++connected; }
  void onRtp(std::span<uint8_t>) override {}
  void onRtcp(std::span<uint8_t>) override {}
  void onClosed(std::string_view) override {}
};

struct Client {
  std::optional<dtls::Session> dtls;
  std::optional<srtp::Session> out;
};

std::vector<uint8_t> check() {
  std::vector<uint8_t> buf(256);
  stun::TransactionId id{};
  id.fill(7);
  stun::Builder b(buf, stun::Method::kBinding, stun::Class::kRequest, id);
  b.text(stun::attr::kUsername, "kaiwaU:browU").u32(stun::attr::kPriority, 0x7e0000ff);
  std::array<uint8_t, 8> tie{1, 2, 3, 4, 5, 6, 7, 8};
  b.attribute(stun::attr::kIceControlling, tie);
  b.attribute(stun::attr::kUseCandidate, {});
  b.messageIntegrity(stun::asBytes("kaiwa-password-0123456789")).fingerprint();
  buf.resize(b.size());
  return buf;
}

struct alignas(4) Packet {
  std::array<uint8_t, 1500> bytes{};
  size_t size = 0;
};

Packet rtp(uint32_t ssrc, uint16_t seq) {
  Packet p;
  p.bytes[0] = 0x80;
  p.bytes[1] = 96;
  p.bytes[2] = uint8_t(seq >> 8);
  p.bytes[3] = uint8_t(seq);
  for (int i = 0; i < 4; ++i) p.bytes[8 + i] = uint8_t(ssrc >> (24 - 8 * i));
  p.size = 12 + 200;
  return p;
}

}  // namespace

int main(int argc, char** argv) {
  CRYPTO_set_mem_functions(countedMalloc, countedRealloc, countedFree);
  size_t n = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 200;
  if (n == 0) n = 1;
  const bool release = argc > 2 && std::string(argv[2]) == "release";

  auto serverCert = dtls::Certificate::generate();
  auto clientCert = dtls::Certificate::generate();
  auto serverCtx = dtls::Context::make(*serverCert, dtls::Role::kServer);
  auto clientCtx = dtls::Context::make(*clientCert, dtls::Role::kClient);
  if (!serverCtx || !clientCtx) return 1;

  std::vector<Io> ios(n);
  std::vector<std::optional<sfu::Transport>> transports(n);
  std::vector<Client> clients(n);
  ios.shrink_to_fit();

  struct Row {
    const char* stage;
    size_t heap, openssl;
  };
  std::vector<Row> rows;
  rows.reserve(8);
  auto mark = [&](const char* stage) { rows.push_back({stage, heapInUse(), gOpensslBytes}); };
  mark("start");

  sfu::TransportConfig config{
      {"kaiwaU", "kaiwa-password-0123456789"}, {"browU", "browser-password-0123456789"}, clientCert->fingerprint(), {}};
  for (size_t i = 0; i < n; ++i) {
    transports[i] = sfu::Transport::make(*serverCtx, config, kT0, ios[i]);
    if (release && transports[i]) transports[i]->releaseDtlsOnceKeyed();
  }
  mark("server transports made (ICE, DTLS session)");

  for (size_t i = 0; i < n; ++i) clients[i].dtls = dtls::Session::make(*clientCtx, serverCert->fingerprint());
  mark("+ clients' DTLS sessions made");

  auto c = check();
  for (size_t i = 0; i < n; ++i) {
    auto d = c;
    transports[i]->receive(d, kClient, kT0);
    ios[i].sent.clear();
    ios[i].sent.shrink_to_fit();
  }
  mark("+ ICE check (path selected)");

  size_t connected = 0;
  for (size_t i = 0; i < n; ++i) {
    auto& cl = clients[i];
    cl.dtls->start();
    for (int round = 0; round < 10; ++round) {
      auto flights = std::move(cl.dtls->output());
      cl.dtls->output().clear();
      for (auto& d : flights) transports[i]->receive(d, kClient, kT0);
      auto replies = std::move(ios[i].sent);
      ios[i].sent.clear();
      for (auto& d : replies) cl.dtls->receive(d);
      if (flights.empty() && replies.empty()) break;
    }
    ios[i].sent.shrink_to_fit();
    if (cl.dtls->status() == dtls::Status::kConnected) {
      auto keys = cl.dtls->srtpKeys();
      cl.out = srtp::Session::make(keys.profile, keys.local, srtp::Direction::kOutbound);
    }
    connected += ios[i].connected;
  }
  mark("+ DTLS handshakes, SRTP keyed (both sides)");

  // Two streams each way, as a subscriber of one publisher has (audio and video out) and a publisher in.
  for (size_t i = 0; i < n; ++i) {
    for (uint32_t ssrc : {0x1111u, 0x2222u}) {
      Packet p = rtp(ssrc, 1);
      transports[i]->sendRtp(std::span(p.bytes), p.size);
      Packet q = rtp(ssrc + 1, 1);
      size_t size = q.size;
      if (clients[i].out && clients[i].out->protectRtp(std::span(q.bytes), size) == srtp::Result::kOk) {
        transports[i]->receive(std::span(q.bytes).first(size), kClient, kT0);
      }
    }
    ios[i].sent.clear();
    ios[i].sent.shrink_to_fit();
  }
  mark("+ 2 SRTP streams out and 2 in per transport");

  clients.clear();
  clients.shrink_to_fit();
  mark("clients destroyed: the servers' side alone");

  std::printf("%zu transports, %zu connected%s\n\n", n, connected,
              release ? ", DTLS state released at the client's first packet" : "");
  std::printf("%-46s %14s %14s %18s %18s\n", "stage", "heap KiB", "OpenSSL KiB", "heap B/transport",
              "OpenSSL B/transp.");
  for (const auto& r : rows) {
    double heap = double(r.heap) - double(rows[0].heap), ossl = double(r.openssl) - double(rows[0].openssl);
    std::printf("%-46s %14.0f %14.0f %18.0f %18.0f\n", r.stage, heap / 1024, ossl / 1024, heap / double(n),
                ossl / double(n));
  }
  // Leaves without freeing the transports, so that a heap profiler's report of what is still allocated at exit
  // (heaptrack_print's "leaks") is the servers' side, by call stack.
  std::fflush(stdout);
  std::_Exit(connected == n ? 0 : 1);
}

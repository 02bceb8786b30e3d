// What SRTP costs per packet on this machine, with kaiwa's srtp::Session (OpenSSL's EVP): protect and unprotect of a
// 1200-byte RTP packet for each profile; and libsrtp2's protect of the same packets (Debian's, on NSS: what kaiwa used
// before). An SFU unprotects each packet once and protects it once per subscriber.
//   build/bench/kaiwa-srtp-bench
#include <benchmark/benchmark.h>
#include <srtp2/srtp.h>

#include <algorithm>
#include <array>
#include <vector>

#include "srtp/session.hpp"

namespace {

using namespace kaiwa::srtp;

struct alignas(4) Buffer {
  std::array<uint8_t, 1500> bytes{};
};

size_t makeRtp(Buffer& b, uint16_t seq) {
  b.bytes[0] = 0x80;
  b.bytes[1] = 96;
  b.bytes[2] = uint8_t(seq >> 8);
  b.bytes[3] = uint8_t(seq);
  b.bytes[11] = 1;  // SSRC 1
  return 1200;
}

void protect(benchmark::State& state) {
  auto profile = static_cast<Profile>(state.range(0));
  std::vector<uint8_t> key(keyLength(profile) + saltLength(profile), 7);
  auto out = Session::make(profile, key, Direction::kOutbound);
  Buffer b;
  uint16_t seq = 0;
  for (auto _ : state) {
    size_t size = makeRtp(b, seq++);
    if (out->protectRtp(b.bytes, size) != Result::kOk) state.SkipWithError("protect failed");
    benchmark::DoNotOptimize(b.bytes.data());
  }
  state.SetLabel(std::string(name(profile)));
}

void unprotect(benchmark::State& state) {
  auto profile = static_cast<Profile>(state.range(0));
  std::vector<uint8_t> key(keyLength(profile) + saltLength(profile), 7);
  auto out = Session::make(profile, key, Direction::kOutbound);
  auto in = Session::make(profile, key, Direction::kInbound);
  // Packets protected ahead of time, so that the loop measures unprotect alone.
  constexpr size_t kPackets = 4096;
  std::vector<Buffer> protectedPackets(kPackets);
  std::vector<size_t> sizes(kPackets);
  Buffer work;
  uint16_t seq = 0;
  size_t i = 0;
  for (auto _ : state) {
    if (i % kPackets == 0) {
      state.PauseTiming();
      for (size_t k = 0; k < kPackets; ++k) {
        sizes[k] = makeRtp(protectedPackets[k], seq++);
        out->protectRtp(protectedPackets[k].bytes, sizes[k]);
      }
      state.ResumeTiming();
    }
    size_t k = i++ % kPackets;
    work = protectedPackets[k];
    size_t size = sizes[k];
    if (in->unprotectRtp(work.bytes, size) != Result::kOk) state.SkipWithError("unprotect failed");
    benchmark::DoNotOptimize(work.bytes.data());
  }
  state.SetLabel(std::string(name(profile)));
}

void protectLibsrtp2(benchmark::State& state) {
  auto profile = static_cast<Profile>(state.range(0));
  static const bool initialised = srtp_init() == srtp_err_status_ok;
  std::vector<uint8_t> key(keyLength(profile) + saltLength(profile), 7);
  srtp_policy_t policy{};
  if (profile == Profile::kAes128CmSha1_80) {
    srtp_crypto_policy_set_aes_cm_128_hmac_sha1_80(&policy.rtp);
  } else if (profile == Profile::kAeadAes128Gcm) {
    srtp_crypto_policy_set_aes_gcm_128_16_auth(&policy.rtp);
  } else {
    srtp_crypto_policy_set_aes_gcm_256_16_auth(&policy.rtp);
  }
  policy.rtcp = policy.rtp;
  policy.ssrc.type = ssrc_any_outbound;
  policy.key = key.data();
  policy.allow_repeat_tx = 1;
  srtp_t ctx = nullptr;
  if (!initialised || srtp_create(&ctx, &policy) != srtp_err_status_ok) {
    state.SkipWithError("libsrtp2 refused the policy");
    return;
  }
  alignas(16) std::array<uint8_t, 1500 + SRTP_MAX_TRAILER_LEN> bytes{};
  Buffer b;
  uint16_t seq = 0;
  for (auto _ : state) {
    int size = int(makeRtp(b, seq++));
    std::copy_n(b.bytes.begin(), size, bytes.begin());
    if (srtp_protect(ctx, bytes.data(), &size) != srtp_err_status_ok) state.SkipWithError("protect failed");
    benchmark::DoNotOptimize(bytes.data());
  }
  srtp_dealloc(ctx);
  state.SetLabel("libsrtp2 " + std::string(name(profile)));
}

const std::vector<int64_t> kProfiles = {int64_t(Profile::kAeadAes256Gcm), int64_t(Profile::kAeadAes128Gcm),
                                        int64_t(Profile::kAes128CmSha1_80)};
BENCHMARK(protect)->ArgsProduct({kProfiles});
BENCHMARK(unprotect)->ArgsProduct({kProfiles});
BENCHMARK(protectLibsrtp2)->ArgsProduct({kProfiles});

}  // namespace

BENCHMARK_MAIN();

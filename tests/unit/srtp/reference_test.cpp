// kaiwa's SRTP (on OpenSSL's EVP) against libsrtp2, the library browsers and most SFUs use: for each profile, what
// kaiwa protects is byte for byte what libsrtp2 protects (key derivation, IVs, tags, SRTCP's index), each unprotects
// what the other protected, and both take the same packets for replays, across the sequence number's roll-over,
// with CSRCs, header extensions, several SSRCs, reordering and duplicates.
#include <gtest/gtest.h>
#include <srtp2/srtp.h>

#include <array>
#include <cstring>
#include <random>
#include <vector>

#include "srtp/session.hpp"

namespace kaiwa::srtp {
namespace {

// A libsrtp2 session configured as kaiwa used it before (one per direction, any SSRC).
class Reference {
 public:
  Reference(Profile profile, const std::vector<uint8_t>& keySalt, Direction direction, unsigned window) {
    static const bool initialised = srtp_init() == srtp_err_status_ok;
    EXPECT_TRUE(initialised);
    srtp_policy_t policy{};
    switch (profile) {
      case Profile::kAes128CmSha1_80:
        srtp_crypto_policy_set_aes_cm_128_hmac_sha1_80(&policy.rtp);
        srtp_crypto_policy_set_aes_cm_128_hmac_sha1_80(&policy.rtcp);
        break;
      case Profile::kAeadAes128Gcm:
        srtp_crypto_policy_set_aes_gcm_128_16_auth(&policy.rtp);
        srtp_crypto_policy_set_aes_gcm_128_16_auth(&policy.rtcp);
        break;
      default:
        srtp_crypto_policy_set_aes_gcm_256_16_auth(&policy.rtp);
        srtp_crypto_policy_set_aes_gcm_256_16_auth(&policy.rtcp);
        break;
    }
    policy.ssrc.type = direction == Direction::kInbound ? ssrc_any_inbound : ssrc_any_outbound;
    std::vector<unsigned char> key(keySalt.begin(), keySalt.end());
    policy.key = key.data();
    policy.window_size = window;
    policy.allow_repeat_tx = direction == Direction::kOutbound ? 1 : 0;
    EXPECT_EQ(srtp_create(&ctx_, &policy), srtp_err_status_ok);
  }
  Reference(const Reference&) = delete;
  Reference& operator=(const Reference&) = delete;
  ~Reference() { srtp_dealloc(ctx_); }

  srtp_err_status_t protect(std::vector<uint8_t>& p, bool rtcp) {
    int len = int(p.size());
    p.resize(p.size() + SRTP_MAX_TRAILER_LEN);
    auto r = rtcp ? srtp_protect_rtcp(ctx_, p.data(), &len) : srtp_protect(ctx_, p.data(), &len);
    p.resize(size_t(len));
    return r;
  }
  srtp_err_status_t unprotect(std::vector<uint8_t>& p, bool rtcp) {
    int len = int(p.size());
    auto r = rtcp ? srtp_unprotect_rtcp(ctx_, p.data(), &len) : srtp_unprotect(ctx_, p.data(), &len);
    p.resize(size_t(len));
    return r;
  }

 private:
  srtp_t ctx_ = nullptr;
};

// kaiwa's session on a vector, through an aligned buffer.
Result run(Session& s, std::vector<uint8_t>& p, bool rtcp) {
  alignas(16) std::array<uint8_t, 1600> buffer{};
  std::memcpy(buffer.data(), p.data(), p.size());
  size_t size = p.size();
  Result r = s.direction() == Direction::kOutbound
                 ? (rtcp ? s.protectRtcp(buffer, size) : s.protectRtp(buffer, size))
                 : (rtcp ? s.unprotectRtcp(buffer, size) : s.unprotectRtp(buffer, size));
  if (r == Result::kOk) p.assign(buffer.begin(), buffer.begin() + ptrdiff_t(size));
  return r;
}

std::vector<uint8_t> rtpPacket(std::mt19937& rng, uint16_t seq, uint32_t ssrc) {
  std::vector<uint8_t> p(12);
  const unsigned csrcs = rng() % 3;
  const bool extension = rng() % 2 == 0;
  p[0] = uint8_t(0x80 | (extension ? 0x10 : 0) | csrcs);
  p[1] = uint8_t(rng() % 128);
  p[2] = uint8_t(seq >> 8);
  p[3] = uint8_t(seq);
  for (int i = 4; i < 8; ++i) p[size_t(i)] = uint8_t(rng());
  for (int i = 0; i < 4; ++i) p[size_t(8 + i)] = uint8_t(ssrc >> (24 - 8 * i));
  for (unsigned i = 0; i < 4 * csrcs; ++i) p.push_back(uint8_t(rng()));
  if (extension) {
    const unsigned words = 1 + rng() % 3;
    p.insert(p.end(), {0xbe, 0xde, 0, uint8_t(words)});
    for (unsigned i = 0; i < 4 * words; ++i) p.push_back(uint8_t(rng()));
  }
  const size_t payload = rng() % 1200;
  for (size_t i = 0; i < payload; ++i) p.push_back(uint8_t(rng()));
  return p;
}

std::vector<uint8_t> rtcpPacket(std::mt19937& rng, uint32_t ssrc) {
  const size_t words = 1 + rng() % 40;  // an RTCP packet of (words + 1) * 4 bytes
  std::vector<uint8_t> p{0x80, 201, uint8_t(words >> 8), uint8_t(words)};
  for (int i = 0; i < 4; ++i) p.push_back(uint8_t(ssrc >> (24 - 8 * i)));
  for (size_t i = 1; i < words; ++i) {
    for (int j = 0; j < 4; ++j) p.push_back(uint8_t(rng()));
  }
  return p;
}

class SrtpReference : public testing::TestWithParam<Profile> {
 protected:
  std::vector<uint8_t> keySalt() {
    std::vector<uint8_t> k(keyLength(GetParam()) + saltLength(GetParam()));
    for (auto& b : k) b = uint8_t(rng());
    return k;
  }
  std::mt19937 rng{20261207};
};

TEST_P(SrtpReference, RtpIsByteForByteLibsrtp2sAcrossTheRollOverWithSeveralSsrcs) {
  const auto key = keySalt();
  auto kaiwaOut = Session::make(GetParam(), key, Direction::kOutbound);
  auto kaiwaIn = Session::make(GetParam(), key, Direction::kInbound);
  ASSERT_TRUE(kaiwaOut && kaiwaIn);
  Reference refOut(GetParam(), key, Direction::kOutbound, 1024), refIn(GetParam(), key, Direction::kInbound, 1024);
  const std::array<uint32_t, 3> ssrcs{0x11223344, 0xdeadbeef, 7};
  std::array<uint16_t, 3> seq{65000, 100, 40000};  // one wraps, one starts low, one starts past half
  for (int i = 0; i < 1500; ++i) {
    const size_t which = size_t(i) % ssrcs.size();
    const auto plain = rtpPacket(rng, seq[which]++, ssrcs[which]);
    auto ours = plain, theirs = plain;
    ASSERT_EQ(run(*kaiwaOut, ours, false), Result::kOk) << i;
    ASSERT_EQ(refOut.protect(theirs, false), srtp_err_status_ok) << i;
    ASSERT_EQ(ours, theirs) << "packet " << i << " seq " << seq[which] - 1;
    // Each unprotects the other's.
    auto back = ours;
    ASSERT_EQ(refIn.unprotect(back, false), srtp_err_status_ok) << i;
    EXPECT_EQ(back, plain);
    back = theirs;
    ASSERT_EQ(run(*kaiwaIn, back, false), Result::kOk) << i;
    EXPECT_EQ(back, plain);
  }
}

TEST_P(SrtpReference, RtcpIsByteForByteLibsrtp2sOverMoreThanTheWindow) {
  const auto key = keySalt();
  auto kaiwaOut = Session::make(GetParam(), key, Direction::kOutbound);
  auto kaiwaIn = Session::make(GetParam(), key, Direction::kInbound);
  ASSERT_TRUE(kaiwaOut && kaiwaIn);
  Reference refOut(GetParam(), key, Direction::kOutbound, 1024), refIn(GetParam(), key, Direction::kInbound, 1024);
  for (int i = 0; i < 600; ++i) {  // indices 1..300 on each SSRC: past 128 and 255 (a byte's top bit)
    const uint32_t ssrc = i % 2 == 0 ? 0x01020304 : 0xfffffffe;
    const auto plain = rtcpPacket(rng, ssrc);
    auto ours = plain, theirs = plain;
    ASSERT_EQ(run(*kaiwaOut, ours, true), Result::kOk);
    ASSERT_EQ(refOut.protect(theirs, true), srtp_err_status_ok);
    ASSERT_EQ(ours, theirs) << "packet " << i;
    auto back = ours;
    ASSERT_EQ(refIn.unprotect(back, true), srtp_err_status_ok);
    EXPECT_EQ(back, plain);
    back = theirs;
    ASSERT_EQ(run(*kaiwaIn, back, true), Result::kOk);
    EXPECT_EQ(back, plain);
  }
}

// Reordered, duplicated and very late packets: kaiwa's inbound session takes exactly the packets libsrtp2 takes.
TEST_P(SrtpReference, BothTakeTheSamePacketsForReplays) {
  const auto key = keySalt();
  auto kaiwaOut = Session::make(GetParam(), key, Direction::kOutbound);
  auto kaiwaIn = Session::make(GetParam(), key, Direction::kInbound, 128);
  ASSERT_TRUE(kaiwaOut && kaiwaIn);
  Reference refIn(GetParam(), key, Direction::kInbound, 128);
  std::vector<std::vector<uint8_t>> sent;
  uint16_t seq = 65300;
  for (int i = 0; i < 800; ++i) {
    auto p = rtpPacket(rng, seq++, 0xabcdef01);
    ASSERT_EQ(run(*kaiwaOut, p, false), Result::kOk);
    sent.push_back(std::move(p));
  }
  std::vector<std::vector<uint8_t>> rtcp;
  for (int i = 0; i < 400; ++i) {
    auto p = rtcpPacket(rng, 0xabcdef01);
    ASSERT_EQ(run(*kaiwaOut, p, true), Result::kOk);
    rtcp.push_back(std::move(p));
  }
  // Arrival order: mostly in order, with packets from up to 300 back and some twice.
  int taken = 0, refused = 0;
  for (int step = 0; step < 1600; ++step) {
    const bool isRtcp = step % 4 == 3;
    auto& list = isRtcp ? rtcp : sent;
    const size_t front = std::min(list.size() - 1, size_t(step / (isRtcp ? 4 : 2)));
    const size_t back = std::min(front, size_t(rng() % 300));
    const size_t pick = rng() % 3 == 0 ? front - back : front;
    auto ours = list[pick], theirs = list[pick];
    const Result r = run(*kaiwaIn, ours, isRtcp);
    const srtp_err_status_t ref = refIn.unprotect(theirs, isRtcp);
    ASSERT_EQ(r == Result::kOk, ref == srtp_err_status_ok)
        << "step " << step << " packet " << pick << " rtcp " << isRtcp << " libsrtp2 " << int(ref);
    if (r == Result::kOk) {
      ++taken;
    } else {
      EXPECT_EQ(r, Result::kReplay);
      ++refused;
    }
  }
  EXPECT_GT(taken, 500);
  EXPECT_GT(refused, 300);
}

INSTANTIATE_TEST_SUITE_P(Profiles, SrtpReference,
                         testing::Values(Profile::kAes128CmSha1_80, Profile::kAeadAes128Gcm, Profile::kAeadAes256Gcm),
                         [](const auto& info) { return std::string(name(info.param)).substr(5); });

}  // namespace
}  // namespace kaiwa::srtp

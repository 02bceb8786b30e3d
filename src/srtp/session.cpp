#include "srtp/session.hpp"

#include <srtp2/srtp.h>

#include <utility>
#include <vector>

namespace kaiwa::srtp {

static_assert(kMaxTrailer >= SRTP_MAX_TRAILER_LEN);

namespace {

bool initialised() {
  static const bool ok = srtp_init() == srtp_err_status_ok;  // (thread-safe: a function-local static)
  return ok;
}

Result resultOf(srtp_err_status_t status) {
  switch (status) {
    case srtp_err_status_ok:
      return Result::kOk;
    case srtp_err_status_auth_fail:
      return Result::kAuthFailed;
    case srtp_err_status_replay_fail:
    case srtp_err_status_replay_old:
      return Result::kReplay;
    case srtp_err_status_bad_param:
    case srtp_err_status_parse_err:
      return Result::kBadPacket;
    default:
      return Result::kError;
  }
}

bool setPolicy(Profile profile, srtp_crypto_policy_t& rtp, srtp_crypto_policy_t& rtcp) {
  switch (profile) {
    case Profile::kAes128CmSha1_80:
      srtp_crypto_policy_set_aes_cm_128_hmac_sha1_80(&rtp);
      srtp_crypto_policy_set_aes_cm_128_hmac_sha1_80(&rtcp);
      return true;
    case Profile::kAeadAes128Gcm:
      srtp_crypto_policy_set_aes_gcm_128_16_auth(&rtp);
      srtp_crypto_policy_set_aes_gcm_128_16_auth(&rtcp);
      return true;
    case Profile::kAeadAes256Gcm:
      srtp_crypto_policy_set_aes_gcm_256_16_auth(&rtp);
      srtp_crypto_policy_set_aes_gcm_256_16_auth(&rtcp);
      return true;
    case Profile::kNone:
      break;
  }
  return false;
}

}  // namespace

std::optional<Session> Session::make(Profile profile, std::span<const uint8_t> keySalt, Direction direction,
                                     unsigned replayWindow) {
  if (!initialised() || name(profile).empty() || keySalt.size() != keyLength(profile) + saltLength(profile) ||
      replayWindow < 64 || replayWindow >= 0x8000) {
    return std::nullopt;
  }
  srtp_policy_t policy{};
  if (!setPolicy(profile, policy.rtp, policy.rtcp)) return std::nullopt;
  policy.ssrc.type = direction == Direction::kInbound ? ssrc_any_inbound : ssrc_any_outbound;
  std::vector<unsigned char> key(keySalt.begin(), keySalt.end());  // libsrtp2 copies it into the session
  policy.key = key.data();
  policy.window_size = replayWindow;
  // A packet sent again (a retransmission answering a NACK, as the original) is protected again with its own index.
  policy.allow_repeat_tx = direction == Direction::kOutbound ? 1 : 0;
  policy.next = nullptr;
  srtp_t ctx = nullptr;
  if (srtp_create(&ctx, &policy) != srtp_err_status_ok) return std::nullopt;
  return Session(ctx, profile, direction);
}

Session::Session(Session&& o) noexcept
    : ctx_(std::exchange(o.ctx_, nullptr)), profile_(o.profile_), direction_(o.direction_) {}

Session& Session::operator=(Session&& o) noexcept {
  if (this != &o) {
    if (ctx_) srtp_dealloc(ctx_);
    ctx_ = std::exchange(o.ctx_, nullptr);
    profile_ = o.profile_;
    direction_ = o.direction_;
  }
  return *this;
}

Session::~Session() {
  if (ctx_) srtp_dealloc(ctx_);
}

namespace {

template <typename Fn>
Result run(Fn fn, srtp_t ctx, std::span<uint8_t> buffer, size_t& size, size_t room, size_t minimum) {
  if (!ctx || size < minimum || size > buffer.size() || buffer.size() - size < room ||
      size > size_t(INT32_MAX) - room || reinterpret_cast<uintptr_t>(buffer.data()) % 4 != 0) {
    return Result::kBadPacket;
  }
  int len = int(size);
  Result r = resultOf(fn(ctx, buffer.data(), &len));
  if (r == Result::kOk) size = size_t(len);
  return r;
}

}  // namespace

Result Session::protectRtp(std::span<uint8_t> buffer, size_t& size) {
  if (direction_ != Direction::kOutbound) return Result::kError;
  return run(srtp_protect, ctx_, buffer, size, kMaxTrailer, 12);
}
Result Session::protectRtcp(std::span<uint8_t> buffer, size_t& size) {
  if (direction_ != Direction::kOutbound) return Result::kError;
  return run(srtp_protect_rtcp, ctx_, buffer, size, kMaxTrailer, 8);
}
Result Session::unprotectRtp(std::span<uint8_t> buffer, size_t& size) {
  if (direction_ != Direction::kInbound) return Result::kError;
  return run(srtp_unprotect, ctx_, buffer, size, 0, 12);
}
Result Session::unprotectRtcp(std::span<uint8_t> buffer, size_t& size) {
  if (direction_ != Direction::kInbound) return Result::kError;
  return run(srtp_unprotect_rtcp, ctx_, buffer, size, 0, 8);
}

}  // namespace kaiwa::srtp

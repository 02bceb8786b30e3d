#include "rtp/receive_statistics.hpp"

#include <algorithm>
#include <cstdlib>

namespace kaiwa::rtp {

namespace {

constexpr uint64_t kNtpUnixOffset = 2208988800ULL;  // seconds from 1900 to 1970

}  // namespace

uint64_t toNtp(TimePoint t, std::chrono::nanoseconds unixAtEpoch) {
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()) + unixAtEpoch;
  const int64_t total = std::max<int64_t>(0, ns.count());
  const uint64_t seconds = uint64_t(total / 1'000'000'000) + kNtpUnixOffset;
  const uint64_t fraction = (uint64_t(total % 1'000'000'000) << 32) / 1'000'000'000;
  return seconds << 32 | fraction;
}

std::optional<Millis> roundTripTime(uint64_t nowNtp, uint32_t lsr, uint32_t dlsr) {
  if (lsr == 0) return std::nullopt;
  const uint32_t rtt = ntpMiddle(nowNtp) - lsr - dlsr;  // in 1/65536 s, modulo 2^32
  if (rtt >= 0x80000000u) return std::nullopt;
  return Millis(int64_t(rtt) * 1000 / 65536);
}

void ReceiveStatistics::onPacket(uint16_t seq, uint32_t rtpTimestamp, TimePoint arrival, bool retransmitted) {
  const auto update = sequence_.update(seq);
  if (update.verdict == SequenceUnwrapper::Verdict::kBadJump) return;
  newSinceReport_ = true;
  if (retransmitted) return;
  // Appendix A.8: the transit time in RTP units (arrival on the receiver's clock, so only its differences mean
  // anything), and the jitter as a running mean of its absolute change with gain 1/16.
  if (!haveTransit_) firstArrival_ = arrival;
  const auto since = std::chrono::duration_cast<std::chrono::microseconds>(arrival - firstArrival_).count();
  const auto arrivalRtp = uint32_t(int64_t(since) * int64_t(clockRate_) / 1'000'000);
  const auto transit = int32_t(arrivalRtp - rtpTimestamp);
  if (haveTransit_) {
    const uint64_t d = uint64_t(std::abs(int64_t(transit) - int64_t(lastTransit_)));
    jitterQ4_ = jitterQ4_ + d - ((jitterQ4_ + 8) >> 4);
  }
  lastTransit_ = transit;
  haveTransit_ = true;
}

void ReceiveStatistics::onSenderReport(uint64_t ntp, TimePoint arrival) {
  lastSrNtp_ = ntp;
  lastSrArrival_ = arrival;
}

std::optional<rtcp::ReportBlock> ReceiveStatistics::report(uint32_t ssrc, TimePoint now) {
  if (!newSinceReport_ || sequence_.expected() == 0) return std::nullopt;
  newSinceReport_ = false;
  rtcp::ReportBlock b;
  b.ssrc = ssrc;
  // Appendix A.3.
  const int64_t expected = sequence_.expected();
  const int64_t expectedInterval = expected - expectedPrior_;
  const int64_t receivedInterval = int64_t(sequence_.received() - receivedPrior_);
  const int64_t lostInterval = expectedInterval - receivedInterval;
  expectedPrior_ = expected;
  receivedPrior_ = sequence_.received();
  b.fractionLost = expectedInterval <= 0 || lostInterval <= 0 ? 0 : uint8_t((lostInterval << 8) / expectedInterval);
  b.cumulativeLost = int32_t(std::clamp<int64_t>(sequence_.cumulativeLost(), -0x800000, 0x7FFFFF));
  // The unwrapper counts the first cycle as 1 (so that late packets stay positive); the wire counts it as 0.
  b.extendedHighestSequence = uint32_t(sequence_.maxExtended() - 0x10000);
  b.jitter = jitter();
  if (lastSrNtp_) {
    b.lastSenderReport = ntpMiddle(*lastSrNtp_);
    const auto delay = std::chrono::duration_cast<std::chrono::microseconds>(now - lastSrArrival_).count();
    b.delaySinceLastSenderReport = uint32_t(std::max<int64_t>(0, delay) * 65536 / 1'000'000);
  }
  return b;
}

}  // namespace kaiwa::rtp

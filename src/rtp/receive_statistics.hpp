#pragma once
// What a receiver of one RTP stream reports about it (RFC 3550 section 6.4.1 and appendices A.3 and A.8): the
// extended highest sequence number, cumulative and fractional loss, interarrival jitter, and the last Sender Report's
// middle NTP bits with the delay since it arrived (LSR and DLSR, from which the sender computes the round-trip time).
// Sans-I/O and allocation-free: the caller passes every packet with its arrival time, and asks for a report block at
// each report.
#include <cstdint>
#include <optional>

#include "common/clock.hpp"
#include "rtp/rtcp.hpp"
#include "rtp/sequence.hpp"

namespace kaiwa::rtp {

// NTP time (RFC 5905: seconds since 1900 in the high 32 bits, the fraction in the low 32) of a point on the steady
// clock, given the Unix time of the steady clock's epoch.
uint64_t toNtp(TimePoint t, std::chrono::nanoseconds unixAtEpoch);
// The middle 32 bits of an NTP timestamp: what LSR echoes and what the round-trip time is computed in.
inline uint32_t ntpMiddle(uint64_t ntp) { return uint32_t(ntp >> 16); }
// RFC 3550 section 6.4.1: the round-trip time from a report block received at NTP time `now`, or nullopt if the
// block carries no LSR (no SR has reached its sender yet) or the result is negative (clocks or a forged block).
std::optional<Millis> roundTripTime(uint64_t nowNtp, uint32_t lsr, uint32_t dlsr);

class ReceiveStatistics {
 public:
  explicit ReceiveStatistics(uint32_t clockRate = 90000) : clockRate_(clockRate) {}

  // Every packet of the stream. A retransmitted packet counts as received but not for jitter: its arrival time says
  // nothing of the network's transit time for its RTP timestamp.
  void onPacket(uint16_t seq, uint32_t rtpTimestamp, TimePoint arrival, bool retransmitted = false);
  void onSenderReport(uint64_t ntp, TimePoint arrival);

  // The report block about this stream at `now`, and the start of the next interval for the fraction lost; nullopt
  // while the source is not valid (RFC 3550 appendix A.1's probation) or nothing arrived since the last report.
  std::optional<rtcp::ReportBlock> report(uint32_t ssrc, TimePoint now);

  // Interarrival jitter in RTP timestamp units.
  uint32_t jitter() const { return uint32_t(jitterQ4_ >> 4); }
  int64_t cumulativeLost() const { return sequence_.cumulativeLost(); }
  uint64_t received() const { return sequence_.received(); }

 private:
  uint32_t clockRate_;
  SequenceUnwrapper sequence_;
  bool haveTransit_ = false;
  TimePoint firstArrival_{};
  int32_t lastTransit_ = 0;
  uint64_t jitterQ4_ = 0;  // jitter * 16, as appendix A.8 keeps it
  int64_t expectedPrior_ = 0;
  uint64_t receivedPrior_ = 0;
  bool newSinceReport_ = false;
  std::optional<uint64_t> lastSrNtp_;
  TimePoint lastSrArrival_{};
};

}  // namespace kaiwa::rtp

#pragma once
// RTCP (RFC 3550 section 6, RFC 4585 feedback, RFC 5104 FIR, REMB, transport-cc): a safe walk over a compound
// packet (or a reduced-size one, RFC 5506), views of the packet types an SFU reads, and builders into a caller's
// buffer. Nothing here allocates or throws.
//
// Every RTCP packet starts with the same word:
//   0                   1                   2                   3
//   0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |V=2|P| RC/FMT  |      PT       |   length (32-bit words - 1)   |
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// Feedback messages (RFC 4585 section 6.1) follow it with the packet sender's SSRC, the media source's SSRC and the
// feedback control information (FCI).
#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

namespace kaiwa::rtp::rtcp {

inline constexpr size_t kHeaderSize = 4;
inline constexpr size_t kMaxReportBlocks = 31;  // RC is five bits

enum class PacketType : uint8_t {
  kSenderReport = 200,
  kReceiverReport = 201,
  kSdes = 202,
  kBye = 203,
  kApp = 204,
  kRtpFeedback = 205,      // RTPFB
  kPayloadFeedback = 206,  // PSFB
  kExtendedReport = 207,
};
// FMT values of RTPFB and PSFB.
inline constexpr uint8_t kFmtNack = 1;
inline constexpr uint8_t kFmtTransportCc = 15;
inline constexpr uint8_t kFmtPli = 1;
inline constexpr uint8_t kFmtFir = 4;
inline constexpr uint8_t kFmtAfb = 15;  // application layer feedback: REMB

enum class WalkError : uint8_t {
  kNone,
  kTruncatedHeader,  // fewer than 4 bytes left
  kBadVersion,       // V != 2
  kOverrun,          // the length runs past the datagram
  kBadPadding,       // P set with a count of 0 or more than the body
};
std::string_view toString(WalkError e);

// One packet of a compound packet.
struct Block {
  uint8_t count;                   // RC, SC or FMT
  uint8_t type;                    // PT
  std::span<const uint8_t> bytes;  // the whole packet, header and padding included
  std::span<const uint8_t> body;   // after the 4-byte header, without padding
};

// Walks a compound packet. next() gives each packet in turn; it returns nullopt at the end or at the first packet
// that is malformed, and error() says which (kNone at a clean end). It never reads past `datagram`. It does not
// insist that the first packet is an SR or RR: reduced-size RTCP (RFC 5506) sends feedback alone.
class CompoundReader {
 public:
  explicit CompoundReader(std::span<const uint8_t> datagram) : rest_(datagram) {}
  std::optional<Block> next();
  WalkError error() const { return error_; }

 private:
  std::span<const uint8_t> rest_;
  WalkError error_ = WalkError::kNone;
};

// RFC 3550 appendix A.2's checks on a whole datagram: it walks cleanly to its end, its first packet is an SR or RR
// (not required where reduced-size RTCP was negotiated, RFC 5506 section 3.4.2) and only its last packet is padded.
enum class CompoundCheck : uint8_t { kValid, kMalformed, kEmpty, kNoReportFirst, kPaddingNotLast };
CompoundCheck checkCompound(std::span<const uint8_t> datagram, bool reducedSize);

struct ReportBlock {
  uint32_t ssrc = 0;
  uint8_t fractionLost = 0;
  int32_t cumulativeLost = 0;  // 24-bit signed on the wire
  uint32_t extendedHighestSequence = 0;
  uint32_t jitter = 0;
  uint32_t lastSenderReport = 0;            // LSR: the middle 32 bits of the SR's NTP timestamp
  uint32_t delaySinceLastSenderReport = 0;  // DLSR, in 1/65536 s
  bool operator==(const ReportBlock&) const = default;
};

struct SenderInfo {
  uint64_t ntpTimestamp = 0;
  uint32_t rtpTimestamp = 0;
  uint32_t packetCount = 0;
  uint32_t octetCount = 0;
  bool operator==(const SenderInfo&) const = default;
};

// The report blocks of an SR or RR, read on demand.
class ReportBlocks {
 public:
  ReportBlocks() = default;
  ReportBlocks(std::span<const uint8_t> bytes, size_t count) : bytes_(bytes), count_(count) {}
  size_t size() const { return count_; }
  ReportBlock operator[](size_t i) const;

 private:
  std::span<const uint8_t> bytes_;
  size_t count_ = 0;
};

struct SenderReport {
  uint32_t ssrc;
  SenderInfo info;
  ReportBlocks reports;
  static std::optional<SenderReport> parse(const Block& b);
};

struct ReceiverReport {
  uint32_t ssrc;
  ReportBlocks reports;
  static std::optional<ReceiverReport> parse(const Block& b);
};

// SDES (RFC 3550 section 6.5): each chunk's SSRC and its CNAME if present. Every chunk is checked at parse time
// (items inside the packet, a terminating null item).
class Sdes {
 public:
  struct Chunk {
    uint32_t ssrc;
    std::string_view cname;  // empty if the chunk has none
  };
  static std::optional<Sdes> parse(const Block& b);
  size_t size() const { return count_; }
  Chunk operator[](size_t i) const { return chunks_[i]; }

 private:
  std::array<Chunk, kMaxReportBlocks> chunks_{};
  size_t count_ = 0;
};

struct Bye {
  std::span<const uint8_t> ssrcBytes;
  std::string_view reason;  // empty if none
  size_t size() const { return ssrcBytes.size() / 4; }
  uint32_t ssrc(size_t i) const;
  static std::optional<Bye> parse(const Block& b);
};

// The common part of RTPFB and PSFB messages.
struct FeedbackHeader {
  uint32_t senderSsrc;
  uint32_t mediaSsrc;
};

// Generic NACK (RFC 4585 section 6.2.1): FCI items of a packet id (PID) and a bitmask of the 16 following (BLP).
class Nack {
 public:
  struct Item {
    uint16_t pid;
    uint16_t blp;
  };
  static std::optional<Nack> parse(const Block& b);
  FeedbackHeader header() const { return header_; }
  size_t itemCount() const { return fci_.size() / 4; }
  Item item(size_t i) const;
  // The sequence numbers asked for, in item order; at most 17 per item.
  template <class F>
  void forEachSequenceNumber(F&& f) const {
    for (size_t i = 0; i < itemCount(); ++i) {
      const Item it = item(i);
      f(it.pid);
      for (int bit = 0; bit < 16; ++bit) {
        if (it.blp & (1u << bit)) f(uint16_t(it.pid + bit + 1));
      }
    }
  }
  // Writes them into `out`; returns how many were written (those that do not fit are left out).
  size_t sequenceNumbers(std::span<uint16_t> out) const;

 private:
  FeedbackHeader header_{};
  std::span<const uint8_t> fci_;
};

struct Pli {
  FeedbackHeader header;
  static std::optional<Pli> parse(const Block& b);
};

// FIR (RFC 5104 section 4.3.1): one entry per media sender asked for a decoder refresh. The media SSRC of the common
// header is unused (0).
class Fir {
 public:
  struct Entry {
    uint32_t ssrc;
    uint8_t sequenceNumber;
    bool operator==(const Entry&) const = default;
  };
  static std::optional<Fir> parse(const Block& b);
  FeedbackHeader header() const { return header_; }
  size_t size() const { return fci_.size() / 8; }
  Entry operator[](size_t i) const;

 private:
  FeedbackHeader header_{};
  std::span<const uint8_t> fci_;
};

// REMB (draft-alvestrand-rmcat-remb): PSFB FMT 15 whose FCI starts with "REMB".
class Remb {
 public:
  static std::optional<Remb> parse(const Block& b);
  FeedbackHeader header() const { return header_; }
  // Bits per second; saturates at UINT64_MAX for exponents that would overflow.
  uint64_t bitrate() const { return bitrate_; }
  size_t size() const { return ssrcs_.size() / 4; }
  uint32_t ssrc(size_t i) const;

 private:
  FeedbackHeader header_{};
  uint64_t bitrate_ = 0;
  std::span<const uint8_t> ssrcs_;
};

// transport-cc feedback (draft-holmer-rmcat-transport-wide-cc-extensions section 3.1): the fixed fields only; the
// packet status chunks and deltas are left for the bandwidth estimator.
struct TransportFeedback {
  FeedbackHeader header;
  uint16_t baseSequence;
  uint16_t statusCount;
  int32_t referenceTime;  // 24-bit signed, multiples of 64 ms
  uint8_t feedbackCount;
  std::span<const uint8_t> chunks;  // what follows the fixed fields
  static std::optional<TransportFeedback> parse(const Block& b);
};

// Builders. Each writes one RTCP packet at the start of `out` and returns its length, or nullopt (and writes
// nothing meaningful) if `out` is too small or the arguments cannot be encoded (more than 31 report blocks, an SDES
// text over 255 bytes, more than 255 REMB SSRCs).
std::optional<size_t> writeSenderReport(std::span<uint8_t> out, uint32_t ssrc, const SenderInfo& info,
                                        std::span<const ReportBlock> reports);
std::optional<size_t> writeReceiverReport(std::span<uint8_t> out, uint32_t ssrc, std::span<const ReportBlock> reports);
std::optional<size_t> writeSdesCname(std::span<uint8_t> out, uint32_t ssrc, std::string_view cname);
std::optional<size_t> writeBye(std::span<uint8_t> out, std::span<const uint32_t> ssrcs, std::string_view reason = {});
// Groups the sequence numbers into PID+BLP items: a number within 16 after the current item's PID joins it, any
// other starts a new item, so an ascending list gives the fewest items.
std::optional<size_t> writeNack(std::span<uint8_t> out, FeedbackHeader h, std::span<const uint16_t> sequenceNumbers);
std::optional<size_t> writePli(std::span<uint8_t> out, FeedbackHeader h);
std::optional<size_t> writeFir(std::span<uint8_t> out, uint32_t senderSsrc, std::span<const Fir::Entry> entries);
// The bitrate is encoded as an 18-bit mantissa and a 6-bit exponent, rounded down.
std::optional<size_t> writeRemb(std::span<uint8_t> out, uint32_t senderSsrc, uint64_t bitrate,
                                std::span<const uint32_t> ssrcs);

// A compound packet built packet by packet into one buffer. Every method is a no-op once something did not fit;
// ok() then says false. RFC 3550 wants an SR or RR first and an SDES CNAME in every compound packet; RFC 5506 lets
// feedback go alone where rtcp-rsize was negotiated. The builder leaves that order to the caller.
class CompoundBuilder {
 public:
  explicit CompoundBuilder(std::span<uint8_t> out) : out_(out) {}
  CompoundBuilder& senderReport(uint32_t ssrc, const SenderInfo& info, std::span<const ReportBlock> reports = {});
  CompoundBuilder& receiverReport(uint32_t ssrc, std::span<const ReportBlock> reports = {});
  CompoundBuilder& sdesCname(uint32_t ssrc, std::string_view cname);
  CompoundBuilder& bye(std::span<const uint32_t> ssrcs, std::string_view reason = {});
  CompoundBuilder& nack(FeedbackHeader h, std::span<const uint16_t> sequenceNumbers);
  CompoundBuilder& pli(FeedbackHeader h);
  CompoundBuilder& fir(uint32_t senderSsrc, std::span<const Fir::Entry> entries);
  CompoundBuilder& remb(uint32_t senderSsrc, uint64_t bitrate, std::span<const uint32_t> ssrcs);

  bool ok() const { return ok_; }
  size_t size() const { return ok_ ? size_ : 0; }
  std::span<const uint8_t> bytes() const { return {out_.data(), size()}; }

 private:
  CompoundBuilder& add(std::optional<size_t> written);
  std::span<uint8_t> rest() const { return ok_ ? out_.subspan(size_) : std::span<uint8_t>{}; }

  std::span<uint8_t> out_;
  size_t size_ = 0;
  bool ok_ = true;
};

}  // namespace kaiwa::rtp::rtcp

#include "rtp/rtcp.hpp"

#include <cstring>
#include <limits>

#include "common/bytes.hpp"

namespace kaiwa::rtp::rtcp {

using common::be16;
using common::be24;
using common::be32;
using common::put16;
using common::put24;
using common::put32;

std::string_view toString(WalkError e) {
  switch (e) {
    case WalkError::kNone:
      return "none";
    case WalkError::kTruncatedHeader:
      return "truncated header";
    case WalkError::kBadVersion:
      return "bad version";
    case WalkError::kOverrun:
      return "length overrun";
    case WalkError::kBadPadding:
      return "bad padding";
  }
  return "?";
}

std::optional<Block> CompoundReader::next() {
  if (rest_.empty()) return std::nullopt;
  auto fail = [this](WalkError e) -> std::optional<Block> {
    error_ = e;
    rest_ = {};
    return std::nullopt;
  };
  if (rest_.size() < kHeaderSize) return fail(WalkError::kTruncatedHeader);
  if ((rest_[0] >> 6) != 2) return fail(WalkError::kBadVersion);
  const size_t length = (size_t(be16(rest_.data() + 2)) + 1) * 4;
  if (length > rest_.size()) return fail(WalkError::kOverrun);
  Block b;
  b.count = rest_[0] & 0x1F;
  b.type = rest_[1];
  b.bytes = rest_.first(length);
  b.body = b.bytes.subspan(kHeaderSize);
  if (rest_[0] & 0x20) {
    const size_t padding = b.bytes[length - 1];
    if (padding == 0 || padding > b.body.size()) return fail(WalkError::kBadPadding);
    b.body = b.body.first(b.body.size() - padding);
  }
  rest_ = rest_.subspan(length);
  return b;
}

CompoundCheck checkCompound(std::span<const uint8_t> datagram, bool reducedSize) {
  CompoundReader r(datagram);
  size_t count = 0;
  bool padded = false;
  while (auto b = r.next()) {
    if (padded) return CompoundCheck::kPaddingNotLast;
    padded = (b->bytes[0] & 0x20) != 0;
    if (count++ == 0 && !reducedSize && b->type != uint8_t(PacketType::kSenderReport) &&
        b->type != uint8_t(PacketType::kReceiverReport))
      return CompoundCheck::kNoReportFirst;
  }
  if (r.error() != WalkError::kNone) return CompoundCheck::kMalformed;
  return count == 0 ? CompoundCheck::kEmpty : CompoundCheck::kValid;
}

namespace {

constexpr size_t kReportBlockSize = 24;
constexpr size_t kSenderInfoSize = 20;
constexpr size_t kFeedbackHeaderSize = 8;
constexpr uint8_t kSdesCname = 1;

bool is(const Block& b, PacketType t) { return b.type == uint8_t(t); }
size_t padded4(size_t n) { return (n + 3) & ~size_t(3); }

FeedbackHeader feedbackHeader(std::span<const uint8_t> body) { return {be32(body.data()), be32(body.data() + 4)}; }

// The common header of a packet of `size` bytes (a multiple of 4).
void writeHeader(uint8_t* p, uint8_t count, PacketType type, size_t size) {
  p[0] = uint8_t(0x80 | (count & 0x1F));
  p[1] = uint8_t(type);
  put16(p + 2, uint16_t(size / 4 - 1));
}

void writeFeedbackHeader(uint8_t* p, uint8_t fmt, PacketType type, size_t size, FeedbackHeader h) {
  writeHeader(p, fmt, type, size);
  put32(p + 4, h.senderSsrc);
  put32(p + 8, h.mediaSsrc);
}

void writeReportBlock(uint8_t* p, const ReportBlock& r) {
  put32(p, r.ssrc);
  p[4] = r.fractionLost;
  // Clamped to the 24-bit signed range (RFC 3550 section 6.4.1).
  const int32_t lost = r.cumulativeLost > 0x7FFFFF    ? 0x7FFFFF
                       : r.cumulativeLost < -0x800000 ? -0x800000
                                                      : r.cumulativeLost;
  put24(p + 5, uint32_t(lost) & 0xFFFFFF);
  put32(p + 8, r.extendedHighestSequence);
  put32(p + 12, r.jitter);
  put32(p + 16, r.lastSenderReport);
  put32(p + 20, r.delaySinceLastSenderReport);
}

bool fits(std::span<uint8_t> out, size_t size) { return size <= out.size() && size / 4 - 1 <= 0xFFFF; }

}  // namespace

ReportBlock ReportBlocks::operator[](size_t i) const {
  const uint8_t* p = bytes_.data() + i * kReportBlockSize;
  ReportBlock r;
  r.ssrc = be32(p);
  r.fractionLost = p[4];
  uint32_t lost = be24(p + 5);
  if (lost & 0x800000) lost |= 0xFF000000u;
  r.cumulativeLost = int32_t(lost);
  r.extendedHighestSequence = be32(p + 8);
  r.jitter = be32(p + 12);
  r.lastSenderReport = be32(p + 16);
  r.delaySinceLastSenderReport = be32(p + 20);
  return r;
}

std::optional<SenderReport> SenderReport::parse(const Block& b) {
  if (!is(b, PacketType::kSenderReport)) return std::nullopt;
  const size_t need = 4 + kSenderInfoSize + kReportBlockSize * b.count;
  if (b.body.size() < need) return std::nullopt;
  const uint8_t* p = b.body.data();
  SenderReport sr;
  sr.ssrc = be32(p);
  sr.info.ntpTimestamp = uint64_t(be32(p + 4)) << 32 | be32(p + 8);
  sr.info.rtpTimestamp = be32(p + 12);
  sr.info.packetCount = be32(p + 16);
  sr.info.octetCount = be32(p + 20);
  sr.reports = ReportBlocks(b.body.subspan(4 + kSenderInfoSize, kReportBlockSize * b.count), b.count);
  return sr;
}

std::optional<ReceiverReport> ReceiverReport::parse(const Block& b) {
  if (!is(b, PacketType::kReceiverReport)) return std::nullopt;
  if (b.body.size() < 4 + kReportBlockSize * b.count) return std::nullopt;
  return ReceiverReport{be32(b.body.data()), ReportBlocks(b.body.subspan(4, kReportBlockSize * b.count), b.count)};
}

std::optional<Sdes> Sdes::parse(const Block& b) {
  if (!is(b, PacketType::kSdes)) return std::nullopt;
  Sdes s;
  const auto body = b.body;
  size_t pos = 0;
  for (size_t c = 0; c < b.count; ++c) {
    if (body.size() - pos < 4) return std::nullopt;
    Chunk chunk{be32(body.data() + pos), {}};
    pos += 4;
    for (;;) {
      if (pos >= body.size()) return std::nullopt;  // no terminating null item
      const uint8_t type = body[pos];
      if (type == 0) {
        // The null item ends the chunk; the next chunk starts at a 32-bit boundary.
        pos = std::min(padded4(pos + 1), body.size());
        break;
      }
      if (body.size() - pos < 2) return std::nullopt;
      const size_t length = body[pos + 1];
      if (body.size() - pos - 2 < length) return std::nullopt;
      if (type == kSdesCname && chunk.cname.empty())
        chunk.cname = std::string_view(reinterpret_cast<const char*>(body.data() + pos + 2), length);
      pos += 2 + length;
    }
    s.chunks_[s.count_++] = chunk;
  }
  return s;
}

uint32_t Bye::ssrc(size_t i) const { return be32(ssrcBytes.data() + 4 * i); }

std::optional<Bye> Bye::parse(const Block& b) {
  if (!is(b, PacketType::kBye)) return std::nullopt;
  const size_t ssrcBytes = 4 * size_t(b.count);
  if (b.body.size() < ssrcBytes) return std::nullopt;
  Bye bye{b.body.first(ssrcBytes), {}};
  if (b.body.size() > ssrcBytes) {
    const size_t length = b.body[ssrcBytes];
    if (b.body.size() - ssrcBytes - 1 < length) return std::nullopt;
    bye.reason = std::string_view(reinterpret_cast<const char*>(b.body.data() + ssrcBytes + 1), length);
  }
  return bye;
}

Nack::Item Nack::item(size_t i) const { return {be16(fci_.data() + 4 * i), be16(fci_.data() + 4 * i + 2)}; }

std::optional<Nack> Nack::parse(const Block& b) {
  if (!is(b, PacketType::kRtpFeedback) || b.count != kFmtNack) return std::nullopt;
  if (b.body.size() < kFeedbackHeaderSize + 4) return std::nullopt;
  Nack n;
  n.header_ = feedbackHeader(b.body);
  const auto fci = b.body.subspan(kFeedbackHeaderSize);
  n.fci_ = fci.first(fci.size() & ~size_t(3));
  return n;
}

size_t Nack::sequenceNumbers(std::span<uint16_t> out) const {
  size_t n = 0;
  forEachSequenceNumber([&](uint16_t seq) {
    if (n < out.size()) out[n++] = seq;
  });
  return n;
}

std::optional<Pli> Pli::parse(const Block& b) {
  if (!is(b, PacketType::kPayloadFeedback) || b.count != kFmtPli) return std::nullopt;
  if (b.body.size() < kFeedbackHeaderSize) return std::nullopt;
  return Pli{feedbackHeader(b.body)};
}

Fir::Entry Fir::operator[](size_t i) const { return {be32(fci_.data() + 8 * i), fci_[8 * i + 4]}; }

std::optional<Fir> Fir::parse(const Block& b) {
  if (!is(b, PacketType::kPayloadFeedback) || b.count != kFmtFir) return std::nullopt;
  if (b.body.size() < kFeedbackHeaderSize + 8) return std::nullopt;
  Fir f;
  f.header_ = feedbackHeader(b.body);
  const auto fci = b.body.subspan(kFeedbackHeaderSize);
  f.fci_ = fci.first(fci.size() - fci.size() % 8);
  return f;
}

uint32_t Remb::ssrc(size_t i) const { return be32(ssrcs_.data() + 4 * i); }

std::optional<Remb> Remb::parse(const Block& b) {
  if (!is(b, PacketType::kPayloadFeedback) || b.count != kFmtAfb) return std::nullopt;
  if (b.body.size() < kFeedbackHeaderSize + 8) return std::nullopt;
  const uint8_t* fci = b.body.data() + kFeedbackHeaderSize;
  if (std::memcmp(fci, "REMB", 4) != 0) return std::nullopt;
  const size_t count = fci[4];
  if (b.body.size() - kFeedbackHeaderSize - 8 < 4 * count) return std::nullopt;
  Remb r;
  r.header_ = feedbackHeader(b.body);
  const unsigned exponent = fci[5] >> 2;
  const uint64_t mantissa = be24(fci + 5) & 0x3FFFF;
  r.bitrate_ =
      (mantissa << exponent) >> exponent == mantissa ? mantissa << exponent : std::numeric_limits<uint64_t>::max();
  r.ssrcs_ = b.body.subspan(kFeedbackHeaderSize + 8, 4 * count);
  return r;
}

std::optional<TransportFeedback> TransportFeedback::parse(const Block& b) {
  if (!is(b, PacketType::kRtpFeedback) || b.count != kFmtTransportCc) return std::nullopt;
  if (b.body.size() < kFeedbackHeaderSize + 8) return std::nullopt;
  const uint8_t* p = b.body.data() + kFeedbackHeaderSize;
  uint32_t reference = be24(p + 4);
  if (reference & 0x800000) reference |= 0xFF000000u;
  return TransportFeedback{feedbackHeader(b.body), be16(p), be16(p + 2),
                           int32_t(reference),     p[7],    b.body.subspan(kFeedbackHeaderSize + 8)};
}

std::optional<size_t> writeSenderReport(std::span<uint8_t> out, uint32_t ssrc, const SenderInfo& info,
                                        std::span<const ReportBlock> reports) {
  const size_t size = kHeaderSize + 4 + kSenderInfoSize + kReportBlockSize * reports.size();
  if (reports.size() > kMaxReportBlocks || !fits(out, size)) return std::nullopt;
  uint8_t* p = out.data();
  writeHeader(p, uint8_t(reports.size()), PacketType::kSenderReport, size);
  put32(p + 4, ssrc);
  put32(p + 8, uint32_t(info.ntpTimestamp >> 32));
  put32(p + 12, uint32_t(info.ntpTimestamp));
  put32(p + 16, info.rtpTimestamp);
  put32(p + 20, info.packetCount);
  put32(p + 24, info.octetCount);
  for (size_t i = 0; i < reports.size(); ++i) writeReportBlock(p + 28 + kReportBlockSize * i, reports[i]);
  return size;
}

std::optional<size_t> writeReceiverReport(std::span<uint8_t> out, uint32_t ssrc, std::span<const ReportBlock> reports) {
  const size_t size = kHeaderSize + 4 + kReportBlockSize * reports.size();
  if (reports.size() > kMaxReportBlocks || !fits(out, size)) return std::nullopt;
  uint8_t* p = out.data();
  writeHeader(p, uint8_t(reports.size()), PacketType::kReceiverReport, size);
  put32(p + 4, ssrc);
  for (size_t i = 0; i < reports.size(); ++i) writeReportBlock(p + 8 + kReportBlockSize * i, reports[i]);
  return size;
}

std::optional<size_t> writeSdesCname(std::span<uint8_t> out, uint32_t ssrc, std::string_view cname) {
  // SSRC, the CNAME item (type, length, text), at least one null octet, padded to 32 bits.
  const size_t size = kHeaderSize + padded4(4 + 2 + cname.size() + 1);
  if (cname.size() > 255 || !fits(out, size)) return std::nullopt;
  uint8_t* p = out.data();
  std::memset(p, 0, size);
  writeHeader(p, 1, PacketType::kSdes, size);
  put32(p + 4, ssrc);
  p[8] = kSdesCname;
  p[9] = uint8_t(cname.size());
  if (!cname.empty()) std::memcpy(p + 10, cname.data(), cname.size());
  return size;
}

std::optional<size_t> writeBye(std::span<uint8_t> out, std::span<const uint32_t> ssrcs, std::string_view reason) {
  const size_t size = kHeaderSize + 4 * ssrcs.size() + (reason.empty() ? 0 : padded4(1 + reason.size()));
  if (ssrcs.size() > kMaxReportBlocks || reason.size() > 255 || !fits(out, size)) return std::nullopt;
  uint8_t* p = out.data();
  std::memset(p, 0, size);
  writeHeader(p, uint8_t(ssrcs.size()), PacketType::kBye, size);
  for (size_t i = 0; i < ssrcs.size(); ++i) put32(p + 4 + 4 * i, ssrcs[i]);
  if (!reason.empty()) {
    uint8_t* r = p + 4 + 4 * ssrcs.size();
    r[0] = uint8_t(reason.size());
    std::memcpy(r + 1, reason.data(), reason.size());
  }
  return size;
}

std::optional<size_t> writeNack(std::span<uint8_t> out, FeedbackHeader h, std::span<const uint16_t> sequenceNumbers) {
  if (sequenceNumbers.empty()) return std::nullopt;
  // First pass counts the items, so that nothing is written when they do not fit.
  size_t items = 0;
  uint16_t pid = 0;
  for (size_t i = 0; i < sequenceNumbers.size(); ++i) {
    if (i > 0 && uint16_t(sequenceNumbers[i] - pid) <= 16) continue;  // joins the current item (or repeats its PID)
    ++items;
    pid = sequenceNumbers[i];
  }
  const size_t size = kHeaderSize + kFeedbackHeaderSize + 4 * items;
  if (!fits(out, size)) return std::nullopt;
  uint8_t* p = out.data();
  writeFeedbackHeader(p, kFmtNack, PacketType::kRtpFeedback, size, h);
  uint8_t* item = p + kHeaderSize + kFeedbackHeaderSize - 4;  // before the first item
  uint16_t blp = 0;
  for (size_t i = 0; i < sequenceNumbers.size(); ++i) {
    const uint16_t seq = sequenceNumbers[i];
    const uint16_t d = uint16_t(seq - pid);
    if (i > 0 && d == 0) continue;  // a repeat of the current PID
    if (i > 0 && d <= 16) {
      blp = uint16_t(blp | 1u << (d - 1));
      put16(item + 2, blp);
      continue;
    }
    item += 4;
    pid = seq;
    blp = 0;
    put16(item, pid);
    put16(item + 2, 0);
  }
  return size;
}

std::optional<size_t> writePli(std::span<uint8_t> out, FeedbackHeader h) {
  const size_t size = kHeaderSize + kFeedbackHeaderSize;
  if (!fits(out, size)) return std::nullopt;
  writeFeedbackHeader(out.data(), kFmtPli, PacketType::kPayloadFeedback, size, h);
  return size;
}

std::optional<size_t> writeFir(std::span<uint8_t> out, uint32_t senderSsrc, std::span<const Fir::Entry> entries) {
  const size_t size = kHeaderSize + kFeedbackHeaderSize + 8 * entries.size();
  if (entries.empty() || !fits(out, size)) return std::nullopt;
  uint8_t* p = out.data();
  writeFeedbackHeader(p, kFmtFir, PacketType::kPayloadFeedback, size, {senderSsrc, 0});
  for (size_t i = 0; i < entries.size(); ++i) {
    uint8_t* e = p + kHeaderSize + kFeedbackHeaderSize + 8 * i;
    put32(e, entries[i].ssrc);
    e[4] = entries[i].sequenceNumber;
    put24(e + 5, 0);
  }
  return size;
}

std::optional<size_t> writeRemb(std::span<uint8_t> out, uint32_t senderSsrc, uint64_t bitrate,
                                std::span<const uint32_t> ssrcs) {
  const size_t size = kHeaderSize + kFeedbackHeaderSize + 8 + 4 * ssrcs.size();
  if (ssrcs.size() > 255 || !fits(out, size)) return std::nullopt;
  unsigned exponent = 0;
  while ((bitrate >> exponent) > 0x3FFFF) ++exponent;
  const uint32_t mantissa = uint32_t(bitrate >> exponent);
  uint8_t* p = out.data();
  writeFeedbackHeader(p, kFmtAfb, PacketType::kPayloadFeedback, size, {senderSsrc, 0});
  uint8_t* fci = p + kHeaderSize + kFeedbackHeaderSize;
  std::memcpy(fci, "REMB", 4);
  fci[4] = uint8_t(ssrcs.size());
  put24(fci + 5, uint32_t(exponent) << 18 | mantissa);
  for (size_t i = 0; i < ssrcs.size(); ++i) put32(fci + 8 + 4 * i, ssrcs[i]);
  return size;
}

CompoundBuilder& CompoundBuilder::add(std::optional<size_t> written) {
  if (!ok_) return *this;
  if (!written) {
    ok_ = false;
  } else {
    size_ += *written;
  }
  return *this;
}

CompoundBuilder& CompoundBuilder::senderReport(uint32_t ssrc, const SenderInfo& info,
                                               std::span<const ReportBlock> reports) {
  return add(ok_ ? writeSenderReport(rest(), ssrc, info, reports) : std::nullopt);
}
CompoundBuilder& CompoundBuilder::receiverReport(uint32_t ssrc, std::span<const ReportBlock> reports) {
  return add(ok_ ? writeReceiverReport(rest(), ssrc, reports) : std::nullopt);
}
CompoundBuilder& CompoundBuilder::sdesCname(uint32_t ssrc, std::string_view cname) {
  return add(ok_ ? writeSdesCname(rest(), ssrc, cname) : std::nullopt);
}
CompoundBuilder& CompoundBuilder::bye(std::span<const uint32_t> ssrcs, std::string_view reason) {
  return add(ok_ ? writeBye(rest(), ssrcs, reason) : std::nullopt);
}
CompoundBuilder& CompoundBuilder::nack(FeedbackHeader h, std::span<const uint16_t> sequenceNumbers) {
  return add(ok_ ? writeNack(rest(), h, sequenceNumbers) : std::nullopt);
}
CompoundBuilder& CompoundBuilder::pli(FeedbackHeader h) { return add(ok_ ? writePli(rest(), h) : std::nullopt); }
CompoundBuilder& CompoundBuilder::fir(uint32_t senderSsrc, std::span<const Fir::Entry> entries) {
  return add(ok_ ? writeFir(rest(), senderSsrc, entries) : std::nullopt);
}
CompoundBuilder& CompoundBuilder::remb(uint32_t senderSsrc, uint64_t bitrate, std::span<const uint32_t> ssrcs) {
  return add(ok_ ? writeRemb(rest(), senderSsrc, bitrate, ssrcs) : std::nullopt);
}

}  // namespace kaiwa::rtp::rtcp

// fuzz_rtcp: the RTCP compound walk, the packet views and the builders (rtp/rtcp).
//  1. CompoundReader never reads past the input: every block lies inside it, the blocks tile it from the start,
//     and the walk ends either cleanly at the end or with an error.
//  2. Every packet type parser runs on every block; what parses is built again with the builders and parsed again
//     to the same values (decode → encode → decode): SR, RR, SDES CNAME, BYE, NACK (the same set of sequence
//     numbers: the builder may group them differently), PLI, FIR, REMB (unless the bitrate saturated).
//     transport-cc: the reader never gives more than the status count, consecutive sequence numbers from the base,
//     and when it walks to the end cleanly, the received packets built again (TransportFeedbackBuilder) read back
//     with the same sequence numbers and arrival times relative to the first one. The bandwidth estimator takes
//     every transport-cc message (valid or not) for packets it sent, twice, and its estimate stays within its bounds.
//  3. The rebuilt packets, put together with CompoundBuilder, walk cleanly to as many blocks.
//  4. checkCompound agrees with the walk (malformed only when the walk failed) and, with reduced size allowed,
//     never asks for a report first.
#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "bwe/estimator.hpp"
#include "fuzz_util.hpp"
#include "rtp/rtcp.hpp"
#include "rtp/transport_feedback.hpp"

using namespace kaiwa;
using namespace kaiwa::rtp::rtcp;

namespace {

// Rebuilt packets are at most twice the size of what they were parsed from (a NACK's numbers may regroup into up
// to twice the items); the buffers are sized for that per input.
std::vector<uint8_t> scratch;

Block one(std::optional<size_t> n) {
  FUZZ_CHECK(n.has_value());
  CompoundReader r(std::span<const uint8_t>(scratch.data(), *n));
  auto b = r.next();
  FUZZ_CHECK(b.has_value());
  FUZZ_CHECK(!r.next() && r.error() == WalkError::kNone);
  return *b;
}

std::vector<ReportBlock> blocks(const ReportBlocks& r) {
  std::vector<ReportBlock> v;
  for (size_t i = 0; i < r.size(); ++i) v.push_back(r[i]);
  return v;
}

std::vector<uint16_t> lost(const Nack& n) {
  std::vector<uint16_t> v;
  n.forEachSequenceNumber([&](uint16_t s) { v.push_back(s); });
  std::sort(v.begin(), v.end());
  v.erase(std::unique(v.begin(), v.end()), v.end());
  return v;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const uint8_t> in(data, size);
  CompoundReader reader(in);
  size_t offset = 0, count = 0;
  scratch.assign(2 * size + 64, 0);
  std::vector<uint8_t> compound(2 * size + 64);
  CompoundBuilder rebuilt(compound);
  size_t rebuiltCount = 0;
  while (auto b = reader.next()) {
    ++count;
    FUZZ_CHECK(b->bytes.data() == data + offset);
    offset += b->bytes.size();
    FUZZ_CHECK(offset <= size && b->bytes.size() >= kHeaderSize && b->bytes.size() % 4 == 0);
    FUZZ_CHECK(b->body.data() == b->bytes.data() + kHeaderSize && b->body.size() <= b->bytes.size() - kHeaderSize);

    if (auto sr = SenderReport::parse(*b)) {
      auto reports = blocks(sr->reports);
      auto again = SenderReport::parse(one(writeSenderReport(scratch, sr->ssrc, sr->info, reports)));
      FUZZ_CHECK(again && again->ssrc == sr->ssrc && again->info == sr->info && blocks(again->reports) == reports);
      rebuilt.senderReport(sr->ssrc, sr->info, reports);
      ++rebuiltCount;
    }
    if (auto rr = ReceiverReport::parse(*b)) {
      auto reports = blocks(rr->reports);
      auto again = ReceiverReport::parse(one(writeReceiverReport(scratch, rr->ssrc, reports)));
      FUZZ_CHECK(again && again->ssrc == rr->ssrc && blocks(again->reports) == reports);
      rebuilt.receiverReport(rr->ssrc, reports);
      ++rebuiltCount;
    }
    if (auto sdes = Sdes::parse(*b)) {
      for (size_t i = 0; i < sdes->size(); ++i) {
        const auto chunk = (*sdes)[i];
        auto again = Sdes::parse(one(writeSdesCname(scratch, chunk.ssrc, chunk.cname)));
        FUZZ_CHECK(again && again->size() == 1 && (*again)[0].ssrc == chunk.ssrc && (*again)[0].cname == chunk.cname);
      }
    }
    if (auto bye = Bye::parse(*b)) {
      std::vector<uint32_t> ssrcs;
      for (size_t i = 0; i < bye->size(); ++i) ssrcs.push_back(bye->ssrc(i));
      auto again = Bye::parse(one(writeBye(scratch, ssrcs, bye->reason)));
      FUZZ_CHECK(again && again->size() == ssrcs.size() && again->reason == bye->reason);
      for (size_t i = 0; i < ssrcs.size(); ++i) FUZZ_CHECK(again->ssrc(i) == ssrcs[i]);
    }
    if (auto nack = Nack::parse(*b)) {
      std::vector<uint16_t> seqs;
      nack->forEachSequenceNumber([&](uint16_t s) { seqs.push_back(s); });
      std::array<uint16_t, 8> few{};
      FUZZ_CHECK(nack->sequenceNumbers(few) == std::min(few.size(), seqs.size()));
      auto again = Nack::parse(one(writeNack(scratch, nack->header(), seqs)));
      FUZZ_CHECK(again && again->header().senderSsrc == nack->header().senderSsrc &&
                 again->header().mediaSsrc == nack->header().mediaSsrc);
      FUZZ_CHECK(lost(*again) == lost(*nack));
      rebuilt.nack(nack->header(), seqs);
      ++rebuiltCount;
    }
    if (auto pli = Pli::parse(*b)) {
      auto again = Pli::parse(one(writePli(scratch, pli->header)));
      FUZZ_CHECK(again && again->header.senderSsrc == pli->header.senderSsrc &&
                 again->header.mediaSsrc == pli->header.mediaSsrc);
      rebuilt.pli(pli->header);
      ++rebuiltCount;
    }
    if (auto fir = Fir::parse(*b)) {
      std::vector<Fir::Entry> entries;
      for (size_t i = 0; i < fir->size(); ++i) entries.push_back((*fir)[i]);
      auto again = Fir::parse(one(writeFir(scratch, fir->header().senderSsrc, entries)));
      FUZZ_CHECK(again && again->size() == entries.size() && again->header().senderSsrc == fir->header().senderSsrc);
      for (size_t i = 0; i < entries.size(); ++i) FUZZ_CHECK((*again)[i] == entries[i]);
      rebuilt.fir(fir->header().senderSsrc, entries);
      ++rebuiltCount;
    }
    if (auto remb = Remb::parse(*b)) {
      std::vector<uint32_t> ssrcs;
      for (size_t i = 0; i < remb->size(); ++i) ssrcs.push_back(remb->ssrc(i));
      if (remb->bitrate() != UINT64_MAX) {
        auto again = Remb::parse(one(writeRemb(scratch, remb->header().senderSsrc, remb->bitrate(), ssrcs)));
        FUZZ_CHECK(again && again->bitrate() == remb->bitrate() && again->size() == ssrcs.size());
        for (size_t i = 0; i < ssrcs.size(); ++i) FUZZ_CHECK(again->ssrc(i) == ssrcs[i]);
      }
    }
    if (auto tcc = TransportFeedback::parse(*b)) {
      FUZZ_CHECK(tcc->chunks.data() >= b->body.data() && tcc->chunks.size() <= b->body.size());
      TransportFeedbackReader reader(*tcc);
      std::vector<TccPacket> got;
      while (auto p = reader.next()) {
        FUZZ_CHECK(p->sequence == uint16_t(tcc->baseSequence + got.size()));
        got.push_back(*p);
      }
      FUZZ_CHECK(got.size() <= tcc->statusCount);
      FUZZ_CHECK(reader.failed() == (got.size() < tcc->statusCount));
      FUZZ_CHECK(TransportFeedbackReader::valid(*tcc) == !reader.failed());
      {
        // A fresh estimator per message, so that an input reproduces alone.
        auto estimator = std::make_unique<bwe::BandwidthEstimator>();
        const auto t0 = TimePoint{} + std::chrono::seconds(1000) + std::chrono::microseconds(tcc->referenceTime);
        for (uint32_t i = 0; i < std::min<uint32_t>(tcc->statusCount, 64); ++i) {
          estimator->onPacketSent(uint16_t(tcc->baseSequence + i), t0 + std::chrono::milliseconds(i), 1200);
        }
        FUZZ_CHECK(estimator->onFeedback(t0 + Millis(100), *tcc) == !reader.failed());
        (void)estimator->onFeedback(t0 + Millis(150), *tcc);
        const bwe::EstimatorConfig bounds;
        FUZZ_CHECK(estimator->estimate() >= bounds.minBitrate && estimator->estimate() <= bounds.maxBitrate);
      }
      if (!reader.failed()) {
        // Rebuilt in messages of what fits; each received packet comes back at the same time relative to the first
        // received one of its message (the builder picks its own reference time).
        size_t i = 0;
        while (i < got.size()) {
          TransportFeedbackBuilder builder(tcc->header, tcc->feedbackCount);
          std::vector<TccPacket> in;
          for (; i < got.size(); ++i) {
            if (!got[i].received) continue;
            if (!builder.add(got[i].sequence, got[i].arrivalMicros)) break;
            in.push_back(got[i]);
          }
          if (builder.empty()) break;
          std::vector<uint8_t> out(builder.size());
          auto n = builder.write(out);
          FUZZ_CHECK(n && *n == out.size());
          CompoundReader one(out);
          auto block = one.next();
          FUZZ_CHECK(block.has_value());
          auto again = TransportFeedback::parse(*block);
          FUZZ_CHECK(again && TransportFeedbackReader::valid(*again));
          TransportFeedbackReader back(*again);
          size_t k = 0;
          int64_t first = 0;
          while (auto p = back.next()) {
            if (!p->received) continue;
            if (k == 0) first = p->arrivalMicros;
            FUZZ_CHECK(k < in.size() && p->sequence == in[k].sequence);
            FUZZ_CHECK(p->arrivalMicros - first == in[k].arrivalMicros - in[0].arrivalMicros);
            ++k;
          }
          FUZZ_CHECK(k == in.size());
        }
      }
    }
  }
  FUZZ_CHECK((reader.error() == WalkError::kNone) == (offset == size));
  const auto check = checkCompound(in, true);
  // A padded packet before the end is reported before any later walk error.
  if (reader.error() == WalkError::kNone) FUZZ_CHECK(check != CompoundCheck::kMalformed);
  if (check == CompoundCheck::kMalformed) FUZZ_CHECK(reader.error() != WalkError::kNone);
  FUZZ_CHECK(check != CompoundCheck::kNoReportFirst);
  (void)checkCompound(in, false);
  FUZZ_CHECK(count <= size / 4);

  FUZZ_CHECK(rebuilt.ok());
  CompoundReader again(rebuilt.bytes());
  size_t n = 0;
  while (again.next()) ++n;
  FUZZ_CHECK(again.error() == WalkError::kNone && n == rebuiltCount);
  return 0;
}

// RTCP: the compound walk and its errors, each packet type from hand-laid bytes (RFC 3550, 4585, 5104, REMB,
// transport-cc as Chromium sends them), and every builder read back by the parsers.
#include "rtp/rtcp.hpp"

#include <gtest/gtest.h>

#include <array>
#include <vector>

#include "vectors.hpp"

namespace kaiwa::rtp::rtcp {
namespace {

using test::hex;

std::vector<Block> walk(std::span<const uint8_t> bytes, WalkError* error = nullptr) {
  CompoundReader r(bytes);
  std::vector<Block> out;
  while (auto b = r.next()) out.push_back(*b);
  if (error) *error = r.error();
  return out;
}

// A compound packet as Chromium sends it from a receive-only transceiver: an RR with one report block, then an
// SDES with its 16-character CNAME.
const auto kReceiverReportSdes =
    hex("81c90007 00000001"                                       // RR, RC 1, length 7, sender SSRC 1
        "11223344 05 fffffe 00011234 00000020 3a983a98 00008000"  // block: lost 5/256, cumulative -2, ...
        "81ca0006 00000001"                                       // SDES, SC 1, length 6, SSRC 1
        "0110 4142434445464748494a4b4c4d4e4f50 00 00");           // CNAME "ABCDEFGHIJKLMNOP", a null item, padding

TEST(RtcpWalk, ChromiumReceiverReportAndSdes) {
  WalkError error{};
  auto blocks = walk(kReceiverReportSdes, &error);
  EXPECT_EQ(error, WalkError::kNone);
  ASSERT_EQ(blocks.size(), 2u);
  auto rr = ReceiverReport::parse(blocks[0]);
  ASSERT_TRUE(rr);
  EXPECT_EQ(rr->ssrc, 1u);
  ASSERT_EQ(rr->reports.size(), 1u);
  const ReportBlock r = rr->reports[0];
  EXPECT_EQ(r.ssrc, 0x11223344u);
  EXPECT_EQ(r.fractionLost, 5);
  EXPECT_EQ(r.cumulativeLost, -2);
  EXPECT_EQ(r.extendedHighestSequence, 0x00011234u);
  EXPECT_EQ(r.jitter, 0x20u);
  EXPECT_EQ(r.lastSenderReport, 0x3a983a98u);
  EXPECT_EQ(r.delaySinceLastSenderReport, 0x8000u);
  EXPECT_FALSE(SenderReport::parse(blocks[0]));

  auto sdes = Sdes::parse(blocks[1]);
  ASSERT_TRUE(sdes);
  ASSERT_EQ(sdes->size(), 1u);
  EXPECT_EQ((*sdes)[0].ssrc, 1u);
  EXPECT_EQ((*sdes)[0].cname, "ABCDEFGHIJKLMNOP");
}

TEST(RtcpWalk, SenderReportWithoutBlocks) {
  // RFC 3550 6.4.1: an SR with RC 0, NTP 0xe8e1d3a5.80000000 (half a second), RTP timestamp, counts.
  auto bytes = hex("80c80006 a1b2c3d4 e8e1d3a5 80000000 00015f90 00000064 0000ea60");
  auto blocks = walk(bytes);
  ASSERT_EQ(blocks.size(), 1u);
  auto sr = SenderReport::parse(blocks[0]);
  ASSERT_TRUE(sr);
  EXPECT_EQ(sr->ssrc, 0xa1b2c3d4u);
  EXPECT_EQ(sr->info.ntpTimestamp, 0xe8e1d3a580000000ull);
  EXPECT_EQ(sr->info.rtpTimestamp, 90000u);
  EXPECT_EQ(sr->info.packetCount, 100u);
  EXPECT_EQ(sr->info.octetCount, 60000u);
  EXPECT_EQ(sr->reports.size(), 0u);
}

TEST(RtcpWalk, ErrorsEndTheWalkAfterTheGoodPackets) {
  const auto pli = hex("81ce0002 00000001 11223344");
  struct Case {
    const char* name;
    std::string tail;
    WalkError error;
  } cases[] = {
      {"3 bytes left", "81ce00", WalkError::kTruncatedHeader},
      {"version 1", "41ce0002 00000001 11223344", WalkError::kBadVersion},
      {"length past the end", "81ce0003 00000001 11223344", WalkError::kOverrun},
      {"padding count 0", "a1ce0002 00000001 11223300", WalkError::kBadPadding},
      {"padding past the body", "a1ce0002 00000001 112233ff", WalkError::kBadPadding},
  };
  for (const auto& c : cases) {
    auto bytes = pli;
    auto tail = hex(c.tail);
    bytes.insert(bytes.end(), tail.begin(), tail.end());
    WalkError error{};
    auto blocks = walk(bytes, &error);
    EXPECT_EQ(blocks.size(), 1u) << c.name;
    EXPECT_EQ(error, c.error) << c.name << ": " << toString(error);
  }
  WalkError error{};
  EXPECT_TRUE(walk({}, &error).empty());
  EXPECT_EQ(error, WalkError::kNone);
}

TEST(RtcpWalk, PaddingIsTakenOffTheBody) {
  // A BYE with padding (P set, 4 bytes of padding whose last byte says 4).
  auto bytes = hex("a1cb0002 11223344 00000004");
  auto blocks = walk(bytes);
  ASSERT_EQ(blocks.size(), 1u);
  EXPECT_EQ(blocks[0].body.size(), 4u);
  auto bye = Bye::parse(blocks[0]);
  ASSERT_TRUE(bye);
  ASSERT_EQ(bye->size(), 1u);
  EXPECT_EQ(bye->ssrc(0), 0x11223344u);
  EXPECT_TRUE(bye->reason.empty());
}

TEST(RtcpWalk, CompoundRulesOfAppendixA2) {
  const auto pli = hex("81ce0002 00000001 11223344");
  EXPECT_EQ(checkCompound(kReceiverReportSdes, false), CompoundCheck::kValid);
  EXPECT_EQ(checkCompound(pli, false), CompoundCheck::kNoReportFirst);
  EXPECT_EQ(checkCompound(pli, true), CompoundCheck::kValid);  // rtcp-rsize
  EXPECT_EQ(checkCompound({}, true), CompoundCheck::kEmpty);
  auto truncated = kReceiverReportSdes;
  truncated.pop_back();
  EXPECT_EQ(checkCompound(truncated, false), CompoundCheck::kMalformed);
  // Padding on the last packet is allowed, on an earlier one not.
  auto padded = hex("a1cb0002 11223344 00000004");
  auto lastPadded = kReceiverReportSdes;
  lastPadded.insert(lastPadded.end(), padded.begin(), padded.end());
  EXPECT_EQ(checkCompound(lastPadded, false), CompoundCheck::kValid);
  auto paddedFirst = lastPadded;
  paddedFirst.insert(paddedFirst.end(), pli.begin(), pli.end());
  EXPECT_EQ(checkCompound(paddedFirst, false), CompoundCheck::kPaddingNotLast);
}

TEST(RtcpFeedback, ChromiumNackPliFirRembTransportCc) {
  // Reduced-size RTCP (RFC 5506): feedback packets one after another without an RR in front.
  auto bytes =
      hex("81cd0003 00000001 a1b2c3d4 0064 8011"                       // NACK: PID 100, BLP bits 0 and 4 and 15
          "81ce0002 00000001 a1b2c3d4"                                 // PLI
          "84ce0004 00000001 00000000 a1b2c3d4 07000000"               // FIR: SSRC a1b2c3d4, seq nr 7
          "8fce0005 00000001 00000000 52454d42 010a1234 a1b2c3d4"      // REMB: 1 SSRC, exp 2, mantissa 0x21234
          "8fcd0005 00000001 a1b2c3d4 0001 0002 fffffe 05 20020000");  // transport-cc: base 1, 2 packets, ref -2
  WalkError error{};
  auto blocks = walk(bytes, &error);
  EXPECT_EQ(error, WalkError::kNone);
  ASSERT_EQ(blocks.size(), 5u);

  auto nack = Nack::parse(blocks[0]);
  ASSERT_TRUE(nack);
  EXPECT_EQ(nack->header().senderSsrc, 1u);
  EXPECT_EQ(nack->header().mediaSsrc, 0xa1b2c3d4u);
  std::array<uint16_t, 32> seqs{};
  ASSERT_EQ(nack->sequenceNumbers(seqs), 4u);
  EXPECT_EQ(seqs[0], 100);
  EXPECT_EQ(seqs[1], 101);
  EXPECT_EQ(seqs[2], 105);
  EXPECT_EQ(seqs[3], 116);
  EXPECT_FALSE(Pli::parse(blocks[0]));

  auto pli = Pli::parse(blocks[1]);
  ASSERT_TRUE(pli);
  EXPECT_EQ(pli->header.mediaSsrc, 0xa1b2c3d4u);

  auto fir = Fir::parse(blocks[2]);
  ASSERT_TRUE(fir);
  ASSERT_EQ(fir->size(), 1u);
  EXPECT_EQ((*fir)[0].ssrc, 0xa1b2c3d4u);
  EXPECT_EQ((*fir)[0].sequenceNumber, 7);

  auto remb = Remb::parse(blocks[3]);
  ASSERT_TRUE(remb);
  EXPECT_EQ(remb->bitrate(), uint64_t(0x21234) << 2);
  ASSERT_EQ(remb->size(), 1u);
  EXPECT_EQ(remb->ssrc(0), 0xa1b2c3d4u);
  EXPECT_FALSE(TransportFeedback::parse(blocks[3]));

  auto tcc = TransportFeedback::parse(blocks[4]);
  ASSERT_TRUE(tcc);
  EXPECT_EQ(tcc->header.mediaSsrc, 0xa1b2c3d4u);
  EXPECT_EQ(tcc->baseSequence, 1);
  EXPECT_EQ(tcc->statusCount, 2);
  EXPECT_EQ(tcc->referenceTime, -2);
  EXPECT_EQ(tcc->feedbackCount, 5);
  EXPECT_EQ(tcc->chunks.size(), 4u);
  EXPECT_FALSE(Nack::parse(blocks[4]));
}

TEST(RtcpParse, ShortBodiesAreRefused) {
  // A block is a view: the bytes it points into must outlive the parse, so each case keeps its own.
  std::vector<std::vector<uint8_t>> kept;
  auto parseOne = [&kept](std::string_view h) {
    kept.push_back(hex(h));
    CompoundReader r(kept.back());
    auto b = r.next();
    EXPECT_TRUE(b) << h;
    return *b;
  };
  EXPECT_FALSE(SenderReport::parse(parseOne("81c80006 a1b2c3d4 e8e1d3a5 80000000 00015f90 00000064 0000ea60")));
  EXPECT_FALSE(
      ReceiverReport::parse(parseOne("82c90007 00000001 11223344 05fffffe 00011234 00000020 3a983a98 00008000")));
  EXPECT_FALSE(Nack::parse(parseOne("81cd0002 00000001 a1b2c3d4")));
  EXPECT_FALSE(Pli::parse(parseOne("81ce0001 00000001")));
  EXPECT_FALSE(Fir::parse(parseOne("84ce0002 00000001 00000000")));
  EXPECT_FALSE(Remb::parse(parseOne("8fce0004 00000001 00000000 52454d42 020a1234")));           // 2 SSRCs announced
  EXPECT_FALSE(Remb::parse(parseOne("8fce0005 00000001 00000000 58585858 010a1234 a1b2c3d4")));  // not "REMB"
  EXPECT_FALSE(Bye::parse(parseOne("82cb0001 11223344")));
  EXPECT_FALSE(Bye::parse(parseOne("81cb0002 11223344 09414243")));  // reason longer than the packet
  // SDES: an item running past the packet, and a chunk without its null item.
  EXPECT_FALSE(Sdes::parse(parseOne("81ca0002 00000001 01094142")));
  EXPECT_FALSE(Sdes::parse(parseOne("81ca0002 00000001 01024142")));
}

TEST(RtcpParse, RembBitrateSaturates) {
  auto bytes = hex("8fce0004 00000001 00000000 52454d42 00ffffff");  // exp 63, mantissa 0x3ffff
  CompoundReader r(bytes);
  auto remb = Remb::parse(*r.next());
  ASSERT_TRUE(remb);
  EXPECT_EQ(remb->bitrate(), UINT64_MAX);
}

TEST(RtcpBuild, SenderReportWithBlocksAndSdesCompound) {
  const SenderInfo info{0xe8e1d3a580000000ull, 90000, 100, 60000};
  const ReportBlock reports[] = {{0x11, 5, -2, 0x11234, 32, 0x3a983a98, 0x8000},
                                 {0x22, 255, 0x7fffff, 0xffffffff, 0, 0, 0}};
  std::array<uint8_t, 200> buf{};
  CompoundBuilder b(buf);
  b.senderReport(0xa1b2c3d4, info, reports).sdesCname(0xa1b2c3d4, "kaiwa-sfu").pli({0xa1b2c3d4, 0x33});
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b.size(), 28u + 48 + 20 + 12);
  WalkError error{};
  auto blocks = walk(b.bytes(), &error);
  EXPECT_EQ(error, WalkError::kNone);
  ASSERT_EQ(blocks.size(), 3u);
  auto sr = SenderReport::parse(blocks[0]);
  ASSERT_TRUE(sr);
  EXPECT_EQ(sr->ssrc, 0xa1b2c3d4u);
  EXPECT_EQ(sr->info, info);
  ASSERT_EQ(sr->reports.size(), 2u);
  EXPECT_EQ(sr->reports[0], reports[0]);
  EXPECT_EQ(sr->reports[1], reports[1]);
  auto sdes = Sdes::parse(blocks[1]);
  ASSERT_TRUE(sdes);
  EXPECT_EQ((*sdes)[0].cname, "kaiwa-sfu");
  EXPECT_EQ(Pli::parse(blocks[2])->header.mediaSsrc, 0x33u);
}

TEST(RtcpBuild, ReceiverReportClampsCumulativeLoss) {
  const ReportBlock reports[] = {{1, 0, 0x1000000, 0, 0, 0, 0}, {2, 0, -0x1000000, 0, 0, 0, 0}};
  std::array<uint8_t, 100> buf{};
  auto n = writeReceiverReport(buf, 9, reports);
  ASSERT_TRUE(n);
  EXPECT_EQ(*n, 8u + 48);
  CompoundReader r(std::span<const uint8_t>(buf.data(), *n));
  auto rr = ReceiverReport::parse(*r.next());
  ASSERT_TRUE(rr);
  EXPECT_EQ(rr->reports[0].cumulativeLost, 0x7fffff);
  EXPECT_EQ(rr->reports[1].cumulativeLost, -0x800000);
}

TEST(RtcpBuild, NackGroupsIntoItemsAcrossTheWrap) {
  std::array<uint8_t, 100> buf{};
  const uint16_t lost[] = {65534, 65535, 0, 1, 16, 17, 300};
  auto n = writeNack(buf, {1, 2}, lost);
  ASSERT_TRUE(n);
  // 65534 carries 65535, 0 and 1 across the wrap; 16 is 18 after it, so it starts an item that carries 17; 300
  // starts the third.
  EXPECT_EQ(*n, 12u + 3 * 4);
  CompoundReader r(std::span<const uint8_t>(buf.data(), *n));
  auto nack = Nack::parse(*r.next());
  ASSERT_TRUE(nack);
  ASSERT_EQ(nack->itemCount(), 3u);
  EXPECT_EQ(nack->item(0).pid, 65534);
  EXPECT_EQ(nack->item(0).blp, 0b111);
  EXPECT_EQ(nack->item(1).pid, 16);
  EXPECT_EQ(nack->item(1).blp, 0b1);
  std::vector<uint16_t> back;
  nack->forEachSequenceNumber([&](uint16_t s) { back.push_back(s); });
  EXPECT_EQ(back, std::vector<uint16_t>(std::begin(lost), std::end(lost)));
  EXPECT_FALSE(writeNack(buf, {1, 2}, {}));
}

TEST(RtcpBuild, FirRembByeRoundTrip) {
  std::array<uint8_t, 200> buf{};
  const Fir::Entry entries[] = {{0xa, 1}, {0xb, 255}};
  const uint32_t ssrcs[] = {0xa, 0xb, 0xc};
  CompoundBuilder b(buf);
  b.fir(7, entries).remb(7, 2'500'000, ssrcs).bye(ssrcs, "gone");
  ASSERT_TRUE(b.ok());
  auto blocks = walk(b.bytes());
  ASSERT_EQ(blocks.size(), 3u);
  auto fir = Fir::parse(blocks[0]);
  ASSERT_TRUE(fir);
  ASSERT_EQ(fir->size(), 2u);
  EXPECT_EQ((*fir)[1], entries[1]);
  auto remb = Remb::parse(blocks[1]);
  ASSERT_TRUE(remb);
  // 2,500,000 needs 22 bits: exponent 4, mantissa 156250, exact.
  EXPECT_EQ(remb->bitrate(), 2'500'000u);
  EXPECT_EQ(remb->size(), 3u);
  EXPECT_EQ(remb->ssrc(2), 0xcu);
  auto bye = Bye::parse(blocks[2]);
  ASSERT_TRUE(bye);
  EXPECT_EQ(bye->size(), 3u);
  EXPECT_EQ(bye->reason, "gone");
  // A bitrate that does not fit 18 bits exactly is rounded down.
  auto n = writeRemb(buf, 1, (uint64_t(1) << 40) + 1, {});
  ASSERT_TRUE(n);
  CompoundReader r(std::span<const uint8_t>(buf.data(), *n));
  EXPECT_EQ(Remb::parse(*r.next())->bitrate(), uint64_t(1) << 40);
}

TEST(RtcpBuild, BoundedByTheCallersBuffer) {
  std::array<uint8_t, 40> buf{};
  const SenderInfo info{};
  const ReportBlock reports[2]{};
  EXPECT_FALSE(writeSenderReport(buf, 1, info, reports));  // 76 bytes
  EXPECT_TRUE(writeSenderReport(buf, 1, info, {}));        // 28 bytes
  std::array<ReportBlock, 32> tooMany{};
  std::array<uint8_t, 2000> big{};
  EXPECT_FALSE(writeReceiverReport(big, 1, tooMany));
  EXPECT_FALSE(writeSdesCname(big, 1, std::string(256, 'x')));
  CompoundBuilder b(buf);
  b.pli({1, 2}).pli({1, 2}).pli({1, 2}).pli({1, 2});  // the fourth does not fit
  EXPECT_FALSE(b.ok());
  EXPECT_EQ(b.size(), 0u);
  b.pli({1, 2});
  EXPECT_FALSE(b.ok());
}

}  // namespace
}  // namespace kaiwa::rtp::rtcp

// RTP packets: parsing (Chromium's layout, RFC 8285 both forms, padding, CSRCs), every malformed case, the in-place
// rewrites an SFU does when forwarding, the RFC 7983 demultiplexer, header extension values and RTX.
#include "rtp/packet.hpp"

#include <gtest/gtest.h>

#include <array>
#include <vector>

#include "vectors.hpp"

namespace kaiwa::rtp {
namespace {

using test::hex;

std::string_view text(std::optional<std::span<const uint8_t>> v) {
  return v ? std::string_view(reinterpret_cast<const char*>(v->data()), v->size()) : "<none>";
}

TEST(RtpPacket, ChromiumAudio) {
  auto p = Packet::parse(test::kChromiumAudio);
  ASSERT_TRUE(p);
  EXPECT_FALSE(p->marker());
  EXPECT_EQ(p->payloadType(), 111);
  EXPECT_EQ(p->sequenceNumber(), 0x1234);
  EXPECT_EQ(p->timestamp(), 0x3a98u);
  EXPECT_EQ(p->ssrc(), 0x11223344u);
  EXPECT_EQ(p->csrcCount(), 0);
  EXPECT_EQ(p->extensionForm(), ExtensionForm::kOneByte);
  EXPECT_EQ(p->headerSize(), 24u);
  EXPECT_EQ(p->payload().size(), 3u);
  EXPECT_EQ(p->payload()[0], 0xfc);
  EXPECT_EQ(p->paddingSize(), 0u);
  ASSERT_EQ(p->extensions().size(), 3u);

  auto level = parseAudioLevel(*p->extension(1));
  ASSERT_TRUE(level);
  EXPECT_TRUE(level->voiceActivity);
  EXPECT_EQ(level->level, 43);
  EXPECT_EQ(parseTransportSequenceNumber(*p->extension(3)), 0x0567);
  EXPECT_EQ(parseMid(*p->extension(4)), "0");
  EXPECT_FALSE(p->extension(2));
  EXPECT_FALSE(p->extension(10));
}

TEST(RtpPacket, ChromiumSimulcastVideoAndRtx) {
  auto p = Packet::parse(test::kChromiumVideo);
  ASSERT_TRUE(p);
  EXPECT_TRUE(p->marker());
  EXPECT_EQ(p->payloadType(), 96);
  EXPECT_EQ(p->sequenceNumber(), 0xffff);
  EXPECT_EQ(parseMid(*p->extension(4)), "1");
  EXPECT_EQ(parseRid(*p->extension(10)), "h");
  EXPECT_EQ(text(p->extension(2)), "\xaa\xbb\xcc");
  EXPECT_EQ(p->payload().size(), 4u);

  auto rtx = Packet::parse(test::kChromiumRtx);
  ASSERT_TRUE(rtx);
  EXPECT_EQ(rtx->payloadType(), 97);
  EXPECT_EQ(parseRid(*rtx->extension(11)), "h");
  auto inner = parseRtx(*rtx);
  ASSERT_TRUE(inner);
  EXPECT_EQ(inner->originalSequence, 0xffff);
  EXPECT_TRUE(std::equal(inner->payload.begin(), inner->payload.end(), p->payload().begin(), p->payload().end()));
}

TEST(RtpPacket, MinimalAndCsrcs) {
  auto bare = hex("80000001 00000002 00000003");
  auto p = Packet::parse(bare);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->payload().size(), 0u);
  EXPECT_EQ(p->extensionForm(), ExtensionForm::kNone);
  EXPECT_FALSE(p->extension(1));

  auto mixed = hex("82080001 00000002 00000003 0000aaaa 0000bbbb 01020304");
  p = Packet::parse(mixed);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->csrcCount(), 2);
  EXPECT_EQ(p->csrc(0), 0xaaaau);
  EXPECT_EQ(p->csrc(1), 0xbbbbu);
  EXPECT_EQ(p->csrc(2), 0u);
  EXPECT_EQ(p->headerSize(), 20u);
  EXPECT_EQ(p->payload().size(), 4u);
}

TEST(RtpPacket, Padding) {
  // RFC 3550 5.1: the last byte counts the padding bytes, itself included.
  auto bytes = hex("a0000001 00000002 00000003 dddddd 000003");
  auto p = Packet::parse(bytes);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->payload().size(), 3u);
  EXPECT_EQ(p->paddingSize(), 3u);
  // Padding only (Chromium's bandwidth probes are like that): an empty payload.
  auto probe = hex("a0000001 00000002 00000003 00000004");
  p = Packet::parse(probe);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->payload().size(), 0u);
  EXPECT_EQ(p->paddingSize(), 4u);
}

TEST(RtpPacket, TwoByteExtensions) {
  // Profile 0x1000 with appbits 0: id 20 with 3 bytes, a padding byte, id 5 with no value (allowed only here),
  // id 200 with 1 byte; 3 words.
  auto bytes = hex("90000001 00000002 00000003 10000003 1403616263 00 0500 c80109 00 aa");
  auto p = Packet::parse(bytes);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->extensionForm(), ExtensionForm::kTwoByte);
  ASSERT_EQ(p->extensions().size(), 3u);
  EXPECT_EQ(text(p->extension(20)), "abc");
  ASSERT_TRUE(p->extension(5));
  EXPECT_TRUE(p->extension(5)->empty());
  EXPECT_EQ(text(p->extension(200)), "\x09");
  EXPECT_EQ(p->payload().size(), 1u);
}

TEST(RtpPacket, OneByteStopsAtId15AndOtherProfilesAreOpaque) {
  // RFC 8285 4.2: ID 15 ends the walk; the rest of the block is not read as elements.
  auto stop = hex("90000001 00000002 00000003 bede0002 10aa f0 3102 ffffff");
  auto p = Packet::parse(stop);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->extensions().size(), 1u);
  EXPECT_FALSE(p->extension(3));
  // A byte with ID 0 is one padding byte whatever its length nibble (found by fuzz_rtp).
  auto idZero = hex("90000001 00000002 00000003 bede0002 02 3000 4031 000000");
  p = Packet::parse(idZero);
  ASSERT_TRUE(p);
  ASSERT_EQ(p->extensions().size(), 2u);
  EXPECT_EQ(p->extensions()[0].id, 3);
  EXPECT_EQ(parseMid(*p->extension(4)), "1");
  // A profile that is neither form: the block is skipped, no elements.
  auto other = hex("90000001 00000002 00000003 abcd0001 01020304 ee");
  p = Packet::parse(other);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->extensionForm(), ExtensionForm::kOther);
  EXPECT_EQ(p->extensionProfile(), 0xabcd);
  EXPECT_TRUE(p->extensions().empty());
  EXPECT_EQ(p->payload().size(), 1u);
}

struct Malformed {
  const char* name;
  std::string hexBytes;
  ParseError error;
};

TEST(RtpPacket, MalformedInputIsRefusedWithAReason) {
  const Malformed cases[] = {
      {"empty", "", ParseError::kTooShort},
      {"11 bytes", "8000000100000002000000", ParseError::kTooShort},
      {"version 1", "40000001 00000002 00000003", ParseError::kBadVersion},
      {"version 0 (STUN-like)", "00010000 2112a442 00000003", ParseError::kBadVersion},
      {"CSRC count past the end", "83000001 00000002 00000003 00000004 00000005", ParseError::kCsrcOverrun},
      {"extension header cut", "90000001 00000002 00000003 bede", ParseError::kExtensionOverrun},
      {"extension block past the end", "90000001 00000002 00000003 bede0002 10aa0000", ParseError::kExtensionOverrun},
      {"one-byte element past its block", "90000001 00000002 00000003 bede0001 1fffffff", ParseError::kBadExtension},
      {"two-byte element past its block", "90000001 00000002 00000003 10000001 0105ffff", ParseError::kBadExtension},
      {"two-byte header cut", "90000001 00000002 00000003 10000001 000000 05", ParseError::kBadExtension},
      {"padding count 0", "a0000001 00000002 00000003 aa00", ParseError::kBadPadding},
      {"padding larger than the payload", "a0000001 00000002 00000003 aa05", ParseError::kBadPadding},
      {"padding bit, nothing after the header", "a0000001 00000002 00000003", ParseError::kBadPadding},
  };
  for (const auto& c : cases) {
    auto bytes = hex(c.hexBytes);
    ParseError why{};
    EXPECT_FALSE(Packet::parse(bytes, &why)) << c.name;
    EXPECT_EQ(why, c.error) << c.name << ": " << toString(why);
  }
  // Seventeen one-byte elements: more than kMaxExtensions.
  auto many = hex("90000001 00000002 00000003 bede0009");
  for (int i = 0; i < 17; ++i) {
    many.push_back(0x10);
    many.push_back(0x00);
  }
  many.insert(many.end(), {0, 0});
  ParseError why{};
  EXPECT_FALSE(Packet::parse(many, &why));
  EXPECT_EQ(why, ParseError::kBadExtension);
  std::vector<uint8_t> huge(70000, 0);
  huge[0] = 0x80;
  EXPECT_FALSE(Packet::parse(huge, &why));
  EXPECT_EQ(why, ParseError::kTooLong);
}

TEST(RtpRewrite, HeaderFieldsInPlace) {
  auto bytes = test::kChromiumVideo;
  auto m = MutablePacket::parse(bytes);
  ASSERT_TRUE(m);
  m->setSsrc(0xcafebabe);
  m->setSequenceNumber(42);
  m->setTimestamp(0xfffffff0);
  m->setPayloadType(100);
  m->setMarker(false);
  auto p = Packet::parse(bytes);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->ssrc(), 0xcafebabeu);
  EXPECT_EQ(p->sequenceNumber(), 42);
  EXPECT_EQ(p->timestamp(), 0xfffffff0u);
  EXPECT_EQ(p->payloadType(), 100);
  EXPECT_FALSE(p->marker());
  EXPECT_EQ(parseRid(*p->extension(10)), "h");
  // Nothing but the rewritten fields changed.
  auto original = Packet::parse(test::kChromiumVideo);
  EXPECT_TRUE(std::equal(bytes.begin() + 12, bytes.end(), test::kChromiumVideo.begin() + 12));
  EXPECT_EQ(p->headerSize(), original->headerSize());
}

TEST(RtpRewrite, ExtensionIdsRemappedAndDropped) {
  auto bytes = test::kChromiumAudio;
  auto m = MutablePacket::parse(bytes);
  ASSERT_TRUE(m);
  // The subscriber negotiated audio level as 5 and mid as 9, and no transport-cc.
  ExtensionIdMap map;
  map.set(1, 5);
  map.set(4, 9);
  map.drop(3);
  ASSERT_TRUE(m->remapExtensionIds(map));
  EXPECT_EQ(m->view().extensions().size(), 2u);
  EXPECT_TRUE(m->view().extension(5));
  auto p = Packet::parse(bytes);
  ASSERT_TRUE(p);
  ASSERT_EQ(p->extensions().size(), 2u);
  EXPECT_EQ(parseAudioLevel(*p->extension(5))->level, 43);
  EXPECT_EQ(parseMid(*p->extension(9)), "0");
  EXPECT_FALSE(p->extension(1));
  EXPECT_FALSE(p->extension(3));
  EXPECT_FALSE(p->extension(4));
  EXPECT_EQ(p->payload().size(), 3u);
  EXPECT_EQ(p->headerSize(), 24u);
}

TEST(RtpRewrite, OneByteIdsAbove14AreRefusedWithoutChange) {
  auto bytes = test::kChromiumAudio;
  auto m = MutablePacket::parse(bytes);
  ASSERT_TRUE(m);
  ExtensionIdMap map;
  map.set(1, 2);
  map.set(4, 15);
  EXPECT_FALSE(m->remapExtensionIds(map));
  EXPECT_EQ(bytes, test::kChromiumAudio);
}

TEST(RtpRewrite, TwoByteIdsAndExtensionValue) {
  auto bytes = hex("90000001 00000002 00000003 10000002 1403616263 c80109 aa");
  auto m = MutablePacket::parse(bytes);
  ASSERT_TRUE(m);
  ExtensionIdMap map;
  map.set(20, 250);
  map.drop(200);
  ASSERT_TRUE(m->remapExtensionIds(map));
  auto value = m->extension(250);
  ASSERT_TRUE(value);
  (*value)[0] = 'x';
  auto p = Packet::parse(bytes);
  ASSERT_TRUE(p);
  ASSERT_EQ(p->extensions().size(), 1u);
  EXPECT_EQ(text(p->extension(250)), "xbc");
  EXPECT_FALSE(p->extension(200));
}

TEST(RtpRewrite, TransportSequenceNumberInPlace) {
  auto bytes = test::kChromiumAudio;
  auto m = MutablePacket::parse(bytes);
  ASSERT_TRUE(m);
  auto tcc = m->extension(3);
  ASSERT_TRUE(tcc);
  (*tcc)[0] = 0xbe;
  (*tcc)[1] = 0xef;
  EXPECT_EQ(parseTransportSequenceNumber(*Packet::parse(bytes)->extension(3)), 0xbeef);
}

TEST(RtpDemux, FirstByteRanges) {
  auto kind = [](std::string_view h) { return classify(hex(h)); };
  EXPECT_EQ(kind("0001 0000"), DatagramKind::kStun);  // Binding request
  EXPECT_EQ(kind("0101 0000"), DatagramKind::kStun);  // Binding success
  EXPECT_EQ(kind("16fefd"), DatagramKind::kDtls);     // handshake, DTLS 1.2
  EXPECT_EQ(kind("17fefd"), DatagramKind::kDtls);     // application data
  EXPECT_EQ(kind("3f"), DatagramKind::kDtls);         // the range's end
  EXPECT_EQ(kind("806f1234"), DatagramKind::kRtp);    // Opus
  EXPECT_EQ(kind("80e0ffff"), DatagramKind::kRtp);    // VP8 with the marker: 0xe0 & 0x7f = 96
  EXPECT_EQ(kind("80c80006"), DatagramKind::kRtcp);   // SR (200)
  EXPECT_EQ(kind("81c90007"), DatagramKind::kRtcp);   // RR (201)
  EXPECT_EQ(kind("81cd0003"), DatagramKind::kRtcp);   // RTPFB (205)
  EXPECT_EQ(kind("8fce0005"), DatagramKind::kRtcp);   // PSFB (206)
  EXPECT_EQ(kind("80c0"), DatagramKind::kRtcp);       // 192, the first RTCP type of RFC 5761
  EXPECT_EQ(kind("80df"), DatagramKind::kRtcp);       // 223, the last
  EXPECT_EQ(kind("80bf"), DatagramKind::kRtp);        // payload type 63
  EXPECT_EQ(kind("80e0"), DatagramKind::kRtp);        // payload type 96
  EXPECT_EQ(kind("10"), DatagramKind::kOther);        // ZRTP
  EXPECT_EQ(kind("40000004"), DatagramKind::kOther);  // TURN ChannelData
  EXPECT_EQ(kind("c0"), DatagramKind::kOther);
  EXPECT_EQ(kind("80"), DatagramKind::kOther);  // one byte cannot tell RTP from RTCP
  EXPECT_EQ(kind(""), DatagramKind::kOther);
}

TEST(RtpExtensionValues, Validation) {
  EXPECT_FALSE(parseMid({}));
  EXPECT_EQ(parseRid(hex("713031")), "q01");
  EXPECT_EQ(parseRid(hex("612d5f62")), "a-_b");
  EXPECT_FALSE(parseRid(hex("61 20")));  // a space
  EXPECT_FALSE(parseRid({}));
  auto silent = parseAudioLevel(hex("7f"));
  ASSERT_TRUE(silent);
  EXPECT_FALSE(silent->voiceActivity);
  EXPECT_EQ(silent->level, 127);
  EXPECT_FALSE(parseAudioLevel(hex("7f00")));
  EXPECT_FALSE(parseTransportSequenceNumber(hex("01")));
}

TEST(RtpRtx, WriteThenReadBack) {
  auto original = Packet::parse(test::kChromiumVideo);
  ASSERT_TRUE(original);
  std::array<uint8_t, 1500> out{};
  auto n = writeRtx(*original, 0x0badf00d, 97, 7, out);
  ASSERT_TRUE(n);
  EXPECT_EQ(*n, original->headerSize() + 2 + original->payload().size());
  auto rtx = Packet::parse(std::span<const uint8_t>(out.data(), *n));
  ASSERT_TRUE(rtx);
  EXPECT_EQ(rtx->ssrc(), 0x0badf00du);
  EXPECT_EQ(rtx->payloadType(), 97);
  EXPECT_EQ(rtx->sequenceNumber(), 7);
  EXPECT_TRUE(rtx->marker());
  EXPECT_EQ(rtx->timestamp(), original->timestamp());
  EXPECT_EQ(parseRid(*rtx->extension(10)), "h");
  auto inner = parseRtx(*rtx);
  ASSERT_TRUE(inner);
  EXPECT_EQ(inner->originalSequence, 0xffff);
  EXPECT_TRUE(
      std::equal(inner->payload.begin(), inner->payload.end(), original->payload().begin(), original->payload().end()));
  // Padding of the original is not carried over.
  auto padded = hex("a0000009 00000002 00000003 dddd 0002");
  n = writeRtx(*Packet::parse(padded), 1, 2, 3, out);
  ASSERT_TRUE(n);
  auto again = Packet::parse(std::span<const uint8_t>(out.data(), *n));
  ASSERT_TRUE(again);
  EXPECT_FALSE(again->hasPadding());
  EXPECT_EQ(parseRtx(*again)->originalSequence, 9);
  // Too small a buffer.
  EXPECT_FALSE(writeRtx(*original, 1, 2, 3, std::span<uint8_t>(out.data(), 20)));
}

TEST(RtpRtx, UnwrapRestoresTheOriginal) {
  auto original = Packet::parse(test::kChromiumVideo);
  ASSERT_TRUE(original);
  std::array<uint8_t, 1500> rtxBytes{}, out{};
  const size_t n = *writeRtx(*original, 0x0badf00d, 97, 7, rtxBytes);
  auto rtx = Packet::parse(std::span<const uint8_t>(rtxBytes.data(), n));
  ASSERT_TRUE(rtx);
  auto m = unwrapRtx(*rtx, original->ssrc(), original->payloadType(), out);
  ASSERT_TRUE(m);
  // kChromiumVideo has no padding: the unwrapped packet is the original, byte for byte.
  ASSERT_FALSE(original->hasPadding());
  EXPECT_TRUE(std::equal(out.begin(), out.begin() + ptrdiff_t(*m), original->bytes().begin(), original->bytes().end()));
  // An RTX packet with padding of its own (a probe with a payload): the padding is not part of the original.
  auto padded = hex("a0610005 00000002 0000000a 0009 dddd 0002");
  auto unpadded = unwrapRtx(*Packet::parse(padded), 0x11, 96, out);
  ASSERT_TRUE(unpadded);
  EXPECT_EQ(std::vector<uint8_t>(out.begin(), out.begin() + ptrdiff_t(*unpadded)),
            hex("80600009 00000002 00000011 dddd"));
  // Shorter than the OSN, or too small a buffer.
  EXPECT_FALSE(unwrapRtx(*Packet::parse(hex("80610005 00000002 0000000a 00")), 1, 96, out));
  EXPECT_FALSE(unwrapRtx(*rtx, 1, 96, std::span<uint8_t>(out.data(), 20)));
}

}  // namespace
}  // namespace kaiwa::rtp

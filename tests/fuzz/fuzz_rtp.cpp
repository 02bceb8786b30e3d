// fuzz_rtp: the RTP packet view and its in-place rewrites (rtp/packet).
//  1. classify() and Packet::parse on the raw input never crash; a parsed packet's header, payload and padding add
//     up to the input, every extension element lies inside the header, and the extension value parsers stay in
//     bounds.
//  2. Rewriting a copy (SSRC, sequence number, timestamp, payload type, marker, and extension ids through a
//     bijection chosen by the input, with one id dropped) and parsing it again gives the new values, the same
//     payload and padding, and the same extension values in the same order under their new ids, minus the dropped.
//  3. A map that sends a one-byte id above 14 is refused and leaves the bytes as they were.
//  4. The RTX packet of a parsed packet parses, and gives back the original sequence number and payload; unwrapping
//     it restores the original (without padding), and unwrapping the raw input as RTX stays in bounds.
//  5. The payload read as a VP8 descriptor's layer fields stays in bounds; the picture id and TL0PICIDX rewritten in
//     a copy read back as written and leave the other fields and the rest of the bytes as they were.
#include <array>
#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

#include "fuzz_util.hpp"
#include "rtp/packet.hpp"
#include "rtp/vp8_layers.hpp"

using namespace kaiwa;
using namespace kaiwa::rtp;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const uint8_t> in(data, size);
  (void)classify(in);
  auto p = Packet::parse(in);
  if (!p) return 0;
  FUZZ_CHECK(p->headerSize() + p->payload().size() + p->paddingSize() == size);
  FUZZ_CHECK(p->headerSize() >= kFixedHeaderSize + 4 * size_t(p->csrcCount()));
  for (const auto& e : p->extensions()) {
    FUZZ_CHECK(e.id != 0 && e.offset + e.length <= p->headerSize());
    auto v = p->extension(e.id);
    FUZZ_CHECK(v.has_value());
    (void)parseMid(*v);
    (void)parseRid(*v);
    (void)parseAudioLevel(*v);
    (void)parseTransportSequenceNumber(*v);
  }

  // The rewrite's parameters come from the input itself, so that the fuzzer steers them too.
  const uint8_t k = data[size - 1];
  const uint8_t dropped = data[size / 2];
  const bool oneByte = p->extensionForm() == ExtensionForm::kOneByte;
  ExtensionIdMap map;
  for (int id = 1; id < 256; ++id) {
    const int to = oneByte ? (id <= 14 ? (id - 1 + k) % 14 + 1 : id) : (id - 1 + k) % 255 + 1;
    map.set(uint8_t(id), uint8_t(to));
  }
  map.drop(dropped);

  std::vector<uint8_t> copy(in.begin(), in.end());
  auto m = MutablePacket::parse(copy);
  FUZZ_CHECK(m.has_value());
  const uint32_t ssrc = ~p->ssrc(), ts = p->timestamp() ^ 0x5a5a5a5a;
  const uint16_t seq = uint16_t(p->sequenceNumber() + 4321);
  const uint8_t pt = uint8_t((p->payloadType() + 1) & 0x7F);
  m->setSsrc(ssrc);
  m->setSequenceNumber(seq);
  m->setTimestamp(ts);
  m->setPayloadType(pt);
  m->setMarker(!p->marker());
  FUZZ_CHECK(m->remapExtensionIds(map));

  auto q = Packet::parse(copy);
  FUZZ_CHECK(q.has_value());
  FUZZ_CHECK(q->ssrc() == ssrc && q->sequenceNumber() == seq && q->timestamp() == ts && q->payloadType() == pt);
  FUZZ_CHECK(q->marker() != p->marker());
  FUZZ_CHECK(q->headerSize() == p->headerSize() && q->paddingSize() == p->paddingSize());
  FUZZ_CHECK(q->payload().size() == p->payload().size());
  FUZZ_CHECK(q->payload().empty() || std::memcmp(q->payload().data(), p->payload().data(), p->payload().size()) == 0);
  size_t j = 0;
  for (const auto& e : p->extensions()) {
    if (e.id == dropped) continue;
    FUZZ_CHECK(j < q->extensions().size());
    const auto& f = q->extensions()[j++];
    FUZZ_CHECK(f.id == map[e.id] && f.length == e.length && f.offset == e.offset);
    FUZZ_CHECK(std::memcmp(copy.data() + f.offset, data + e.offset, e.length) == 0);
  }
  FUZZ_CHECK(j == q->extensions().size());
  FUZZ_CHECK(m->view().extensions().size() == j);

  if (oneByte && !p->extensions().empty()) {
    ExtensionIdMap bad;
    bad.set(p->extensions()[0].id, uint8_t(15 + k % 241));
    std::vector<uint8_t> again(in.begin(), in.end());
    auto r = MutablePacket::parse(again);
    FUZZ_CHECK(r.has_value());
    FUZZ_CHECK(!r->remapExtensionIds(bad));
    FUZZ_CHECK(std::memcmp(again.data(), data, size) == 0);
  }

  static std::array<uint8_t, 70000> out;
  auto n = writeRtx(*p, 0x0badf00d, 97, seq, out);
  FUZZ_CHECK(n.has_value());
  auto rtx = Packet::parse(std::span<const uint8_t>(out.data(), *n));
  FUZZ_CHECK(rtx.has_value());
  auto inner = parseRtx(*rtx);
  FUZZ_CHECK(inner.has_value());
  FUZZ_CHECK(inner->originalSequence == p->sequenceNumber());
  FUZZ_CHECK(inner->payload.size() == p->payload().size());
  FUZZ_CHECK(inner->payload.empty() ||
             std::memcmp(inner->payload.data(), p->payload().data(), p->payload().size()) == 0);
  // Unwrapping it gives the original back (its padding aside) and parses.
  static std::array<uint8_t, 70000> back;
  auto m2 = unwrapRtx(*rtx, p->ssrc(), p->payloadType(), back);
  FUZZ_CHECK(m2.has_value() && *m2 == p->headerSize() + p->payload().size());
  auto restored = Packet::parse(std::span<const uint8_t>(back.data(), *m2));
  FUZZ_CHECK(restored.has_value() && !restored->hasPadding());
  FUZZ_CHECK(restored->sequenceNumber() == p->sequenceNumber() && restored->payloadType() == p->payloadType());
  FUZZ_CHECK(restored->ssrc() == p->ssrc() && restored->payload().size() == p->payload().size());
  FUZZ_CHECK(std::memcmp(back.data() + 1, data + 1, p->headerSize() - 1) == 0);
  // The input itself taken as an RTX packet (untrusted): in bounds whatever it holds.
  if (auto raw = unwrapRtx(*p, 1, 96, back)) FUZZ_CHECK(*raw + 2 <= size);
  if (auto l = rtp::parseVp8Layers(p->payload())) {
    std::vector<uint8_t> copy(p->payload().begin(), p->payload().end());
    const uint16_t pic = uint16_t(size * 7919) & 0x7FFF;
    const uint8_t tl0 = uint8_t(size);
    FUZZ_CHECK(rtp::writeVp8PictureId(copy, *l, pic) == l->pictureId.has_value());
    FUZZ_CHECK(rtp::writeVp8Tl0PicIdx(copy, *l, tl0) == l->tl0PicIdx.has_value());
    auto again = rtp::parseVp8Layers(copy);
    FUZZ_CHECK(again.has_value());
    if (l->pictureId) FUZZ_CHECK(*again->pictureId == (l->longPictureId ? pic : (pic & 0x7F)));
    if (l->tl0PicIdx) FUZZ_CHECK(*again->tl0PicIdx == tl0);
    FUZZ_CHECK(again->temporalId == l->temporalId && again->layerSync == l->layerSync &&
               again->frameStart == l->frameStart && again->longPictureId == l->longPictureId);
    for (size_t i = 0; i < copy.size(); ++i) {
      const bool pictureByte =
          l->pictureId && (i == l->pictureIdOffset || (l->longPictureId && i == l->pictureIdOffset + 1));
      const bool tl0Byte = l->tl0PicIdx && i == l->tl0PicIdxOffset;
      if (!pictureByte && !tl0Byte) FUZZ_CHECK(copy[i] == p->payload()[i]);
    }
  }
  return 0;
}

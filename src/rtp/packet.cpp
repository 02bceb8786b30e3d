#include "rtp/packet.hpp"

#include <cstring>

#include "common/bytes.hpp"

namespace kaiwa::rtp {

using common::be16;
using common::be32;
using common::put16;
using common::put32;

std::string_view toString(ParseError e) {
  switch (e) {
    case ParseError::kTooShort:
      return "too short";
    case ParseError::kTooLong:
      return "too long";
    case ParseError::kBadVersion:
      return "bad version";
    case ParseError::kCsrcOverrun:
      return "CSRC list overrun";
    case ParseError::kExtensionOverrun:
      return "extension block overrun";
    case ParseError::kBadExtension:
      return "bad extension element";
    case ParseError::kBadPadding:
      return "bad padding";
  }
  return "?";
}

namespace {

std::optional<Packet> fail(ParseError* error, ParseError why) {
  if (error) *error = why;
  return std::nullopt;
}

}  // namespace

uint32_t Packet::csrc(size_t i) const { return i < csrcCount() ? be32(bytes_.data() + kFixedHeaderSize + 4 * i) : 0; }
uint32_t Packet::timestamp() const { return be32(bytes_.data() + 4); }
uint32_t Packet::ssrc() const { return be32(bytes_.data() + 8); }

std::optional<Packet> Packet::parse(std::span<const uint8_t> bytes, ParseError* error) {
  const size_t size = bytes.size();
  if (size < kFixedHeaderSize) return fail(error, ParseError::kTooShort);
  if (size > 0xFFFF) return fail(error, ParseError::kTooLong);
  const uint8_t* p = bytes.data();
  if ((p[0] >> 6) != 2) return fail(error, ParseError::kBadVersion);
  Packet pkt;
  pkt.bytes_ = bytes;
  size_t pos = kFixedHeaderSize + 4 * size_t(p[0] & 0x0F);
  if (pos > size) return fail(error, ParseError::kCsrcOverrun);
  if (p[0] & 0x10) {
    if (size - pos < 4) return fail(error, ParseError::kExtensionOverrun);
    pkt.profile_ = be16(p + pos);
    const size_t blockLength = 4 * size_t(be16(p + pos + 2));
    pos += 4;
    if (size - pos < blockLength) return fail(error, ParseError::kExtensionOverrun);
    const size_t end = pos + blockLength;
    if (pkt.profile_ == kOneByteProfile) {
      pkt.form_ = ExtensionForm::kOneByte;
      for (size_t i = pos; i < end;) {
        const uint8_t b = p[i];
        const uint8_t id = b >> 4;
        if (id == 0) {
          // Padding is a zero byte. ID 0 is reserved for it (RFC 8285 section 4.2), so a byte with ID 0 and a
          // non-zero length nibble is read as one padding byte too, rather than as an element with no valid id.
          ++i;
          continue;
        }
        if (id == 15) break;  // RFC 8285 section 4.2: stop processing the block
        const size_t length = size_t(b & 0x0F) + 1;
        ++i;
        if (end - i < length || pkt.count_ == kMaxExtensions) return fail(error, ParseError::kBadExtension);
        pkt.elements_[pkt.count_++] = ExtensionElement{id, uint8_t(length), uint16_t(i)};
        i += length;
      }
    } else if ((pkt.profile_ & kTwoByteProfileMask) == kTwoByteProfile) {
      pkt.form_ = ExtensionForm::kTwoByte;
      for (size_t i = pos; i < end;) {
        const uint8_t id = p[i];
        if (id == 0) {  // padding
          ++i;
          continue;
        }
        if (end - i < 2) return fail(error, ParseError::kBadExtension);
        const size_t length = p[i + 1];
        i += 2;
        if (end - i < length || pkt.count_ == kMaxExtensions) return fail(error, ParseError::kBadExtension);
        pkt.elements_[pkt.count_++] = ExtensionElement{id, uint8_t(length), uint16_t(i)};
        i += length;
      }
    } else {
      pkt.form_ = ExtensionForm::kOther;
    }
    pos = end;
  }
  size_t end = size;
  if (p[0] & 0x20) {
    // The last byte counts the padding, itself included (RFC 3550 section 5.1).
    const size_t padding = p[size - 1];
    if (padding == 0 || padding > size - pos) return fail(error, ParseError::kBadPadding);
    end -= padding;
  }
  pkt.payloadOffset_ = uint16_t(pos);
  pkt.payloadSize_ = uint16_t(end - pos);
  return pkt;
}

std::optional<std::span<const uint8_t>> Packet::extension(uint8_t id) const {
  for (size_t i = 0; i < count_; ++i) {
    if (elements_[i].id == id) return bytes_.subspan(elements_[i].offset, elements_[i].length);
  }
  return std::nullopt;
}

ExtensionIdMap::ExtensionIdMap() {
  for (size_t i = 0; i < to_.size(); ++i) to_[i] = uint8_t(i);
}

std::optional<MutablePacket> MutablePacket::parse(std::span<uint8_t> bytes, ParseError* error) {
  auto view = Packet::parse(bytes, error);
  if (!view) return std::nullopt;
  MutablePacket m;
  m.bytes_ = bytes;
  m.packet_ = *view;
  return m;
}

void MutablePacket::setMarker(bool m) { bytes_[1] = uint8_t((bytes_[1] & 0x7F) | (m ? 0x80 : 0)); }
void MutablePacket::setPayloadType(uint8_t pt) { bytes_[1] = uint8_t((bytes_[1] & 0x80) | (pt & 0x7F)); }
void MutablePacket::setSequenceNumber(uint16_t seq) { put16(bytes_.data() + 2, seq); }
void MutablePacket::setTimestamp(uint32_t ts) { put32(bytes_.data() + 4, ts); }
void MutablePacket::setSsrc(uint32_t ssrc) { put32(bytes_.data() + 8, ssrc); }

bool MutablePacket::remapExtensionIds(const ExtensionIdMap& map) {
  auto& pkt = packet_;
  const bool oneByte = pkt.form_ == ExtensionForm::kOneByte;
  if (pkt.form_ != ExtensionForm::kOneByte && pkt.form_ != ExtensionForm::kTwoByte) return true;
  // Check every new id first, so a refusal leaves the packet as it was.
  if (oneByte) {
    for (size_t i = 0; i < pkt.count_; ++i) {
      if (map[pkt.elements_[i].id] > 14) return false;
    }
  }
  uint8_t* p = bytes_.data();
  size_t kept = 0;
  for (size_t i = 0; i < pkt.count_; ++i) {
    ExtensionElement e = pkt.elements_[i];
    const uint8_t to = map[e.id];
    const size_t headerAt = e.offset - (oneByte ? 1 : 2);
    if (to == 0) {
      // Padding bytes are zeros in both forms, so a dropped element becomes a run of padding.
      std::memset(p + headerAt, 0, (oneByte ? 1 : 2) + size_t(e.length));
      continue;
    }
    if (oneByte) {
      p[headerAt] = uint8_t(to << 4 | (e.length - 1));
    } else {
      p[headerAt] = to;
    }
    e.id = to;
    pkt.elements_[kept++] = e;
  }
  pkt.count_ = uint8_t(kept);
  return true;
}

std::optional<std::span<uint8_t>> MutablePacket::extension(uint8_t id) {
  for (const auto& e : packet_.extensions()) {
    if (e.id == id) return bytes_.subspan(e.offset, e.length);
  }
  return std::nullopt;
}

DatagramKind classify(std::span<const uint8_t> datagram) {
  if (datagram.empty()) return DatagramKind::kOther;
  const uint8_t b = datagram[0];
  if (b <= 3) return DatagramKind::kStun;
  if (b >= 20 && b <= 63) return DatagramKind::kDtls;
  if (b >= 128 && b <= 191) {
    if (datagram.size() < 2) return DatagramKind::kOther;
    // RTCP packet types 192..223 read as marker + payload type give 64..95 (RFC 5761 section 4).
    const uint8_t pt = datagram[1] & 0x7F;
    return pt >= 64 && pt <= 95 ? DatagramKind::kRtcp : DatagramKind::kRtp;
  }
  return DatagramKind::kOther;
}

std::optional<std::string_view> parseMid(std::span<const uint8_t> value) {
  if (value.empty()) return std::nullopt;
  return std::string_view(reinterpret_cast<const char*>(value.data()), value.size());
}

std::optional<std::string_view> parseRid(std::span<const uint8_t> value) {
  if (value.empty()) return std::nullopt;
  for (uint8_t c : value) {
    const bool ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-' || c == '_';
    if (!ok) return std::nullopt;
  }
  return std::string_view(reinterpret_cast<const char*>(value.data()), value.size());
}

std::optional<AudioLevel> parseAudioLevel(std::span<const uint8_t> value) {
  if (value.size() != 1) return std::nullopt;
  return AudioLevel{(value[0] & 0x80) != 0, uint8_t(value[0] & 0x7F)};
}

std::optional<uint16_t> parseTransportSequenceNumber(std::span<const uint8_t> value) {
  if (value.size() != 2) return std::nullopt;
  return be16(value.data());
}

std::optional<size_t> writeRtx(const Packet& original, uint32_t rtxSsrc, uint8_t rtxPayloadType, uint16_t rtxSequence,
                               std::span<uint8_t> out) {
  const size_t header = original.headerSize();
  const auto payload = original.payload();
  const size_t total = header + 2 + payload.size();
  if (out.size() < total) return std::nullopt;
  std::memcpy(out.data(), original.bytes().data(), header);
  out[0] &= uint8_t(~0x20);  // the RTX packet carries no padding
  out[1] = uint8_t((out[1] & 0x80) | (rtxPayloadType & 0x7F));
  put16(out.data() + 2, rtxSequence);
  put32(out.data() + 8, rtxSsrc);
  put16(out.data() + header, original.sequenceNumber());
  if (!payload.empty()) std::memcpy(out.data() + header + 2, payload.data(), payload.size());
  return total;
}

std::optional<RtxPayload> parseRtx(const Packet& rtx) {
  const auto payload = rtx.payload();
  if (payload.size() < 2) return std::nullopt;
  return RtxPayload{be16(payload.data()), payload.subspan(2)};
}

std::optional<size_t> unwrapRtx(const Packet& rtx, uint32_t ssrc, uint8_t payloadType, std::span<uint8_t> out) {
  const auto inner = parseRtx(rtx);
  if (!inner) return std::nullopt;
  const size_t header = rtx.headerSize();
  const size_t total = header + inner->payload.size();
  if (out.size() < total) return std::nullopt;
  std::memcpy(out.data(), rtx.bytes().data(), header);
  out[0] &= uint8_t(~0x20);  // the RTX packet's padding (if any) was its own
  out[1] = uint8_t((out[1] & 0x80) | (payloadType & 0x7F));
  put16(out.data() + 2, inner->originalSequence);
  put32(out.data() + 8, ssrc);
  if (!inner->payload.empty()) std::memcpy(out.data() + header, inner->payload.data(), inner->payload.size());
  return total;
}

}  // namespace kaiwa::rtp

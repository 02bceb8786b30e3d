#include "rtp/payload.hpp"

namespace kaiwa::rtp {

std::optional<Vp8Descriptor> parseVp8(std::span<const uint8_t> payload) {
  if (payload.empty()) return std::nullopt;
  Vp8Descriptor d;
  const uint8_t first = payload[0];
  d.start = (first & 0x10) != 0;
  d.partition = first & 0x07;
  size_t at = 1;
  if ((first & 0x80) != 0) {  // X: an extension byte follows
    if (payload.size() <= at) return std::nullopt;
    const uint8_t x = payload[at++];
    if ((x & 0x80) != 0) {  // I: the picture id, 7 or 15 bits
      if (payload.size() <= at) return std::nullopt;
      const uint8_t p = payload[at++];
      if ((p & 0x80) != 0) {
        if (payload.size() <= at) return std::nullopt;
        d.pictureId = static_cast<uint16_t>((p & 0x7F) << 8 | payload[at++]);
      } else {
        d.pictureId = p;
      }
    }
    if ((x & 0x40) != 0) ++at;  // L: TL0PICIDX
    if ((x & 0x30) != 0) ++at;  // T or K: one byte holds TID/Y/KEYIDX
  }
  if (payload.size() <= at) return std::nullopt;  // no VP8 data after the descriptor
  d.size = at;
  d.keyframe = d.frameStart() && (payload[at] & 0x01) == 0;
  return d;
}

std::optional<PictureSize> vp8KeyframeSize(std::span<const uint8_t> frame) {
  // 3 bytes of frame tag, the start code, then two little-endian 16-bit fields: 14 bits of size, 2 of scale.
  if (frame.size() < 10 || (frame[0] & 0x01) != 0) return std::nullopt;
  if (frame[3] != 0x9d || frame[4] != 0x01 || frame[5] != 0x2a) return std::nullopt;
  PictureSize s;
  s.width = static_cast<uint16_t>((frame[6] | frame[7] << 8) & 0x3FFF);
  s.height = static_cast<uint16_t>((frame[8] | frame[9] << 8) & 0x3FFF);
  return s;
}

}  // namespace kaiwa::rtp

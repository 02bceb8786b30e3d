#include "rtp/vp8_layers.hpp"

namespace kaiwa::rtp {

std::optional<Vp8Layers> parseVp8Layers(std::span<const uint8_t> payload) {
  if (payload.empty()) return std::nullopt;
  Vp8Layers l;
  const uint8_t first = payload[0];
  l.frameStart = (first & 0x10) != 0 && (first & 0x07) == 0;
  if ((first & 0x80) == 0) return l;
  size_t at = 1;
  if (payload.size() <= at) return std::nullopt;
  const uint8_t x = payload[at++];
  if ((x & 0x80) != 0) {
    if (payload.size() <= at) return std::nullopt;
    l.pictureIdOffset = at;
    const uint8_t p = payload[at++];
    if ((p & 0x80) != 0) {
      if (payload.size() <= at) return std::nullopt;
      l.longPictureId = true;
      l.pictureId = uint16_t((p & 0x7F) << 8 | payload[at++]);
    } else {
      l.pictureId = p;
    }
  }
  if ((x & 0x40) != 0) {
    if (payload.size() <= at) return std::nullopt;
    l.tl0PicIdxOffset = at;
    l.tl0PicIdx = payload[at++];
  }
  if ((x & 0x30) != 0) {
    if (payload.size() <= at) return std::nullopt;
    const uint8_t t = payload[at];
    if ((x & 0x20) != 0) {  // T: TID and Y are meaningful
      l.temporalId = t >> 6;
      l.layerSync = (t & 0x20) != 0;
    }
  }
  return l;
}

bool writeVp8PictureId(std::span<uint8_t> payload, const Vp8Layers& layers, uint16_t pictureId) {
  if (!layers.pictureId) return false;
  const size_t at = layers.pictureIdOffset;
  if (layers.longPictureId) {
    if (at + 1 >= payload.size()) return false;
    payload[at] = uint8_t(0x80 | ((pictureId >> 8) & 0x7F));
    payload[at + 1] = uint8_t(pictureId);
  } else {
    if (at >= payload.size()) return false;
    payload[at] = uint8_t(pictureId & 0x7F);
  }
  return true;
}

bool writeVp8Tl0PicIdx(std::span<uint8_t> payload, const Vp8Layers& layers, uint8_t tl0PicIdx) {
  if (!layers.tl0PicIdx || layers.tl0PicIdxOffset >= payload.size()) return false;
  payload[layers.tl0PicIdxOffset] = tl0PicIdx;
  return true;
}

}  // namespace kaiwa::rtp

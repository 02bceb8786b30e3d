#pragma once
// The layer fields of a VP8 payload descriptor (RFC 7741 section 4.2) that simulcast forwarding reads and rewrites:
// the picture id (7 or 15 bits), TL0PICIDX, and the temporal layer index with its layer sync bit. payload.hpp has
// the descriptor's layout; this reads where each field sits, so the fields can be rewritten in place when the
// forwarded stream changes from one simulcast layer to another. Nothing here allocates or throws.
#include <cstdint>
#include <optional>
#include <span>

namespace kaiwa::rtp {

struct Vp8Layers {
  std::optional<uint16_t> pictureId;
  bool longPictureId = false;  // M: 15 bits (else 7)
  size_t pictureIdOffset = 0;
  std::optional<uint8_t> tl0PicIdx;
  size_t tl0PicIdxOffset = 0;
  uint8_t temporalId = 0;   // TID; 0 when the T bit is absent
  bool layerSync = false;   // Y: the frame depends only on the base layer
  bool frameStart = false;  // S = 1 and PID = 0
};

// nullopt when the descriptor runs past the payload.
std::optional<Vp8Layers> parseVp8Layers(std::span<const uint8_t> payload);
// Writes a picture id in the descriptor's own form: a 7-bit id is written modulo 128. False when it has none.
bool writeVp8PictureId(std::span<uint8_t> payload, const Vp8Layers& layers, uint16_t pictureId);
bool writeVp8Tl0PicIdx(std::span<uint8_t> payload, const Vp8Layers& layers, uint8_t tl0PicIdx);

}  // namespace kaiwa::rtp

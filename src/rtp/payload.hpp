#pragma once
// What the SFU and the recorder need to know of a video RTP payload without decoding it: where a VP8 frame starts
// and whether it is a keyframe (RFC 7741), and the picture size a VP8 keyframe carries (RFC 6386 section 9.1).
// Bounds-checked views over the caller's bytes; nothing here allocates or throws.
//
// VP8 payload descriptor (RFC 7741 section 4.2), then the VP8 payload header of the first packet of a frame:
//
//        0 1 2 3 4 5 6 7
//       +-+-+-+-+-+-+-+-+
//       |X|R|N|S|R| PID |  S: start of a partition, PID: its index
//       +-+-+-+-+-+-+-+-+
//  X:   |I|L|T|K| RSV   |  which optional fields follow
//       +-+-+-+-+-+-+-+-+
//  I:   |M| PictureID   |  M: a 15-bit picture id (a second byte follows)
//       +-+-+-+-+-+-+-+-+
//  L:   |   TL0PICIDX   |
//       +-+-+-+-+-+-+-+-+
//  T/K: |TID|Y| KEYIDX  |
//       +-+-+-+-+-+-+-+-+
//       | Size0 |H| VER |P|  the frame tag: P = 0 on a keyframe (S = 1 and PID = 0 only)
//       +-+-+-+-+-+-+-+-+
#include <cstdint>
#include <optional>
#include <span>

namespace kaiwa::rtp {

struct Vp8Descriptor {
  bool start = false;     // S: the packet starts a partition
  uint8_t partition = 0;  // PID
  size_t size = 0;        // bytes of descriptor before the VP8 data
  std::optional<uint16_t> pictureId;
  // True on the first packet of a keyframe: S = 1, PID = 0 and the frame tag's P bit clear.
  bool keyframe = false;
  // The start of a frame: S = 1 and PID = 0.
  bool frameStart() const { return start && partition == 0; }
};

// Parses the descriptor of a VP8 payload; nullopt if it runs past the payload or leaves no VP8 data.
std::optional<Vp8Descriptor> parseVp8(std::span<const uint8_t> payload);

struct PictureSize {
  uint16_t width = 0;  // the 14-bit size (the 2-bit scale above it is not applied)
  uint16_t height = 0;
};

// The picture size in a VP8 keyframe's uncompressed header (frame tag, start code 9d 01 2a, sizes); nullopt for an
// inter frame or bytes that are not a keyframe header. `frame` is VP8 data (after the payload descriptor).
std::optional<PictureSize> vp8KeyframeSize(std::span<const uint8_t> frame);

}  // namespace kaiwa::rtp

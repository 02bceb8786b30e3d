#pragma once
// The 12-byte RTP header (RFC 3550) the recorder's tests, fuzzer and benchmark put in front of their payloads:
// version 2, payload type 96, a fixed SSRC.
#include <cstdint>
#include <vector>

namespace kaiwa::record::test {

inline std::vector<uint8_t> rtpHeader(uint16_t seq, uint32_t ts, bool marker) {
  return {0x80,
          static_cast<uint8_t>((marker ? 0x80 : 0) | 96),
          static_cast<uint8_t>(seq >> 8),
          static_cast<uint8_t>(seq),
          static_cast<uint8_t>(ts >> 24),
          static_cast<uint8_t>(ts >> 16),
          static_cast<uint8_t>(ts >> 8),
          static_cast<uint8_t>(ts),
          0x11,
          0x22,
          0x33,
          0x44};
}

}  // namespace kaiwa::record::test

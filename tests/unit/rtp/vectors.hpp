#pragma once
// RTP and RTCP packets laid out as Chromium sends them (docs: ../shared/docs/sfu.md lists its extmap ids: audio
// 1 ssrc-audio-level, 2 abs-send-time, 3 transport-wide-cc, 4 sdes:mid; video adds 10 rtp-stream-id and 11
// repaired-rtp-stream-id), written by hand from the RFCs. Real captured packets replace them once kaiwa decrypts
// SRTP (they are encrypted on the wire, so a capture is only readable from inside the SFU).
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace kaiwa::rtp::test {

inline std::vector<uint8_t> hex(std::string_view h) {
  std::vector<uint8_t> out;
  std::string digits;
  for (char c : h) {
    if (c != ' ' && c != '\n') digits.push_back(c);
  }
  for (size_t i = 0; i + 1 < digits.size(); i += 2) out.push_back(uint8_t(std::stoi(digits.substr(i, 2), nullptr, 16)));
  return out;
}

// Opus (PT 111), seq 0x1234, ts 0x3a98, SSRC 0x11223344; one-byte extensions: id 1 audio level (voice, 43 dBov
// below full scale), id 3 transport-wide seq 0x0567, id 4 mid "0", one padding byte; a 3-byte payload.
inline const std::vector<uint8_t> kChromiumAudio =
    hex("906f1234 00003a98 11223344"
        "bede0002 10ab 310567 4030 00"
        "fcfffe");

// VP8 (PT 96) of the simulcast layer "h", marker set, seq 0xffff (the next one wraps), ts 0x01020304,
// SSRC 0xa1b2c3d4; extensions: id 3 transport-wide seq 1, id 4 mid "1", id 10 rid "h", id 2 abs-send-time, one
// padding byte; a 4-byte payload.
inline const std::vector<uint8_t> kChromiumVideo =
    hex("90e0ffff 01020304 a1b2c3d4"
        "bede0003 310001 4031 a068 22aabbcc 00"
        "90e00a0b");

// Its RTX (PT 97, SSRC 0x0badf00d, seq 7): repaired rid "h" (id 11) instead of the rid, OSN 0xffff before the
// original payload.
inline const std::vector<uint8_t> kChromiumRtx =
    hex("90610007 01020304 0badf00d"
        "bede0002 310002 4031 b068 00"
        "ffff 90e00a0b");

}  // namespace kaiwa::rtp::test

#pragma once
// An H.264 stream for the recorder's tests, fuzzer corpus and benchmark: an Annex-B file (tests/unit/record/data,
// made with ffmpeg's libx264 from its test pattern: 120x90, constrained baseline, 60 frames at 30 fps, a keyframe
// every 30, several slices per picture) split into access units, and an RFC 6184 packetizer for them (packetization
// mode 1: NAL units that fit `mtu` are sent alone or, when several in a row fit together, in a STAP-A; larger ones in
// FU-A fragments; the marker on an access unit's last packet).
#include <cstdint>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "record/rtp_header.hpp"

#ifndef KAIWA_RECORD_TESTDATA
#define KAIWA_RECORD_TESTDATA "tests/unit/record/data"
#endif

namespace kaiwa::record::test {

using Nal = std::vector<uint8_t>;
using AccessUnit = std::vector<Nal>;

inline std::vector<uint8_t> readFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

// The NAL units of an Annex-B stream, start codes removed.
inline std::vector<Nal> splitAnnexB(const std::vector<uint8_t>& s) {
  std::vector<Nal> out;
  size_t i = 0;
  auto startCode = [&](size_t at) { return at + 3 <= s.size() && s[at] == 0 && s[at + 1] == 0 && s[at + 2] == 1; };
  while (i < s.size() && !startCode(i)) ++i;
  while (i < s.size()) {
    i += 3;
    size_t j = i;
    while (j < s.size() && !startCode(j)) ++j;
    size_t end = j;
    while (end > i && s[end - 1] == 0) --end;  // the zero byte of a 4-byte start code, trailing zeros
    out.emplace_back(s.begin() + static_cast<std::ptrdiff_t>(i), s.begin() + static_cast<std::ptrdiff_t>(end));
    i = j;
  }
  return out;
}

// Groups NAL units into access units: a new one begins at a parameter set, SEI or delimiter after a slice, and at a
// slice whose first_mb_in_slice is 0 (its first bit after the header is 1) after a slice.
inline std::vector<AccessUnit> accessUnits(const std::vector<Nal>& nals) {
  std::vector<AccessUnit> out;
  bool afterSlice = false;
  for (const Nal& n : nals) {
    const uint8_t type = n[0] & 0x1F;
    const bool slice = type == 1 || type == 5;
    const bool begins = out.empty() || (afterSlice && (!slice || (n.size() > 1 && (n[1] & 0x80) != 0)));
    if (begins) out.emplace_back();
    out.back().push_back(n);
    afterSlice = slice;
  }
  return out;
}

inline std::vector<AccessUnit> testStream() {
  return accessUnits(splitAnnexB(readFile(std::string(KAIWA_RECORD_TESTDATA) + "/testsrc-120x90.h264")));
}

// An access unit's RTP payloads.
inline std::vector<std::vector<uint8_t>> packetize(const AccessUnit& au, size_t mtu) {
  std::vector<std::vector<uint8_t>> out;
  for (size_t i = 0; i < au.size();) {
    const Nal& n = au[i];
    if (n.size() > mtu) {  // FU-A
      const uint8_t indicator = static_cast<uint8_t>((n[0] & 0xE0) | 28);
      for (size_t at = 1; at < n.size(); at += mtu - 2) {
        const size_t take = std::min(mtu - 2, n.size() - at);
        const uint8_t header =
            static_cast<uint8_t>((at == 1 ? 0x80 : 0) | (at + take == n.size() ? 0x40 : 0) | (n[0] & 0x1F));
        std::vector<uint8_t> p{indicator, header};
        p.insert(p.end(), n.begin() + static_cast<std::ptrdiff_t>(at),
                 n.begin() + static_cast<std::ptrdiff_t>(at + take));
        out.push_back(std::move(p));
      }
      ++i;
      continue;
    }
    // As many following units as fit in one STAP-A (1 byte of header, 2 of size each).
    size_t j = i, size = 1;
    while (j < au.size() && size + 2 + au[j].size() <= mtu) size += 2 + au[j++].size();
    if (j - i >= 2) {
      std::vector<uint8_t> p{static_cast<uint8_t>((n[0] & 0x60) | 24)};
      for (size_t k = i; k < j; ++k) {
        p.push_back(static_cast<uint8_t>(au[k].size() >> 8));
        p.push_back(static_cast<uint8_t>(au[k].size()));
        p.insert(p.end(), au[k].begin(), au[k].end());
      }
      out.push_back(std::move(p));
      i = j;
    } else {
      out.push_back(n);
      ++i;
    }
  }
  return out;
}

// The access unit as the recorder writes it: each NAL unit behind its 4-byte length.
inline std::vector<uint8_t> lengthPrefixed(const AccessUnit& au) {
  std::vector<uint8_t> out;
  for (const Nal& n : au) {
    for (int i = 3; i >= 0; --i) out.push_back(static_cast<uint8_t>(n.size() >> (8 * i)));
    out.insert(out.end(), n.begin(), n.end());
  }
  return out;
}

struct RtpOut {
  std::vector<uint8_t> bytes;
  size_t frame = 0;  // the access unit it belongs to
};

// The stream as RTP packets (sequence numbers from `seq`, 3000 ticks of 90 kHz a frame from `ts`).
inline std::vector<RtpOut> rtpStream(const std::vector<AccessUnit>& aus, size_t mtu, uint16_t seq, uint32_t ts) {
  std::vector<RtpOut> out;
  for (size_t f = 0; f < aus.size(); ++f) {
    auto payloads = packetize(aus[f], mtu);
    for (size_t k = 0; k < payloads.size(); ++k) {
      RtpOut p{rtpHeader(seq++, static_cast<uint32_t>(ts + f * 3000), k + 1 == payloads.size()), f};
      p.bytes.insert(p.bytes.end(), payloads[k].begin(), payloads[k].end());
      out.push_back(std::move(p));
    }
  }
  return out;
}

}  // namespace kaiwa::record::test

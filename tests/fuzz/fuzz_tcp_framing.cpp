// fuzz_tcp_framing: media::FrameReader (RFC 4571 framing of ICE-TCP) on arbitrary bytes, read in pieces of sizes
// the input chooses, the way media/tcp_port.cpp reads a socket into space().
// Invariants: reading never crashes; space() is never empty before a failure and never larger than asked for; the
// frames handed out are exactly those an independent reading of the whole input finds (empty frames skipped), in
// order, up to the first frame over the maximum, which fails the reader for good; no frame exceeds the maximum.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "fuzz_util.hpp"
#include "media/tcp_framing.hpp"

using kaiwa::media::FrameReader;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 3) return 0;
  const size_t maxFrame = size_t(data[0]) * 8 + 1;                   // 1 .. 2041 bytes
  const size_t capacity = maxFrame + 2 + size_t(data[1] % 4) * 512;  // the smallest buffer and larger ones
  const uint8_t pieces = data[2];
  const uint8_t* in = data + 3;
  const size_t n = size - 3;

  // The reference: the frames of the whole input, read directly.
  std::vector<std::string> expected;
  bool expectTooLarge = false;
  for (size_t at = 0; at + 2 <= n;) {
    const size_t length = size_t(in[at]) << 8 | in[at + 1];
    if (length > maxFrame) {
      expectTooLarge = true;
      break;
    }
    if (at + 2 + length > n) break;
    if (length > 0) expected.emplace_back(reinterpret_cast<const char*>(in + at + 2), length);
    at += 2 + length;
  }

  FrameReader reader(maxFrame, capacity);
  std::vector<std::string> got;
  bool tooLarge = false;
  size_t at = 0;
  unsigned round = 0;
  while (at < n && !tooLarge) {
    auto space = reader.space();
    FUZZ_CHECK(!space.empty());
    FUZZ_CHECK(space.size() <= capacity);
    // Piece sizes from 1 byte up, varied by the input's third byte and the round.
    const size_t piece = 1 + ((pieces + round * 37u) % 97u) * ((round % 3u) + 1u);
    ++round;
    const size_t take = std::min({piece, space.size(), n - at});
    std::memcpy(space.data(), in + at, take);
    reader.commit(take);
    at += take;
    for (;;) {
      auto next = reader.next();
      if (next.status == FrameReader::Status::kFrame) {
        FUZZ_CHECK(!next.frame.empty());
        FUZZ_CHECK(next.frame.size() <= maxFrame);
        got.emplace_back(next.frame.begin(), next.frame.end());
        continue;
      }
      if (next.status == FrameReader::Status::kTooLarge) tooLarge = true;
      break;
    }
  }
  FUZZ_CHECK(tooLarge == expectTooLarge);
  FUZZ_CHECK(got == expected);
  if (tooLarge) {
    FUZZ_CHECK(reader.failed());
    FUZZ_CHECK(reader.space().empty());
  }
  return 0;
}

// fuzz_ws_frame: ws::FrameReader (RFC 6455 client frames) on arbitrary bytes, read whole and read in pieces the way
// http/websocket.cpp feeds it (the unconsumed tail kept and fed again with what follows).
// Invariants: reading never crashes; reading in pieces gives exactly the events, error and closed state of reading
// everything at once; no message exceeds the limit; text messages are valid UTF-8 (checked against an independent
// validator, which must also agree with ws::validUtf8 on every text); nothing is handed out after a close or an
// error; server frame headers written for the message sizes seen parse back.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_util.hpp"
#include "ws/frame.hpp"

using namespace kaiwa::ws;

namespace {

struct Recorder : FrameSink {
  std::vector<std::string> events;
  std::size_t maxMessage = 0;
  bool ended = false;  // a close came

  bool onMessage(std::string_view payload, bool binary) override {
    FUZZ_CHECK(!ended);
    FUZZ_CHECK(payload.size() <= maxMessage);
    if (!binary) {
      FUZZ_CHECK(kaiwa::fuzz::validUtf8(payload), payload);
    }
    events.push_back((binary ? "B" : "T") + std::string(payload));
    return true;
  }
  void onPing(std::string_view payload) override {
    FUZZ_CHECK(!ended);
    FUZZ_CHECK(payload.size() <= 125);
    events.push_back("P" + std::string(payload));
  }
  void onPong(std::string_view payload) override {
    FUZZ_CHECK(!ended);
    events.push_back("O" + std::string(payload));
  }
  void onClose(uint16_t code, std::string_view reason) override {
    FUZZ_CHECK(!ended);
    FUZZ_CHECK(kaiwa::fuzz::validUtf8(reason), reason);
    ended = true;
    events.push_back("C" + std::to_string(code) + ":" + std::string(reason));
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  std::size_t maxMessage = std::size_t(data[0]) * 64 + 1;  // 1 .. 16321 bytes
  std::size_t piece = std::size_t(data[1] % 64) + 1;       // 1 .. 64 bytes per read
  std::string input(reinterpret_cast<const char*>(data + 2), size - 2);

  FUZZ_CHECK(validUtf8(input) == kaiwa::fuzz::validUtf8(input));

  // All at once.
  FrameReader whole(maxMessage);
  Recorder a;
  a.maxMessage = maxMessage;
  std::string bytesA = input;
  std::size_t used = whole.read(bytesA.data(), bytesA.size(), a);
  FUZZ_CHECK(used <= bytesA.size());
  if (whole.error()) {
    FUZZ_CHECK(whole.error() == kCloseProtocolError || whole.error() == kCloseBadData || whole.error() == kCloseTooBig);
    std::string more = "\x81\x80\x00\x00\x00\x00";  // an empty masked text frame: must not be read now
    FUZZ_CHECK(whole.read(more.data(), more.size(), a) == 0);
  }

  // In pieces, keeping the unconsumed tail as the server does.
  FrameReader pieces(maxMessage);
  Recorder b;
  b.maxMessage = maxMessage;
  std::string tail;
  for (std::size_t off = 0; off < input.size() && !pieces.error() && !pieces.closed(); off += piece) {
    tail.append(input, off, piece);
    std::size_t n = pieces.read(tail.data(), tail.size(), b);
    tail.erase(0, n);
  }
  FUZZ_CHECK(a.events == b.events);
  FUZZ_CHECK(whole.error() == pieces.error());
  FUZZ_CHECK(whole.closed() == pieces.closed());

  for (const std::string& e : a.events) {
    uint8_t header[kMaxHeaderBytes];
    std::size_t h = writeHeader(header, Opcode::kBinary, e.size());
    FUZZ_CHECK(h == (e.size() < 126 ? 2u : e.size() <= 0xFFFF ? 4u : 10u));
  }
  return 0;
}

#pragma once
// RFC 6455 framing, server side, sans-I/O: the opening handshake's accept key, server frame headers, and an
// incremental reader of client frames that unmasks in place and reassembles fragmented messages.
//
// The reader works on the caller's bytes: it consumes only whole frames, so the caller keeps the unconsumed tail
// (a partial frame) and feeds it again with more bytes behind it. A complete unfragmented message is handed out as a
// view into the caller's buffer, with no copy; only fragmented messages are gathered in the reader.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "ws/close_code.hpp"

namespace kaiwa::ws {

enum class Opcode : uint8_t { kContinuation = 0x0, kText = 0x1, kBinary = 0x2, kClose = 0x8, kPing = 0x9, kPong = 0xA };

// Sec-WebSocket-Accept for a client's Sec-WebSocket-Key: base64(SHA-1(key + the RFC's GUID)).
std::string acceptKey(std::string_view clientKey);
// A Sec-WebSocket-Key must be the base64 of 16 bytes.
bool validClientKey(std::string_view clientKey);

// Longest server frame header: 2 bytes, then a 64-bit length.
inline constexpr std::size_t kMaxHeaderBytes = 10;
// Writes the header of one unfragmented, unmasked frame carrying `payloadBytes`; returns its length (2, 4 or 10).
std::size_t writeHeader(uint8_t* out, Opcode opcode, std::size_t payloadBytes);
// A whole close frame with `code` and `reason` (cut to the 123 bytes a control frame leaves).
std::string closeFrame(uint16_t code, std::string_view reason);

// Is `text` well-formed UTF-8 (no overlong forms, no surrogates, nothing above U+10FFFF)?
bool validUtf8(std::string_view text);

// What the reader hands out, in order of arrival.
class FrameSink {
 public:
  virtual ~FrameSink() = default;
  // A whole data message (text already checked to be UTF-8). Return false to stop reading further frames.
  virtual bool onMessage(std::string_view payload, bool binary) = 0;
  virtual void onPing(std::string_view payload) = 0;
  virtual void onPong(std::string_view payload) {}
  // The peer's close frame: `code` is kCloseNoStatus when it carried none. The reader stops after it.
  virtual void onClose(uint16_t code, std::string_view reason) = 0;
};

class FrameReader {
 public:
  explicit FrameReader(std::size_t maxMessageBytes) : maxMessage_(maxMessageBytes) {}

  // Reads the whole frames at the front of `data` (unmasking them in place), calling `sink` for each message and
  // control frame. Stops after a close frame, an error, or when the sink asks to. Returns how many bytes it used;
  // the rest (a partial frame) is for the next call, with more bytes behind it.
  std::size_t read(char* data, std::size_t size, FrameSink& sink);

  // Non-zero once the peer broke the protocol: the close code to fail the connection with (1002, 1007 or 1009).
  // The reader reads nothing more then.
  uint16_t error() const { return error_; }
  // True once a close frame was read.
  bool closed() const { return closed_; }
  // What a fragmented message in progress holds (bounded by maxMessageBytes).
  std::size_t pendingBytes() const { return fragments_.size(); }

 private:
  std::size_t failAt(std::size_t pos, uint16_t code) {
    error_ = code;
    return pos;
  }

  std::size_t maxMessage_;
  std::string fragments_;  // a fragmented message so far (empty, no allocation, when none is in progress)
  uint16_t error_ = 0;
  bool inFragments_ = false;
  bool fragmentsBinary_ = false;
  bool closed_ = false;
};

}  // namespace kaiwa::ws

#pragma once
// RFC 4571 framing of ICE-TCP (RFC 6544 section 3): on a TCP connection every STUN message, DTLS record and
// SRTP/SRTCP packet travels as one frame, a 16-bit big-endian length and that many bytes.
//
//    0                   1                   2                   3
//    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//   |             LENGTH            |  STUN, DTLS or (S)RTP ...     |
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// FrameReader is sans-I/O and owns the receive buffer: the caller reads from the socket straight into space(),
// commits what it got, and takes whole frames in place with next() (a frame is a mutable view into the buffer, so
// the transport can unprotect SRTP where it lies; it stays valid until the next call of space() or commit()).
// Frames longer than the reader's maximum are an error for good: a peer that sends one is not speaking ICE-TCP to
// kaiwa (media frames are below 1500 bytes), and skipping it would let it make us read without bound. Empty
// frames carry nothing and are skipped.
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace kaiwa::media {

inline constexpr size_t kFrameHeader = 2;

class FrameReader {
 public:
  enum class Status : uint8_t {
    kFrame,     // frame() is a whole frame
    kNeedMore,  // no whole frame buffered: read more into space()
    kTooLarge,  // a frame over the maximum: close the connection
  };
  struct Next {
    Status status = Status::kNeedMore;
    std::span<uint8_t> frame;
  };

  // `maxFrame`: the largest frame accepted (at most 65535, RFC 4571's); the buffer holds `capacity` bytes (at
  // least maxFrame + 2, so that any frame fits whole), allocated at the first space().
  explicit FrameReader(size_t maxFrame, size_t capacity = 0);

  // Where the next read goes: never empty unless the reader failed (a whole frame of the maximum always fits
  // once the consumed frames are compacted away, which this does).
  std::span<uint8_t> space();
  // `n` bytes were written at the front of the last space().
  void commit(size_t n);
  // The next whole frame, or why none.
  Next next();

  bool failed() const { return failed_; }
  // Bytes received and not yet handed out (a partial frame, or whole frames not taken yet).
  size_t buffered() const { return end_ - start_; }
  // Gives the buffer back while nothing is buffered (an idle connection then holds no receive buffer).
  void release();

 private:
  size_t maxFrame_;
  size_t capacity_;
  std::vector<uint8_t> buffer_;
  size_t start_ = 0;  // the first byte not handed out
  size_t end_ = 0;    // one past the last byte received
  bool failed_ = false;
};

// Writes the 2-byte header of a frame of `size` bytes (size <= 65535) into `out`.
inline void writeFrameHeader(size_t size, uint8_t out[kFrameHeader]) {
  out[0] = uint8_t(size >> 8);
  out[1] = uint8_t(size);
}

}  // namespace kaiwa::media

#pragma once
// Puts a published track's RTP packets (decrypted, in the publisher's sequence and timestamp space) back into the
// frames a file holds: an Opus packet is a frame; a VP8 frame is the packets of one timestamp from the one that
// starts partition 0 to the one with the marker bit, descriptors removed (RFC 7741); an H.264 frame (access unit) is
// the packets of one timestamp up to the marker bit, depacketized (RFC 6184: single NAL units, STAP-A, FU-A) into
// length-prefixed NAL units (record/h264.hpp), a keyframe being an IDR picture with its SPS and PPS. Sans-I/O, driven
// by the caller's clock.
//
// Packets may arrive out of order or late (a retransmission answers kaiwa's NACK after a round trip), so a frame
// missing a packet is waited for, up to kMaxWait or kMaxPending packets behind it. Then it is given up: for audio
// the gap is skipped; for video every frame up to the next keyframe is dropped (an inter frame without its reference
// would decode as garbage) and keyframeWanted() turns true until one arrives. Frames come out in order, each once.
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <vector>

#include "common/clock.hpp"
#include "record/h264.hpp"
#include "record/webm_writer.hpp"
#include "rtp/packet.hpp"

namespace kaiwa::record {

struct Frame {
  int64_t timestamp = 0;  // the RTP timestamp, unwrapped (continues past 2^32)
  bool keyframe = false;  // always true for audio
  std::span<const uint8_t> data;
};

struct AssemblerCounters {
  uint64_t packets = 0;        // accepted into the assembler
  uint64_t late = 0;           // older than what was already written out, or duplicates: dropped
  uint64_t malformed = 0;      // VP8 packets without a valid descriptor, empty Opus packets, H.264 payloads that are
                               // not RFC 6184 mode 1 (or frames whose fragments do not fit together): dropped
  uint64_t frames = 0;         // handed out
  uint64_t framesDropped = 0;  // incomplete, or inter frames while waiting for a keyframe
  uint64_t gaps = 0;           // times a missing packet was given up on
};

class FrameAssembler {
 public:
  static constexpr std::chrono::milliseconds kMaxWait{500};
  static constexpr size_t kMaxPending = 512;

  using Sink = std::function<void(const Frame&)>;

  FrameAssembler(Codec codec, Sink sink)
      : codec_(codec), sink_(std::move(sink)), needKeyframe_(codec != Codec::kOpus) {}

  void push(const rtp::Packet& packet, TimePoint now);
  // Gives up on a missing packet that has been waited for long enough (call it now and then, e.g. every second,
  // so a stream that stopped still writes what it has).
  void tick(TimePoint now);
  // Hands out every complete frame still held, in order, skipping gaps (at the end of a recording).
  void flush();

  // Video: true from the start and after a gap until a keyframe is written. The caller asks the publisher for one.
  bool keyframeWanted() const { return needKeyframe_; }
  const AssemblerCounters& counters() const { return counters_; }
  // Packets held, waiting for their frame to complete: at most kMaxPending + 1.
  size_t held() const { return pending_.size(); }

 private:
  struct Pending {
    int64_t timestamp;
    bool marker;
    bool frameStart;
    bool keyframe;
    std::vector<uint8_t> data;
  };

  int64_t unwrapSequence(uint16_t seq);
  int64_t unwrapTimestamp(uint32_t ts);
  // Hands out the frames that are complete from next_ on; stops at the first missing packet.
  void drain();
  // Skips the missing packet at next_: drops what cannot be completed and moves next_ to the next frame start.
  void skipGap();
  void emit(int64_t timestamp, bool keyframe, int64_t first, int64_t last);
  void emitAccessUnit(int64_t timestamp, std::map<int64_t, Pending>::iterator begin,
                      std::map<int64_t, Pending>::iterator end);

  Codec codec_;
  Sink sink_;
  std::map<int64_t, Pending> pending_;  // by extended sequence number
  std::optional<int64_t> next_;         // packets before it are written out or given up
  bool aligned_ = false;                // next_ is known to start a frame (else: the first frame start after it)
  std::optional<TimePoint> waitingSince_;
  bool needKeyframe_;
  bool seqStarted_ = false;
  int64_t lastSeq_ = 0;
  bool tsStarted_ = false;
  int64_t lastTs_ = 0;
  std::vector<uint8_t> frame_;  // the frame being handed out, reused
  h264::AccessUnitBuilder accessUnit_;
  AssemblerCounters counters_;
};

}  // namespace kaiwa::record

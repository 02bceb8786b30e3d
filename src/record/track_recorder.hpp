#pragma once
// One published track into one WebM (or, for H.264, Matroska) file: RTP packets in (decrypted, as the publisher sent
// them), frames out through FrameAssembler, written by WebmWriter with times in milliseconds from the track's first
// written frame. Video waits for a keyframe to begin (its picture size goes in the header); keyframeWanted() says when
// the caller should ask the publisher for one (at the start, and after a loss the recording could not repair). Sans-I/O
// but for the sink.
#include <memory>

#include "record/frame_assembler.hpp"
#include "record/webm_writer.hpp"

namespace kaiwa::record {

struct TrackRecorderStats {
  uint64_t frames = 0;      // written to the file
  uint64_t bytes = 0;       // the file's size so far
  uint64_t durationMs = 0;  // of what is written
  bool failed = false;      // the sink failed: nothing more is written
};

class TrackRecorder {
 public:
  // `clockRate` is the RTP clock of the track's codec (48000 for Opus, 90000 for VP8 and H.264).
  TrackRecorder(Codec codec, uint32_t clockRate, std::unique_ptr<Sink> sink, uint8_t channels = 2);

  void push(const rtp::Packet& packet, TimePoint now) { assembler_.push(packet, now); }
  void tick(TimePoint now) { assembler_.tick(now); }
  // Writes what is complete, closes the file's structure (Cues, sizes, Duration). False if the sink failed.
  bool finish();

  // Also true for video until the file has begun: a keyframe whose header cannot be read (a VP8 frame header, an H.264
  // SPS) is skipped, and another one is needed.
  bool keyframeWanted() const { return assembler_.keyframeWanted() || (codec_ != Codec::kOpus && !begun_); }
  TrackRecorderStats stats() const;
  const FrameAssembler& assembler() const { return assembler_; }
  Sink& sink() { return *sink_; }

 private:
  void onFrame(const Frame& frame);

  Codec codec_;
  uint32_t clockRate_;
  uint8_t channels_;
  std::unique_ptr<Sink> sink_;
  WebmWriter writer_;
  FrameAssembler assembler_;
  bool begun_ = false;
  int64_t firstTimestamp_ = 0;
};

}  // namespace kaiwa::record

#include "record/track_recorder.hpp"

#include "record/h264.hpp"
#include "rtp/payload.hpp"

namespace kaiwa::record {

TrackRecorder::TrackRecorder(Codec codec, uint32_t clockRate, std::unique_ptr<Sink> sink, uint8_t channels)
    : codec_(codec), clockRate_(clockRate == 0 ? 1 : clockRate), channels_(channels), sink_(std::move(sink)),
      writer_(*sink_), assembler_(codec, [this](const Frame& f) { onFrame(f); }) {}

void TrackRecorder::onFrame(const Frame& frame) {
  if (!begun_) {
    TrackInfo info{.codec = codec_, .channels = channels_};
    if (codec_ == Codec::kVp8) {
      auto size = rtp::vp8KeyframeSize(frame.data);
      if (!size) return;  // the assembler hands out keyframes first; one without a readable header is skipped
      info.width = size->width;
      info.height = size->height;
    } else if (codec_ == Codec::kH264) {
      auto config = h264::configOf(frame.data);
      if (!config) return;  // a keyframe whose SPS cannot be read is skipped, as for VP8
      info.width = config->size.width;
      info.height = config->size.height;
      info.codecPrivate = std::move(config->avcC);
    }
    if (!writer_.begin(info)) return;
    begun_ = true;
    firstTimestamp_ = frame.timestamp;
  }
  const int64_t ticks = frame.timestamp - firstTimestamp_;
  if (ticks < 0) return;  // a timestamp from before the first frame (a publisher that restarted its clock)
  writer_.write(static_cast<uint64_t>(ticks) * 1000 / clockRate_, frame.keyframe, frame.data);
}

bool TrackRecorder::finish() {
  assembler_.flush();
  if (!begun_) writer_.begin({.codec = codec_, .channels = channels_});  // an empty but valid file
  return writer_.finish();
}

TrackRecorderStats TrackRecorder::stats() const {
  return {writer_.frames(), sink_->size(), writer_.durationMs(), writer_.failed()};
}

}  // namespace kaiwa::record

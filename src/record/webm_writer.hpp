#pragma once
// A WebM (Matroska) writer for one recorded track: Opus or VP8 frames in, a file that players can seek out; H.264
// access units (length-prefixed NAL units) in, a Matroska file (doc type "matroska", codec V_MPEG4/ISO/AVC with the
// avcC as CodecPrivate: WebM allows only VP8/VP9/AV1, Opus and Vorbis). Debian's
// libwebm ships only its parser's headers (the muxer's are not packaged), so the few elements a recording needs are
// written here; the unit tests read every file back with that parser.
//
// Layout: the EBML header; a Segment whose size is patched at the end; 80 reserved bytes that become the SeekHead
// (Info, Tracks, Cues) at the end; Info (1 ms timestamp scale, the Duration patched at the end); Tracks (one entry);
// Clusters of SimpleBlocks, each Cluster's size patched when the next begins; Cues (one point per Cluster that starts
// with a keyframe). A new Cluster starts at every video keyframe, after 5 s of audio, and before a block's time would
// leave the 16-bit offset from its Cluster's time. Nothing is buffered but the Cues (16 bytes per Cluster).
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace kaiwa::record {

// Where the bytes go: appended in order; patch() rewrites bytes already appended (sizes known only later).
class Sink {
 public:
  virtual ~Sink() = default;
  virtual bool append(std::span<const uint8_t> bytes) = 0;
  virtual bool patch(uint64_t offset, std::span<const uint8_t> bytes) = 0;
  virtual uint64_t size() const = 0;
};

// A Sink in memory (for tests, and for small files built before they are stored).
class MemorySink final : public Sink {
 public:
  bool append(std::span<const uint8_t> bytes) override;
  bool patch(uint64_t offset, std::span<const uint8_t> bytes) override;
  uint64_t size() const override { return bytes_.size(); }
  const std::vector<uint8_t>& bytes() const { return bytes_; }

 private:
  std::vector<uint8_t> bytes_;
};

enum class Codec : uint8_t { kOpus, kVp8, kH264 };

struct TrackInfo {
  Codec codec = Codec::kOpus;
  uint16_t width = 0;  // video: the first keyframe's picture size
  uint16_t height = 0;
  uint8_t channels = 2;  // audio: what the SDP's opus/48000/2 says; the decoder follows each packet's own flag
  uint64_t uid = 1;      // TrackUID, unique within the file
  // H.264: the decoder configuration record (avcC) from the first keyframe's SPS and PPS (record/h264.hpp).
  std::vector<uint8_t> codecPrivate{};
};

class WebmWriter {
 public:
  explicit WebmWriter(Sink& sink) : sink_(sink) {}

  // Writes everything before the first frame. False if the sink failed (nothing more is written then).
  bool begin(const TrackInfo& track);
  // One frame at `timeMs` from the start of the recording; times must not go backwards (an earlier one is refused
  // with false and nothing written), and so is an empty frame. A video file's first frame must be a keyframe.
  bool write(uint64_t timeMs, bool keyframe, std::span<const uint8_t> frame);
  // Closes the last Cluster, writes the Cues, patches the sizes, the Duration and the SeekHead. Idempotent.
  bool finish();

  bool failed() const { return failed_; }
  uint64_t frames() const { return frames_; }
  // The Duration written at finish(): the last frame's time plus one frame (20 ms of audio, or the last gap between
  // video frames, at most 1 s).
  uint64_t durationMs() const;

 private:
  bool startCluster(uint64_t timeMs, bool cue);
  bool closeCluster();
  bool put(std::span<const uint8_t> bytes);
  bool patchAt(uint64_t offset, std::span<const uint8_t> bytes);

  struct Cue {
    uint64_t timeMs;
    uint64_t clusterPosition;  // from the start of the Segment's data
  };

  Sink& sink_;
  TrackInfo track_;
  bool begun_ = false;
  bool finished_ = false;
  bool failed_ = false;
  uint64_t segmentSizeAt_ = 0;  // where the Segment's 8-byte size goes
  uint64_t segmentDataAt_ = 0;  // where its data starts (Seek and Cue positions count from here)
  uint64_t seekHeadAt_ = 0;
  uint64_t infoAt_ = 0;
  uint64_t tracksAt_ = 0;
  uint64_t durationAt_ = 0;  // the Duration float's 8 bytes
  bool clusterOpen_ = false;
  uint64_t clusterSizeAt_ = 0;
  uint64_t clusterTimeMs_ = 0;
  uint64_t frames_ = 0;
  uint64_t lastTimeMs_ = 0;
  uint64_t lastGapMs_ = 0;
  std::vector<Cue> cues_;
};

}  // namespace kaiwa::record

#pragma once
// Reads a WebM file back with Debian's libwebm parser, for the recorder's tests: what a player would find in it.
#include <webm/buffer_reader.h>
#include <webm/callback.h>
#include <webm/webm_parser.h>

#include <cstdint>
#include <string>
#include <vector>

namespace kaiwa::record::test {

struct ReadBlock {
  uint64_t timeMs = 0;  // the Cluster's time plus the block's offset
  bool keyframe = false;
  std::vector<uint8_t> data;
};

struct ReadFile {
  bool parsed = false;  // the parser reached the end with no error
  std::string docType;
  uint64_t timecodeScale = 0;
  double durationMs = -1;
  std::string codecId;
  uint64_t trackType = 0;
  uint64_t width = 0;
  uint64_t height = 0;
  uint64_t channels = 0;
  std::vector<uint8_t> codecPrivate;
  std::vector<uint64_t> clusterTimes;
  std::vector<ReadBlock> blocks;
  std::vector<uint64_t> cueTimes;
  std::vector<uint64_t> cuePositions;
  std::vector<uint64_t> seekIds;
  std::vector<uint64_t> clusterPositions;  // each Cluster's offset from the Segment's data, as the parser saw it
};

class Collector : public webm::Callback {
 public:
  explicit Collector(ReadFile& out) : out_(out) {}

  webm::Status OnEbml(const webm::ElementMetadata&, const webm::Ebml& ebml) override {
    out_.docType = ebml.doc_type.value();
    return webm::Status(webm::Status::kOkCompleted);
  }
  webm::Status OnSegmentBegin(const webm::ElementMetadata& m, webm::Action* action) override {
    segmentData_ = m.position + m.header_size;
    *action = webm::Action::kRead;
    return webm::Status(webm::Status::kOkCompleted);
  }
  webm::Status OnSeek(const webm::ElementMetadata&, const webm::Seek& seek) override {
    out_.seekIds.push_back(static_cast<uint64_t>(seek.id.value()));
    return webm::Status(webm::Status::kOkCompleted);
  }
  webm::Status OnInfo(const webm::ElementMetadata&, const webm::Info& info) override {
    out_.timecodeScale = info.timecode_scale.value();
    if (info.duration.is_present()) out_.durationMs = info.duration.value();
    return webm::Status(webm::Status::kOkCompleted);
  }
  webm::Status OnTrackEntry(const webm::ElementMetadata&, const webm::TrackEntry& t) override {
    out_.codecId = t.codec_id.value();
    out_.trackType = static_cast<uint64_t>(t.track_type.value());
    out_.codecPrivate = t.codec_private.value();
    if (t.video.is_present()) {
      out_.width = t.video.value().pixel_width.value();
      out_.height = t.video.value().pixel_height.value();
    }
    if (t.audio.is_present()) out_.channels = t.audio.value().channels.value();
    return webm::Status(webm::Status::kOkCompleted);
  }
  webm::Status OnClusterBegin(const webm::ElementMetadata& m, const webm::Cluster&, webm::Action* action) override {
    out_.clusterPositions.push_back(m.position - segmentData_);
    *action = webm::Action::kRead;
    return webm::Status(webm::Status::kOkCompleted);
  }
  webm::Status OnSimpleBlockBegin(const webm::ElementMetadata&, const webm::SimpleBlock& b,
                                  webm::Action* action) override {
    pending_.push_back({static_cast<uint64_t>(b.timecode), b.is_key_frame, {}});
    *action = webm::Action::kRead;
    return webm::Status(webm::Status::kOkCompleted);
  }
  webm::Status OnFrame(const webm::FrameMetadata&, webm::Reader* reader, uint64_t* remaining) override {
    while (*remaining > 0) {
      uint8_t buf[4096];
      uint64_t got = 0;
      const auto want = static_cast<size_t>(std::min<uint64_t>(*remaining, sizeof buf));
      webm::Status s = reader->Read(want, buf, &got);
      pending_.back().data.insert(pending_.back().data.end(), buf, buf + got);
      *remaining -= got;
      if (!s.completed_ok() && s.code != webm::Status::kOkPartial) return s;
    }
    return webm::Status(webm::Status::kOkCompleted);
  }
  webm::Status OnClusterEnd(const webm::ElementMetadata&, const webm::Cluster& c) override {
    out_.clusterTimes.push_back(c.timecode.value());
    for (auto& b : pending_) {
      b.timeMs += c.timecode.value();
      out_.blocks.push_back(std::move(b));
    }
    pending_.clear();
    return webm::Status(webm::Status::kOkCompleted);
  }
  webm::Status OnCuePoint(const webm::ElementMetadata&, const webm::CuePoint& p) override {
    out_.cueTimes.push_back(p.time.value());
    if (!p.cue_track_positions.empty())
      out_.cuePositions.push_back(p.cue_track_positions[0].value().cluster_position.value());
    return webm::Status(webm::Status::kOkCompleted);
  }

 private:
  ReadFile& out_;
  uint64_t segmentData_ = 0;
  std::vector<ReadBlock> pending_;
};

inline ReadFile readWebm(const std::vector<uint8_t>& bytes) {
  ReadFile out;
  Collector collector(out);
  webm::BufferReader reader(bytes);
  webm::WebmParser parser;
  out.parsed = parser.Feed(&collector, &reader).completed_ok();
  return out;
}

}  // namespace kaiwa::record::test

#pragma once
// One room's recording (docs/sfu.md, "Recording"): every published track of the room, while the recording runs, into
// a WebM (Opus, VP8) or Matroska (H.264) file of its own (record::TrackRecorder), and a manifest.json that says who
// recorded what, in one directory per recording under --record-dir. It is the router's tap (sfu::RouterTap): the router
// hands it each recorded track's decrypted packets on the room's worker, in place, and tells it when a track ends (its
// file closes then).
//
// The directory's name is made by kaiwa, never from client text as it came: the room's name goes through
// safeName() (letters, digits, '-' and '_' kept, the rest '_', cut to 40 characters, and a hash of the whole name so
// that two names mapped alike still differ), then the start time and random characters. Files are `t<n>-<kind>.webm`
// (`.mkv` for H.264)
// with n counting the tracks of the recording. Peer ids and the starter's display name appear only inside the
// manifest, as JSON strings.
//
// Writes go through FileSink's 64 KiB buffer: one write(2) per 64 KiB, a few per second per video track
// (bench/README.md, "Recording cost", has the measured cost). The manifest is small and rewritten (to a temporary file,
// then renamed over the old one, so a reader never sees half a manifest) when the recording starts, when a track starts
// or ends, and when the recording stops.
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "common/clock.hpp"
#include "record/track_recorder.hpp"
#include "sfu/router.hpp"

namespace kaiwa::media {

// Bounds of recording, with their defaults in one place (--record-* flags).
struct RecordLimits {
  size_t tracksPerRoom = 8;  // tracks recorded at once in one room (a track past it is listed as skipped)
  size_t tracks = 32;        // tracks recorded at once on the server
  // Free space below this on the recording's file system stops the recording (and one cannot start).
  uint64_t minFreeBytes = uint64_t(256) << 20;
};

// A published track, as the recording is told of it.
struct RecordedSource {
  sfu::TrackId track = 0;
  std::string peer;
  std::string source;
  sfu::MediaKind kind = sfu::MediaKind::kVideo;
  // The codec the publisher sends with (the first of kaiwa's answer for its m-line): its name, payload type, clock
  // rate and channels.
  std::string codec;
  uint8_t payloadType = 0;
  uint32_t clockRate = 0;
  uint8_t channels = 2;
};

// A room's name made safe for a file name (see the header's comment).
std::string safeName(std::string_view room);

class Recording final : public sfu::RouterTap {
 public:
  struct Options {
    std::string root;  // --record-dir
    std::string room;
    std::string by;  // the member who started it: peer id and display name
    std::string byName;
    RecordLimits limits;
    std::atomic<size_t>* recorders = nullptr;  // the server's count of tracks being recorded (Limits::tracks)
    // Free bytes on the recording's file system; nullopt if unknown. Default: statvfs(2) of the directory.
    std::function<std::optional<uint64_t>(const std::string& dir)> freeBytes;
  };

  // Makes the recording's directory and writes the first manifest; the recording taps nothing until addTrack().
  // An error message instead when the directory cannot be made or the disk is too full.
  static std::variant<std::unique_ptr<Recording>, std::string> start(Options options, sfu::Router& router);
  // Stops it (stop("ended")) if it still runs. Destroy it before the router; it unsets itself as the router's tap.
  ~Recording() override;
  Recording(const Recording&) = delete;
  Recording& operator=(const Recording&) = delete;

  // Records the track from now on (and asks its publisher for a keyframe), unless it was recorded already, its codec
  // is not one kaiwa records (Opus, VP8, H.264) or a limit is reached: then it is listed in the manifest as skipped.
  void addTrack(const RecordedSource& source, TimePoint now);
  // Ticks the assemblers, asks for the keyframes they want, and checks the files and the free space. The reason
  // the recording must stop ("write-failed", "disk-full"), if it must.
  std::optional<std::string> tick(TimePoint now);
  // Closes every file (Cues, Duration) and writes the final manifest with `reason`. Idempotent.
  void stop(std::string_view reason);

  bool stopped() const { return stopped_; }
  const std::string& directory() const { return dir_; }
  int64_t startedMs() const { return startedMs_; }
  size_t recording() const;  // tracks being recorded now

  // sfu::RouterTap
  void onTrackRtp(sfu::TrackId track, const rtp::Packet& packet, TimePoint now) override;
  void onTrackEnded(sfu::TrackId track) override;

 private:
  struct Entry {
    RecordedSource source;
    std::string file;    // empty when skipped
    std::string status;  // recording, done, failed, skipped
    std::string note;    // why skipped or failed
    int64_t startMs = 0;
    int64_t endMs = 0;
    std::unique_ptr<record::TrackRecorder> recorder;
    record::TrackRecorderStats stats{};
    TimePoint lastKeyframeAsk{};
    uint64_t otherPayloadType = 0;  // packets of another codec than the recorded one: not written
  };
  Recording(Options options, sfu::Router& router) : options_(std::move(options)), router_(router) {}
  Entry* find(sfu::TrackId track);
  // Closes the entry's file; `status` done or failed.
  void finish(Entry& e, std::string_view status, std::string_view note);
  void writeManifest();

  Options options_;
  sfu::Router& router_;
  std::string dir_;
  int64_t startedMs_ = 0;
  int64_t endedMs_ = 0;
  std::string endReason_;
  bool stopped_ = false;
  size_t files_ = 0;
  TimePoint nextCheck_{};
  std::vector<Entry> entries_;  // a few per room: a scan costs less than a map
};

}  // namespace kaiwa::media

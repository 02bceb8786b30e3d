#include "media/recording.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <ctime>

#include "common/json_text.hpp"
#include "common/random.hpp"
#include "record/file_sink.hpp"

namespace kaiwa::media {

namespace {

// Entries in one recording's manifest at most: a member that publishes again and again makes new tracks, and the
// manifest (rewritten at each) must stay small. Tracks past it are not recorded.
constexpr size_t kMaxEntries = 128;
// How often the free space is looked at, and a track that wants a keyframe asks again at most.
constexpr auto kCheckInterval = std::chrono::seconds(1);
// A video track whose file has no frame yet asks again this often, urgently: until its first keyframe, every moment
// of the call is missing from the file (a request can be lost, or answered by a frame that did not arrive whole).
constexpr auto kFirstKeyframeInterval = std::chrono::milliseconds(250);

std::optional<uint64_t> statvfsFree(const std::string& dir) {
  struct statvfs s {};
  if (::statvfs(dir.c_str(), &s) != 0) return std::nullopt;
  return uint64_t(s.f_bavail) * uint64_t(s.f_frsize);
}

bool writeWhole(int fd, std::string_view text) {
  while (!text.empty()) {
    const ssize_t n = ::write(fd, text.data(), text.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    text.remove_prefix(size_t(n));
  }
  return true;
}

std::string_view kindName(sfu::MediaKind kind) { return kind == sfu::MediaKind::kAudio ? "audio" : "video"; }

std::optional<record::Codec> recordedCodec(std::string_view name) {
  auto is = [name](std::string_view want) {
    return name.size() == want.size() && std::equal(name.begin(), name.end(), want.begin(), [](char a, char b) {
             return std::tolower(static_cast<unsigned char>(a)) == b;
           });
  };
  if (is("opus")) return record::Codec::kOpus;
  if (is("vp8")) return record::Codec::kVp8;
  if (is("h264")) return record::Codec::kH264;
  return std::nullopt;
}

}  // namespace

std::string safeName(std::string_view room) {
  std::string out;
  for (char ch : room) {
    if (out.size() >= 40) break;
    const bool keep =
        (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '-' || ch == '_';
    out.push_back(keep ? ch : '_');
  }
  // FNV-1a over the whole name: "a b" and "a_b" map to the same characters, not to the same directory.
  uint32_t hash = 2166136261u;
  for (char ch : room) hash = (hash ^ static_cast<uint8_t>(ch)) * 16777619u;
  return fmt::format("{}-{:08x}", out, hash);
}

std::variant<std::unique_ptr<Recording>, std::string> Recording::start(Options options, sfu::Router& router) {
  if (!options.freeBytes) options.freeBytes = statvfsFree;
  if (auto free = options.freeBytes(options.root); free && *free < options.limits.minFreeBytes) {
    return fmt::format("the recording disk has {} MiB free, under the {} MiB kept free", *free >> 20,
                       options.limits.minFreeBytes >> 20);
  }
  std::unique_ptr<Recording> r(new Recording(std::move(options), router));
  r->startedMs_ = wallMillis();
  const std::time_t seconds = std::time_t(r->startedMs_ / 1000);
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  char when[32];
  std::strftime(when, sizeof when, "%Y%m%dT%H%M%SZ", &utc);
  r->dir_ = r->options_.root + "/" + safeName(r->options_.room) + "-" + when + "-" + common::randomToken(6);
  if (::mkdir(r->dir_.c_str(), 0755) != 0) {
    std::string why = fmt::format("cannot make the recording's directory: {}", std::strerror(errno));
    r->stopped_ = true;  // nothing to close, no manifest to write
    return why;
  }
  r->writeManifest();
  router.setTap(r.get());
  spdlog::info("recording room '{}' into {}", r->options_.room, r->dir_);
  return r;
}

Recording::~Recording() {
  stop("ended");
  router_.setTap(nullptr);
}

size_t Recording::recording() const {
  return size_t(std::count_if(entries_.begin(), entries_.end(), [](const Entry& e) { return e.recorder != nullptr; }));
}

Recording::Entry* Recording::find(sfu::TrackId track) {
  for (Entry& e : entries_) {
    if (e.source.track == track) return &e;
  }
  return nullptr;
}

void Recording::addTrack(const RecordedSource& source, TimePoint now) {
  if (stopped_ || find(source.track) != nullptr || entries_.size() >= kMaxEntries) return;
  Entry& e = entries_.emplace_back();
  e.source = source;
  e.startMs = wallMillis();
  auto skip = [&](std::string note) {
    e.status = "skipped";
    e.note = std::move(note);
    writeManifest();
  };
  const auto codec = recordedCodec(source.codec);
  if (!codec) return skip("codec " + source.codec + " is not recorded (Opus, VP8 and H264 are)");
  if (recording() >= options_.limits.tracksPerRoom) return skip("the room records its maximum of tracks");
  if (options_.recorders != nullptr && options_.recorders->fetch_add(1) >= options_.limits.tracks) {
    options_.recorders->fetch_sub(1);
    return skip("the server records its maximum of tracks");
  }
  // WebM holds Opus and VP8; H.264 goes in its parent format, Matroska.
  e.file = fmt::format("t{}-{}.{}", ++files_, kindName(source.kind), *codec == record::Codec::kH264 ? "mkv" : "webm");
  auto sink = std::make_unique<record::FileSink>(dir_ + "/" + e.file);
  if (!sink->ok()) {
    if (options_.recorders != nullptr) options_.recorders->fetch_sub(1);
    e.status = "failed";
    e.note = sink->error();
    writeManifest();
    return;
  }
  e.recorder = std::make_unique<record::TrackRecorder>(*codec, source.clockRate, std::move(sink),
                                                       source.channels == 0 ? 2 : source.channels);
  e.status = "recording";
  router_.tapTrack(source.track, true);
  if (source.kind == sfu::MediaKind::kVideo) {
    // Urgent, like a new subscriber's: the file begins only with a keyframe, so every moment waited is lost.
    router_.requestKeyframe(source.track, now, true);
    e.lastKeyframeAsk = now;
  }
  writeManifest();
}

void Recording::onTrackRtp(sfu::TrackId track, const rtp::Packet& packet, TimePoint now) {
  Entry* e = find(track);
  if (e == nullptr || !e->recorder) return;
  if (packet.payloadType() != e->source.payloadType) {
    ++e->otherPayloadType;
    return;
  }
  e->recorder->push(packet, now);
}

void Recording::onTrackEnded(sfu::TrackId track) {
  if (Entry* e = find(track); e != nullptr && e->recorder) {
    finish(*e, "done", "");
    writeManifest();
  }
}

void Recording::finish(Entry& e, std::string_view status, std::string_view note) {
  bool ok = e.recorder->finish();
  // The last buffered bytes are written here, so a failure to write them shows in the manifest.
  ok = static_cast<record::FileSink&>(e.recorder->sink()).close() && ok;
  e.stats = e.recorder->stats();
  e.recorder.reset();  // closes the file
  e.endMs = wallMillis();
  e.status = ok ? std::string(status) : "failed";
  e.note = ok ? std::string(note) : "a write to the file failed";
  if (options_.recorders != nullptr) options_.recorders->fetch_sub(1);
  router_.tapTrack(e.source.track, false);
}

std::optional<std::string> Recording::tick(TimePoint now) {
  if (stopped_) return std::nullopt;
  for (Entry& e : entries_) {
    if (!e.recorder) continue;
    e.recorder->tick(now);
    if (e.recorder->stats().failed) return std::string("write-failed");
    const bool begun = e.recorder->stats().frames > 0;
    if (e.recorder->keyframeWanted() && now - e.lastKeyframeAsk >= (begun ? kCheckInterval : kFirstKeyframeInterval)) {
      e.lastKeyframeAsk = now;
      router_.requestKeyframe(e.source.track, now, !begun);
    }
  }
  if (now >= nextCheck_) {
    nextCheck_ = now + kCheckInterval;
    if (auto free = options_.freeBytes(dir_); free && *free < options_.limits.minFreeBytes) {
      return std::string("disk-full");
    }
  }
  return std::nullopt;
}

void Recording::stop(std::string_view reason) {
  if (stopped_) return;
  stopped_ = true;
  for (Entry& e : entries_) {
    if (e.recorder) finish(e, "done", "");
  }
  endedMs_ = wallMillis();
  endReason_ = std::string(reason);
  writeManifest();
  spdlog::info("recording of room '{}' stopped ({}): {}", options_.room, reason, dir_);
}

void Recording::writeManifest() {
  std::string out = R"({"version":1,"room":)";
  common::appendJsonString(out, options_.room);
  out += R"(,"startedBy":{"peer":)";
  common::appendJsonString(out, options_.by);
  out += R"(,"name":)";
  common::appendJsonString(out, options_.byName);
  fmt::format_to(std::back_inserter(out), R"(}},"start":{},"end":{})", startedMs_,
                 endedMs_ != 0 ? std::to_string(endedMs_) : "null");
  if (!endReason_.empty()) {
    out += R"(,"endReason":)";
    common::appendJsonString(out, endReason_);
  }
  out += R"(,"tracks":[)";
  for (size_t i = 0; i < entries_.size(); ++i) {
    const Entry& e = entries_[i];
    if (i != 0) out += ',';
    out += R"({"peer":)";
    common::appendJsonString(out, e.source.peer);
    out += R"(,"source":)";
    common::appendJsonString(out, e.source.source);
    fmt::format_to(std::back_inserter(out), R"(,"kind":"{}","codec":)", kindName(e.source.kind));
    common::appendJsonString(out, e.source.codec);
    out += R"(,"status":)";
    common::appendJsonString(out, e.status);
    if (!e.file.empty()) {
      out += R"(,"file":)";
      common::appendJsonString(out, e.file);
    }
    if (!e.note.empty()) {
      out += R"(,"note":)";
      common::appendJsonString(out, e.note);
    }
    fmt::format_to(std::back_inserter(out), R"(,"start":{},"end":{})", e.startMs,
                   e.endMs != 0 ? std::to_string(e.endMs) : "null");
    if (!e.recorder && !e.file.empty()) {
      fmt::format_to(std::back_inserter(out), R"(,"durationMs":{},"frames":{},"bytes":{})", e.stats.durationMs,
                     e.stats.frames, e.stats.bytes);
    }
    out += '}';
  }
  out += "]}\n";
  // A temporary file renamed over the manifest: a reader sees the old one or the new one, whole.
  const std::string path = dir_ + "/manifest.json", temporary = path + ".tmp";
  const int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  bool ok = fd >= 0 && writeWhole(fd, out);
  if (fd >= 0) ok = ::close(fd) == 0 && ok;
  if (!ok || ::rename(temporary.c_str(), path.c_str()) != 0) {
    spdlog::warn("recording of room '{}': cannot write {}: {}", options_.room, path, std::strerror(errno));
  }
}

}  // namespace kaiwa::media

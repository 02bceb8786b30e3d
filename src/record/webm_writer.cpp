#include "record/webm_writer.hpp"

#include <algorithm>
#include <array>
#include <bit>
#include <cstring>

namespace kaiwa::record {

namespace {

// Element ids (Matroska / WebM), written as their bytes: the length marker is part of the id.
constexpr uint32_t kEbml = 0x1A45DFA3;
constexpr uint32_t kEbmlVersion = 0x4286;
constexpr uint32_t kEbmlReadVersion = 0x42F7;
constexpr uint32_t kEbmlMaxIdLength = 0x42F2;
constexpr uint32_t kEbmlMaxSizeLength = 0x42F3;
constexpr uint32_t kDocType = 0x4282;
constexpr uint32_t kDocTypeVersion = 0x4287;
constexpr uint32_t kDocTypeReadVersion = 0x4285;
constexpr uint32_t kSegment = 0x18538067;
constexpr uint32_t kSeekHead = 0x114D9B74;
constexpr uint32_t kSeek = 0x4DBB;
constexpr uint32_t kSeekId = 0x53AB;
constexpr uint32_t kSeekPosition = 0x53AC;
constexpr uint32_t kInfo = 0x1549A966;
constexpr uint32_t kTimestampScale = 0x2AD7B1;
constexpr uint32_t kDuration = 0x4489;
constexpr uint32_t kMuxingApp = 0x4D80;
constexpr uint32_t kWritingApp = 0x5741;
constexpr uint32_t kTracks = 0x1654AE6B;
constexpr uint32_t kTrackEntry = 0xAE;
constexpr uint32_t kTrackNumber = 0xD7;
constexpr uint32_t kTrackUid = 0x73C5;
constexpr uint32_t kTrackType = 0x83;
constexpr uint32_t kFlagLacing = 0x9C;
constexpr uint32_t kCodecId = 0x86;
constexpr uint32_t kCodecPrivate = 0x63A2;
constexpr uint32_t kCodecDelay = 0x56AA;
constexpr uint32_t kSeekPreRoll = 0x56BB;
constexpr uint32_t kVideo = 0xE0;
constexpr uint32_t kPixelWidth = 0xB0;
constexpr uint32_t kPixelHeight = 0xBA;
constexpr uint32_t kAudio = 0xE1;
constexpr uint32_t kSamplingFrequency = 0xB5;
constexpr uint32_t kChannels = 0x9F;
constexpr uint32_t kCluster = 0x1F43B675;
constexpr uint32_t kClusterTimestamp = 0xE7;
constexpr uint32_t kSimpleBlock = 0xA3;
constexpr uint32_t kCues = 0x1C53BB6B;
constexpr uint32_t kCuePoint = 0xBB;
constexpr uint32_t kCueTime = 0xB3;
constexpr uint32_t kCueTrackPositions = 0xB7;
constexpr uint32_t kCueTrack = 0xF7;
constexpr uint32_t kCueClusterPosition = 0xF1;
constexpr uint32_t kVoid = 0xEC;

constexpr size_t kSeekHeadReserve = 80;  // three Seek entries (68 bytes) and a Void
constexpr uint64_t kAudioClusterMs = 5000;
constexpr uint64_t kMaxBlockOffsetMs = 32767;  // the SimpleBlock's signed 16-bit offset from its Cluster
constexpr uint64_t kAudioFrameMs = 20;
constexpr uint64_t kMaxVideoFrameMs = 1000;  // the last video frame lasts as long as the gap before it, at most this
constexpr uint64_t kUnknownSize = 0x01FFFFFFFFFFFFFF;  // an 8-byte size with every value bit set: "unknown"

using Bytes = std::vector<uint8_t>;

void putId(Bytes& out, uint32_t id) {
  const int bytes = id > 0xFFFFFF ? 4 : id > 0xFFFF ? 3 : id > 0xFF ? 2 : 1;
  for (int i = bytes - 1; i >= 0; --i) out.push_back(static_cast<uint8_t>(id >> (8 * i)));
}

// An element size as an EBML variable-length integer of the fewest bytes (a value of all ones is reserved).
void putSize(Bytes& out, uint64_t size) {
  int bytes = 1;
  while (bytes < 8 && size >= (uint64_t{1} << (7 * bytes)) - 1) ++bytes;
  const uint64_t coded = size | (uint64_t{1} << (7 * bytes));
  for (int i = bytes - 1; i >= 0; --i) out.push_back(static_cast<uint8_t>(coded >> (8 * i)));
}

// An 8-byte size, so that it can be patched later without moving anything.
std::array<uint8_t, 8> fixedSize(uint64_t size) {
  std::array<uint8_t, 8> b{};
  const uint64_t coded = size | (uint64_t{1} << 56);
  for (int i = 0; i < 8; ++i) b[i] = static_cast<uint8_t>(coded >> (8 * (7 - i)));
  return b;
}

void putBytes(Bytes& out, uint32_t id, std::span<const uint8_t> value) {
  putId(out, id);
  putSize(out, value.size());
  out.insert(out.end(), value.begin(), value.end());
}

void putString(Bytes& out, uint32_t id, std::string_view s) {
  putBytes(out, id, {reinterpret_cast<const uint8_t*>(s.data()), s.size()});
}

void putUint(Bytes& out, uint32_t id, uint64_t v) {
  std::array<uint8_t, 8> b{};
  int n = 1;
  while (n < 8 && (v >> (8 * n)) != 0) ++n;
  for (int i = 0; i < n; ++i) b[i] = static_cast<uint8_t>(v >> (8 * (n - 1 - i)));
  putBytes(out, id, {b.data(), static_cast<size_t>(n)});
}

std::array<uint8_t, 8> floatBytes(double v) {
  const auto bits = std::bit_cast<uint64_t>(v);
  std::array<uint8_t, 8> b{};
  for (int i = 0; i < 8; ++i) b[i] = static_cast<uint8_t>(bits >> (8 * (7 - i)));
  return b;
}

void putFloat(Bytes& out, uint32_t id, double v) { putBytes(out, id, floatBytes(v)); }

// A master element around `body`.
void putMaster(Bytes& out, uint32_t id, const Bytes& body) { putBytes(out, id, body); }

// A Void element filling exactly `size` bytes (2 ≤ size ≤ 128).
void putVoid(Bytes& out, size_t size) {
  out.push_back(static_cast<uint8_t>(kVoid));
  putSize(out, size - 2);
  out.insert(out.end(), size - 2, 0);
}

// RFC 7845 section 5.1: the identification header Opus in Matroska carries as CodecPrivate. WebRTC's RTP carries
// no pre-skip, so none is declared and a recording's timestamps stay those of the packets.
Bytes opusHead(uint8_t channels) {
  Bytes h{'O', 'p', 'u', 's', 'H', 'e', 'a', 'd', 1, channels, 0, 0};
  const uint32_t rate = 48000;
  for (int i = 0; i < 4; ++i) h.push_back(static_cast<uint8_t>(rate >> (8 * i)));
  h.insert(h.end(), {0, 0, 0});  // output gain 0, channel mapping family 0
  return h;
}

}  // namespace

bool MemorySink::append(std::span<const uint8_t> bytes) {
  bytes_.insert(bytes_.end(), bytes.begin(), bytes.end());
  return true;
}

bool MemorySink::patch(uint64_t offset, std::span<const uint8_t> bytes) {
  if (offset > bytes_.size() || bytes.size() > bytes_.size() - offset) return false;
  std::memcpy(bytes_.data() + offset, bytes.data(), bytes.size());
  return true;
}

bool WebmWriter::put(std::span<const uint8_t> bytes) {
  if (failed_) return false;
  if (!sink_.append(bytes)) failed_ = true;
  return !failed_;
}

bool WebmWriter::patchAt(uint64_t offset, std::span<const uint8_t> bytes) {
  if (failed_) return false;
  if (!sink_.patch(offset, bytes)) failed_ = true;
  return !failed_;
}

bool WebmWriter::begin(const TrackInfo& track) {
  if (begun_) return !failed_;
  begun_ = true;
  track_ = track;
  Bytes out;
  Bytes ebml;
  putUint(ebml, kEbmlVersion, 1);
  putUint(ebml, kEbmlReadVersion, 1);
  putUint(ebml, kEbmlMaxIdLength, 4);
  putUint(ebml, kEbmlMaxSizeLength, 8);
  putString(ebml, kDocType, track.codec == Codec::kH264 ? "matroska" : "webm");
  putUint(ebml, kDocTypeVersion, 4);
  putUint(ebml, kDocTypeReadVersion, 2);
  putMaster(out, kEbml, ebml);

  putId(out, kSegment);
  const uint64_t base = sink_.size();
  segmentSizeAt_ = base + out.size();
  const auto unknown = fixedSize(kUnknownSize);
  out.insert(out.end(), unknown.begin(), unknown.end());
  segmentDataAt_ = base + out.size();
  seekHeadAt_ = segmentDataAt_;
  putVoid(out, kSeekHeadReserve);

  infoAt_ = base + out.size();
  Bytes info;
  putUint(info, kTimestampScale, 1'000'000);  // 1 ms
  putId(info, kDuration);
  putSize(info, 8);
  const uint64_t durationInInfo = info.size();
  const auto zero = floatBytes(0.0);
  info.insert(info.end(), zero.begin(), zero.end());
  putString(info, kMuxingApp, "kaiwa");
  putString(info, kWritingApp, "kaiwa");
  putId(out, kInfo);
  putSize(out, info.size());
  durationAt_ = base + out.size() + durationInInfo;
  out.insert(out.end(), info.begin(), info.end());

  tracksAt_ = base + out.size();
  Bytes entry;
  putUint(entry, kTrackNumber, 1);
  putUint(entry, kTrackUid, track.uid);
  putUint(entry, kFlagLacing, 0);
  if (track.codec != Codec::kOpus) {
    putUint(entry, kTrackType, 1);
    if (track.codec == Codec::kVp8) {
      putString(entry, kCodecId, "V_VP8");
    } else {
      putString(entry, kCodecId, "V_MPEG4/ISO/AVC");
      if (!track.codecPrivate.empty()) putBytes(entry, kCodecPrivate, track.codecPrivate);
    }
    Bytes video;
    putUint(video, kPixelWidth, track.width);
    putUint(video, kPixelHeight, track.height);
    putMaster(entry, kVideo, video);
  } else {
    putUint(entry, kTrackType, 2);
    putString(entry, kCodecId, "A_OPUS");
    putBytes(entry, kCodecPrivate, opusHead(track.channels));
    putUint(entry, kCodecDelay, 0);
    putUint(entry, kSeekPreRoll, 80'000'000);  // 80 ms in ns, as the WebM spec asks of Opus
    Bytes audio;
    putFloat(audio, kSamplingFrequency, 48000.0);
    putUint(audio, kChannels, track.channels);
    putMaster(entry, kAudio, audio);
  }
  Bytes tracks;
  putMaster(tracks, kTrackEntry, entry);
  putMaster(out, kTracks, tracks);
  return put(out);
}

bool WebmWriter::closeCluster() {
  if (!clusterOpen_) return !failed_;
  clusterOpen_ = false;
  const uint64_t dataStart = clusterSizeAt_ + 8;
  return patchAt(clusterSizeAt_, fixedSize(sink_.size() - dataStart));
}

bool WebmWriter::startCluster(uint64_t timeMs, bool cue) {
  if (!closeCluster()) return false;
  Bytes out;
  const uint64_t at = sink_.size();
  putId(out, kCluster);
  clusterSizeAt_ = at + out.size();
  const auto unknown = fixedSize(kUnknownSize);
  out.insert(out.end(), unknown.begin(), unknown.end());
  putUint(out, kClusterTimestamp, timeMs);
  clusterOpen_ = true;
  clusterTimeMs_ = timeMs;
  if (cue) cues_.push_back({timeMs, at - segmentDataAt_});
  return put(out);
}

bool WebmWriter::write(uint64_t timeMs, bool keyframe, std::span<const uint8_t> frame) {
  if (!begun_ || finished_ || failed_ || frame.empty()) return false;
  if (frames_ > 0 && timeMs < lastTimeMs_) return false;
  const bool video = track_.codec != Codec::kOpus;
  if (video && frames_ == 0 && !keyframe) return false;
  const bool newCluster = !clusterOpen_ || (video && keyframe) ||
                          (!video && timeMs - clusterTimeMs_ >= kAudioClusterMs) ||
                          timeMs - clusterTimeMs_ > kMaxBlockOffsetMs;
  // Only a Cluster that a player can start decoding at is a Cue: every audio one, a video one at a keyframe.
  if (newCluster && !startCluster(timeMs, keyframe || !video)) return false;
  Bytes head;
  putId(head, kSimpleBlock);
  putSize(head, 4 + frame.size());
  head.push_back(0x81);  // track number 1 as a variable-length integer
  const auto offset = static_cast<int16_t>(timeMs - clusterTimeMs_);
  head.push_back(static_cast<uint8_t>(static_cast<uint16_t>(offset) >> 8));
  head.push_back(static_cast<uint8_t>(offset));
  head.push_back(keyframe || !video ? 0x80 : 0x00);
  if (!put(head) || !put(frame)) return false;
  if (frames_ > 0) lastGapMs_ = timeMs - lastTimeMs_;
  lastTimeMs_ = timeMs;
  ++frames_;
  return true;
}

uint64_t WebmWriter::durationMs() const {
  if (frames_ == 0) return 0;
  return lastTimeMs_ + (track_.codec == Codec::kOpus ? kAudioFrameMs : std::min(lastGapMs_, kMaxVideoFrameMs));
}

bool WebmWriter::finish() {
  if (!begun_ || finished_) return !failed_;
  finished_ = true;
  if (!closeCluster()) return false;
  const uint64_t cuesAt = sink_.size();
  Bytes cues;
  for (const Cue& c : cues_) {
    Bytes positions;
    putUint(positions, kCueTrack, 1);
    putUint(positions, kCueClusterPosition, c.clusterPosition);
    Bytes point;
    putUint(point, kCueTime, c.timeMs);
    putMaster(point, kCueTrackPositions, positions);
    putMaster(cues, kCuePoint, point);
  }
  Bytes out;
  if (!cues_.empty()) putMaster(out, kCues, cues);
  if (!out.empty() && !put(out)) return false;

  Bytes seekHead;
  const auto seek = [&](uint32_t id, uint64_t at) {
    Bytes idBytes;
    putId(idBytes, id);
    Bytes entry;
    putBytes(entry, kSeekId, idBytes);
    Bytes position;  // a fixed 8 bytes, so the SeekHead's size does not depend on where things are
    for (int i = 7; i >= 0; --i) position.push_back(static_cast<uint8_t>((at - segmentDataAt_) >> (8 * i)));
    putBytes(entry, kSeekPosition, position);
    putMaster(seekHead, kSeek, entry);
  };
  seek(kInfo, infoAt_);
  seek(kTracks, tracksAt_);
  if (!cues_.empty()) seek(kCues, cuesAt);
  Bytes reserved;
  putMaster(reserved, kSeekHead, seekHead);
  putVoid(reserved, kSeekHeadReserve - reserved.size());
  if (!patchAt(seekHeadAt_, reserved)) return false;
  if (!patchAt(durationAt_, floatBytes(static_cast<double>(durationMs())))) return false;
  return patchAt(segmentSizeAt_, fixedSize(sink_.size() - segmentDataAt_));
}

}  // namespace kaiwa::record

#include "sfu/simulcast_rewriter.hpp"

#include <algorithm>
#include <chrono>

#include "rtp/sequence.hpp"

namespace kaiwa::sfu {

namespace {

// a is newer than b on the 32-bit timestamp circle.
bool timestampNewer(uint32_t a, uint32_t b) { return a != b && uint32_t(a - b) < 0x80000000u; }

}  // namespace

void SimulcastRewriter::onSenderReport(uint8_t layer, uint64_t ntp, uint32_t rtp) {
  if (layer >= kMaxLayers) return;
  mappings_[layer] = {ntp, rtp, true};
}

std::optional<uint32_t> SimulcastRewriter::exactOffset(uint8_t from, uint8_t to) const {
  if (from >= kMaxLayers || to >= kMaxLayers) return std::nullopt;
  const Mapping& a = mappings_[from];
  const Mapping& b = mappings_[to];
  if (!a.valid || !b.valid) return std::nullopt;
  // NTP difference in 32.32 seconds; reports more than a day apart are not a usable pair.
  const int64_t ntpDelta = int64_t(b.ntp - a.ntp);
  constexpr int64_t kDay = int64_t(86400) << 32;
  if (ntpDelta > kDay || ntpDelta < -kDay) return std::nullopt;
  // Seconds times the clock rate, rounded to the nearest tick: whole seconds (floored, so the fraction is never
  // negative) and the fraction apart, so that nothing overflows 64 bits.
  const int64_t seconds = ntpDelta >> 32;
  const uint64_t fraction = uint64_t(ntpDelta) & 0xFFFFFFFFu;
  const int64_t ticks = seconds * int64_t(clockRate_) + int64_t((fraction * clockRate_ + (uint64_t(1) << 31)) >> 32);
  const uint32_t rtpAatB = a.rtp + uint32_t(ticks);
  return tsOffset_ + (rtpAatB - b.rtp);
}

std::optional<SimulcastRewriter::Out> SimulcastRewriter::forward(const In& in, bool switched, TimePoint now) {
  Out out;
  const bool newSource = !started_ || switched || in.layer != layer_;
  if (!newSource && lastDrop_ && !rtp::isNewer(in.sequence, *lastDrop_)) {
    ++stats_.beforeDrop;
    return std::nullopt;
  }
  if (newSource) {
    const uint16_t seq = started_ ? uint16_t(lastSeq_ + 1) : nextSequence_;
    std::optional<uint32_t> ts;
    if (!started_) {
      ts = initialTimestamp_;
      out.switched = Switch::kFirst;
    } else if (auto offset = exactOffset(layer_, in.layer); offset && in.layer != layer_) {
      ts = in.timestamp + *offset;
      if (timestampNewer(*ts, lastTs_)) {
        out.switched = Switch::kExact;
        ++stats_.exactSwitches;
      } else {
        ts.reset();
      }
    }
    if (!ts) {
      const auto elapsed = std::chrono::duration_cast<std::chrono::microseconds>(now - lastSent_).count();
      ts = lastTs_ + uint32_t(std::max<int64_t>(1, elapsed * int64_t(clockRate_) / 1'000'000));
      out.switched = Switch::kEstimated;
      ++stats_.estimatedSwitches;
    }
    seqOffset_ = uint16_t(seq - in.sequence);
    tsOffset_ = *ts - in.timestamp;
    // The new layer's picture ids and TL0PICIDX go on from the last ones sent.
    if (in.pictureId) picOffset_ = uint16_t((lastPic_ ? *lastPic_ + 1 : *in.pictureId) - *in.pictureId) & 0x7FFF;
    if (in.tl0PicIdx) tl0Offset_ = uint8_t((lastTl0_ ? *lastTl0_ + 1 : *in.tl0PicIdx) - *in.tl0PicIdx);
    layer_ = in.layer;
    highestIn_ = in.sequence;
    lastDrop_.reset();
    lastSeq_ = uint16_t(seq - 1);
    started_ = true;
  }
  out.sequence = uint16_t(in.sequence + seqOffset_);
  out.timestamp = in.timestamp + tsOffset_;
  if (in.pictureId) out.pictureId = uint16_t(*in.pictureId + picOffset_) & 0x7FFF;
  if (in.tl0PicIdx) out.tl0PicIdx = uint8_t(*in.tl0PicIdx + tl0Offset_);
  if (rtp::isNewer(in.sequence, highestIn_)) highestIn_ = in.sequence;
  if (rtp::isNewer(out.sequence, lastSeq_)) {
    lastSeq_ = out.sequence;
    lastTs_ = out.timestamp;
    lastSent_ = now;
    if (out.pictureId) lastPic_ = out.pictureId;
    if (out.tl0PicIdx) lastTl0_ = out.tl0PicIdx;
  }
  return out;
}

void SimulcastRewriter::drop(uint8_t layer, uint16_t sequence) {
  if (!started_ || layer != layer_) return;
  if (!rtp::isNewer(sequence, highestIn_)) {
    ++stats_.lateDrops;
    return;
  }
  // Every packet after this one moves down by one number: the subscriber sees no gap for a packet never sent.
  // Packets lost on the way in between keep their numbers, so the subscriber still sees and reports that loss.
  highestIn_ = sequence;
  lastDrop_ = sequence;
  --seqOffset_;
}

}  // namespace kaiwa::sfu

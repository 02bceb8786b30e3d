#include "record/frame_assembler.hpp"

#include "rtp/payload.hpp"

namespace kaiwa::record {

int64_t FrameAssembler::unwrapSequence(uint16_t seq) {
  if (!seqStarted_) {
    seqStarted_ = true;
    lastSeq_ = seq;
    return lastSeq_;
  }
  lastSeq_ += static_cast<int16_t>(static_cast<uint16_t>(seq - static_cast<uint16_t>(lastSeq_)));
  return lastSeq_;
}

int64_t FrameAssembler::unwrapTimestamp(uint32_t ts) {
  if (!tsStarted_) {
    tsStarted_ = true;
    lastTs_ = ts;
    return lastTs_;
  }
  lastTs_ += static_cast<int32_t>(ts - static_cast<uint32_t>(lastTs_));
  return lastTs_;
}

void FrameAssembler::push(const rtp::Packet& packet, TimePoint now) {
  const int64_t seq = unwrapSequence(packet.sequenceNumber());
  if ((next_ && seq < *next_) || pending_.contains(seq)) {
    ++counters_.late;
    return;
  }
  Pending p{unwrapTimestamp(packet.timestamp()), true, true, true, {}};
  auto payload = packet.payload();
  if (codec_ == Codec::kVp8) {
    auto d = rtp::parseVp8(payload);
    if (!d) {
      ++counters_.malformed;
      return;
    }
    p.marker = packet.marker();
    p.frameStart = d->frameStart();
    p.keyframe = d->keyframe;
    payload = payload.subspan(d->size);
  } else if (codec_ == Codec::kH264) {
    // A frame starts at a NAL unit's start; which one is a keyframe is known once the frame is whole (emit()).
    auto info = h264::inspect(payload);
    if (!info) {
      ++counters_.malformed;
      return;
    }
    p.marker = packet.marker();
    p.frameStart = info->nalStart;
    p.keyframe = false;
  } else if (payload.empty()) {  // an Opus packet has at least its TOC byte (RFC 6716 section 3.1)
    ++counters_.malformed;
    return;
  }
  p.data.assign(payload.begin(), payload.end());
  pending_.emplace(seq, std::move(p));
  ++counters_.packets;
  drain();
  for (size_t guard = 0; pending_.size() > kMaxPending && guard < 2 * kMaxPending; ++guard) {
    skipGap();
    drain();
  }
  if (!pending_.empty() && !waitingSince_) waitingSince_ = now;
}

void FrameAssembler::tick(TimePoint now) {
  if (waitingSince_ && now - *waitingSince_ >= kMaxWait) {
    skipGap();
    drain();
    if (!pending_.empty()) waitingSince_ = now;
  }
}

void FrameAssembler::flush() {
  drain();
  for (size_t guard = 0; !pending_.empty() && guard < 2 * kMaxPending; ++guard) {
    skipGap();
    drain();
  }
  pending_.clear();
  waitingSince_.reset();
}

void FrameAssembler::drain() {
  while (true) {
    if (!aligned_) {
      // Start at the first frame start at or after next_ (anywhere, before the first frame): what lies before it
      // cannot be completed any more. If none has arrived yet, wait: it may be late.
      auto it = next_ ? pending_.lower_bound(*next_) : pending_.begin();
      while (it != pending_.end() && !it->second.frameStart) ++it;
      if (it == pending_.end()) return;
      pending_.erase(pending_.begin(), it);
      next_ = it->first;
      aligned_ = true;
    }
    auto first = pending_.find(*next_);
    if (first == pending_.end()) return;  // the frame's first packet is missing: wait for it
    if (!first->second.frameStart) {      // a stream that breaks its own framing: start over at a frame start
      skipGap();
      continue;
    }
    const int64_t timestamp = first->second.timestamp;
    int64_t seq = *next_;
    auto it = first;
    while (!it->second.marker) {
      auto following = pending_.find(seq + 1);
      if (following == pending_.end()) return;              // incomplete: wait for the missing packet
      if (following->second.timestamp != timestamp) break;  // the next frame began without a marker: take this one
      ++seq;
      it = following;
    }
    emit(timestamp, first->second.keyframe, *next_, seq);
    next_ = seq + 1;
    waitingSince_.reset();
  }
}

void FrameAssembler::skipGap() {
  if (pending_.empty()) return;
  ++counters_.gaps;
  waitingSince_.reset();
  if (codec_ != Codec::kOpus) needKeyframe_ = true;
  if (!aligned_) {
    // No frame start arrived for what is held: none of it can be completed.
    ++counters_.framesDropped;
    next_ = pending_.rbegin()->first + 1;
    pending_.clear();
    return;
  }
  // Whatever of the frame at next_ arrived is useless without the missing packet; realignment drops it.
  if (pending_.contains(*next_)) ++counters_.framesDropped;
  next_ = *next_ + 1;
  aligned_ = false;
  pending_.erase(pending_.begin(), pending_.lower_bound(*next_));
}

void FrameAssembler::emit(int64_t timestamp, bool keyframe, int64_t first, int64_t last) {
  auto begin = pending_.find(first);
  auto end = pending_.upper_bound(last);
  if (codec_ == Codec::kH264) {
    emitAccessUnit(timestamp, begin, end);
  } else if (codec_ == Codec::kVp8 && needKeyframe_ && !keyframe) {
    ++counters_.framesDropped;
  } else {
    frame_.clear();
    for (auto it = begin; it != end; ++it) frame_.insert(frame_.end(), it->second.data.begin(), it->second.data.end());
    if (keyframe) needKeyframe_ = false;
    ++counters_.frames;
    sink_(Frame{timestamp, keyframe, frame_});
  }
  pending_.erase(begin, end);
}

void FrameAssembler::emitAccessUnit(int64_t timestamp, std::map<int64_t, Pending>::iterator begin,
                                    std::map<int64_t, Pending>::iterator end) {
  accessUnit_.clear();
  bool whole = true;
  for (auto it = begin; it != end && whole; ++it) whole = accessUnit_.add(it->second.data);
  if (!whole || !accessUnit_.finish()) {
    // Fragments that do not fit together: the publisher's framing is broken, and what follows may refer to it.
    ++counters_.malformed;
    ++counters_.framesDropped;
    needKeyframe_ = true;
    return;
  }
  const bool keyframe = accessUnit_.keyframe();
  if (needKeyframe_ && !keyframe) {
    ++counters_.framesDropped;
    return;
  }
  needKeyframe_ = false;
  ++counters_.frames;
  sink_(Frame{timestamp, keyframe, accessUnit_.data()});
}

}  // namespace kaiwa::record

#include "sfu/router.hpp"

#include <algorithm>
#include <cstring>

#include "rtp/rtcp.hpp"
#include "rtp/sequence.hpp"
#include "srtp/session.hpp"

namespace kaiwa::sfu {

namespace {

uint64_t ssrcKey(TransportId publisher, uint32_t ssrc) { return uint64_t(publisher) << 32 | ssrc; }

}  // namespace

Router::Router(RouterIo& io) : Router(io, nullptr) {}

Router::Router(RouterIo& io, SendPool& pool) : Router(io, &pool) {}

Router::Router(RouterIo& io, SendPool* pool)
    : io_(&io), ownPool_(pool == nullptr ? std::make_unique<SendPool>() : nullptr),
      pool_(pool == nullptr ? ownPool_.get() : pool),
      // The router's one reading of a clock: NTP timestamps need the time of day, the rest only the `now` passed in.
      unixAtEpoch_(std::chrono::duration_cast<std::chrono::nanoseconds>(
          std::chrono::system_clock::now().time_since_epoch() - Clock::now().time_since_epoch())) {}

void Router::addPublisher(TransportId publisher, PublisherConfig config) { publishers_[publisher].config = config; }

std::optional<TrackId> Router::addTrack(TransportId publisher, TrackConfig config) {
  auto pub = publishers_.find(publisher);
  if (pub == publishers_.end()) return std::nullopt;
  if (config.ssrc != 0 && bySsrc_.contains(ssrcKey(publisher, config.ssrc))) return std::nullopt;
  const TrackId id = nextTrack_++;
  Track& track = tracks_[id];
  track.id = id;
  track.publisher = publisher;
  track.ssrc = config.ssrc;
  if (config.retransmission.maxPackets > 0) {
    track.retransmission = std::make_unique<rtp::RetransmissionBuffer>(config.retransmission);
  }
  track.received = rtp::ReceiveStatistics(config.clockRate);
  // Audio is not NACKed: a lost audio packet is concealed, and a retransmission would come too late to play.
  if (config.nack && config.kind == MediaKind::kVideo) track.nack = std::make_unique<rtp::NackGenerator>();
  track.config = std::move(config);
  if (track.config.kind != MediaKind::kAudio) track.config.audioLevelExtensionId = 0;
  if (track.config.audioLevelExtensionId != 0) speakers_.add(publisher);
  if (track.ssrc != 0) bySsrc_[ssrcKey(publisher, track.ssrc)] = id;
  pub->second.tracks.push_back(id);
  return id;
}

void Router::addSubscriber(TransportId subscriber, SubscriberConfig config) {
  subscribers_.erase(subscriber);
  subscribers_.emplace(subscriber,
                       Subscriber{SendQueue(*pool_, config.queuePackets), std::move(config.cname), false, {}});
}

bool Router::subscribe(TransportId subscriber, TrackId trackId, const SubscriptionConfig& config, TimePoint now) {
  auto sub = subscribers_.find(subscriber);
  Track* track = findTrack(trackId);
  if (sub == subscribers_.end() || track == nullptr || config.ssrc == 0) return false;
  if (sub->second.bySsrc.contains(config.ssrc) || (config.rtxSsrc != 0 && sub->second.bySsrc.contains(config.rtxSsrc)))
    return false;
  for (const Subscription& s : track->subscriptions) {
    if (s.subscriber == subscriber) return false;
  }
  sub->second.bySsrc[config.ssrc] = trackId;
  if (config.rtxSsrc != 0) sub->second.bySsrc[config.rtxSsrc] = trackId;
  Subscription s{.subscriber = subscriber, .config = config};
  s.rtxSeq = s.config.initialSequence;
  track->subscriptions.push_back(s);
  // The new subscriber's decoder can start only at a keyframe: an urgent request, not held for the whole window.
  if (track->config.kind == MediaKind::kVideo) requestKeyframe(*track, now, true);
  return true;
}

bool Router::switchTrack(TransportId subscriber, TrackId from, TrackId to, TimePoint now) {
  Track* source = findTrack(from);
  Track* target = findTrack(to);
  auto sub = subscribers_.find(subscriber);
  if (source == nullptr || target == nullptr || sub == subscribers_.end() || from == to ||
      source->config.kind != target->config.kind) {
    return false;
  }
  auto it = std::find_if(source->subscriptions.begin(), source->subscriptions.end(),
                         [subscriber](const Subscription& s) { return s.subscriber == subscriber; });
  if (it == source->subscriptions.end()) return false;
  for (const Subscription& s : target->subscriptions) {
    if (s.subscriber == subscriber) return false;
  }
  sub->second.bySsrc[it->config.ssrc] = to;
  if (it->config.rtxSsrc != 0) sub->second.bySsrc[it->config.rtxSsrc] = to;
  target->subscriptions.push_back(*it);
  source->subscriptions.erase(it);
  // The subscriber's decoder shows nothing of the new source before its keyframe, like a new subscription's.
  if (target->config.kind == MediaKind::kVideo) requestKeyframe(*target, now, true);
  return true;
}

void Router::removeTransport(TransportId id) {
  if (auto pub = publishers_.find(id); pub != publishers_.end()) {
    for (TrackId t : pub->second.tracks) {
      auto track = tracks_.find(t);
      if (track == tracks_.end()) continue;
      for (const Subscription& s : track->second.subscriptions) {
        if (auto sub = subscribers_.find(s.subscriber); sub != subscribers_.end()) {
          sub->second.bySsrc.erase(s.config.ssrc);
          if (s.config.rtxSsrc != 0) sub->second.bySsrc.erase(s.config.rtxSsrc);
        }
      }
      if (track->second.ssrc != 0) bySsrc_.erase(ssrcKey(id, track->second.ssrc));
      const bool tapped = track->second.tapped;
      tracks_.erase(track);
      trackEnded(t, tapped);
    }
    publishers_.erase(pub);
    speakers_.remove(id);
  }
  if (auto sub = subscribers_.find(id); sub != subscribers_.end()) {
    for (const auto& [ssrc, t] : sub->second.bySsrc) {
      if (Track* track = findTrack(t)) {
        std::erase_if(track->subscriptions, [id](const Subscription& s) { return s.subscriber == id; });
      }
    }
    subscribers_.erase(sub);
  }
}

void Router::removeTrack(TrackId id) {
  auto track = tracks_.find(id);
  if (track == tracks_.end()) return;
  for (const Subscription& s : track->second.subscriptions) {
    if (auto sub = subscribers_.find(s.subscriber); sub != subscribers_.end()) {
      sub->second.bySsrc.erase(s.config.ssrc);
      if (s.config.rtxSsrc != 0) sub->second.bySsrc.erase(s.config.rtxSsrc);
    }
  }
  const TransportId publisher = track->second.publisher;
  if (track->second.ssrc != 0) bySsrc_.erase(ssrcKey(publisher, track->second.ssrc));
  if (auto pub = publishers_.find(publisher); pub != publishers_.end()) std::erase(pub->second.tracks, id);
  const bool tapped = track->second.tapped;
  tracks_.erase(track);
  trackEnded(id, tapped);
  dropSpeakerIfSilent(publisher);
}

void Router::trackEnded(TrackId id, bool tapped) {
  if (tapped && tap_ != nullptr) tap_->onTrackEnded(id);
}

bool Router::tapTrack(TrackId id, bool on) {
  Track* track = findTrack(id);
  if (track == nullptr) return false;
  track->tapped = on;
  return true;
}

bool Router::requestKeyframe(TrackId id, TimePoint now, bool urgent) {
  Track* track = findTrack(id);
  if (track == nullptr) return false;
  requestKeyframe(*track, now, urgent);
  return true;
}

void Router::dropSpeakerIfSilent(TransportId publisher) {
  auto pub = publishers_.find(publisher);
  if (pub != publishers_.end()) {
    for (TrackId t : pub->second.tracks) {
      if (const Track* track = findTrack(t); track != nullptr && track->config.audioLevelExtensionId != 0) return;
    }
  }
  speakers_.remove(publisher);
}

void Router::onAudioLevel(const Track& track, const rtp::Packet& packet) {
  // A packet without the element says nothing (a sender may leave it out); one of the wrong size is malformed.
  const auto value = packet.extension(track.config.audioLevelExtensionId);
  if (!value) return;
  const auto level = rtp::parseAudioLevel(*value);
  if (!level) {
    ++counters_.badAudioLevel;
    return;
  }
  ++counters_.audioLevels;
  speakers_.onLevel(track.publisher, level->voiceActivity, level->level);
}

bool Router::unsubscribe(TransportId subscriber, TrackId id) {
  Track* track = findTrack(id);
  auto sub = subscribers_.find(subscriber);
  if (track == nullptr || sub == subscribers_.end()) return false;
  auto it = std::find_if(track->subscriptions.begin(), track->subscriptions.end(),
                         [subscriber](const Subscription& s) { return s.subscriber == subscriber; });
  if (it == track->subscriptions.end()) return false;
  sub->second.bySsrc.erase(it->config.ssrc);
  if (it->config.rtxSsrc != 0) sub->second.bySsrc.erase(it->config.rtxSsrc);
  track->subscriptions.erase(it);
  return true;
}

Router::Track* Router::findTrack(TrackId id) {
  auto it = tracks_.find(id);
  return it == tracks_.end() ? nullptr : &it->second;
}

Router::Track* Router::learnSsrc(TransportId id, const Publisher& publisher, const rtp::Packet& packet) {
  if (publisher.config.midExtensionId == 0) return nullptr;
  const auto midValue = packet.extension(publisher.config.midExtensionId);
  const auto mid = midValue ? rtp::parseMid(*midValue) : std::nullopt;
  if (!mid) return nullptr;
  std::optional<std::string_view> rid;
  if (publisher.config.ridExtensionId != 0) {
    if (auto value = packet.extension(publisher.config.ridExtensionId)) rid = rtp::parseRid(*value);
  }
  for (TrackId t : publisher.tracks) {
    Track* track = findTrack(t);
    if (track == nullptr || track->ssrc != 0 || track->config.mid != *mid) continue;
    if (!track->config.rid.empty() && (!rid || *rid != track->config.rid)) continue;
    if (track->config.payloadTypes.any() && !track->config.payloadTypes.test(packet.payloadType())) continue;
    track->ssrc = packet.ssrc();
    bySsrc_[ssrcKey(id, track->ssrc)] = t;
    return track;
  }
  return nullptr;
}

void Router::onPublisherRtp(TransportId publisher, std::span<const uint8_t> bytes, TimePoint now) {
  ++counters_.rtpIn;
  auto pub = publishers_.find(publisher);
  const auto packet = rtp::Packet::parse(bytes);
  if (!packet || pub == publishers_.end()) {
    ++counters_.badRtp;
    return;
  }
  Track* track = nullptr;
  if (auto it = bySsrc_.find(ssrcKey(publisher, packet->ssrc())); it != bySsrc_.end()) {
    track = findTrack(it->second);
  } else {
    track = learnSsrc(publisher, pub->second, *packet);
  }
  if (track == nullptr) {
    for (TrackId t : pub->second.tracks) {
      Track* candidate = findTrack(t);
      if (candidate != nullptr && candidate->config.rtxSsrc != 0 && candidate->config.rtxSsrc == packet->ssrc()) {
        return onPublisherRtx(*candidate, *packet, now);
      }
    }
    ++counters_.unknownSsrc;
    return;
  }
  if (track->config.audioLevelExtensionId != 0) onAudioLevel(*track, *packet);
  onTrackPacket(*track, *packet, now, false);
}

void Router::onTrackPacket(Track& track, const rtp::Packet& packet, TimePoint now, bool retransmitted) {
  if (!mediaSeen_) {
    // RFC 3550 section 6.2 halves the first interval, so that the first SR (and with it lip sync) comes sooner.
    mediaSeen_ = true;
    nextReport_ = now + kReportInterval / 2;
  }
  track.received.onPacket(packet.sequenceNumber(), packet.timestamp(), now, retransmitted);
  // A retransmission was shown to the NACK generator already, to learn whether it fills a hole.
  if (track.nack && !retransmitted) track.nack->onPacket(packet.sequenceNumber(), now);
  if (track.retransmission) track.retransmission->store(packet.sequenceNumber(), packet.bytes());
  if (track.tapped && tap_ != nullptr) tap_->onTrackRtp(track.id, packet, now);
  for (Subscription& sub : track.subscriptions) forward(track, sub, packet, now);
}

void Router::onPublisherRtx(Track& track, const rtp::Packet& rtx, TimePoint now) {
  // Chromium probes bandwidth with padding-only packets on the RTX stream: nothing to unwrap.
  if (rtx.payload().empty()) {
    ++counters_.publisherRtx;
    return;
  }
  // An RTX payload type whose apt the SDP did not give, or a track whose SSRC is not known yet: nothing to restore.
  const auto apt = track.config.rtxPayloadTypes[rtx.payloadType()];
  if (!apt || track.ssrc == 0) {
    ++counters_.publisherRtx;
    return;
  }
  const std::span<uint8_t> out(unwrapped_.get(), SendQueue::kSlotSize);
  const auto length = rtp::unwrapRtx(rtx, track.ssrc, *apt, out);
  const auto original = length ? rtp::Packet::parse(out.first(*length)) : std::nullopt;
  if (!original) {
    ++counters_.badRtp;
    return;
  }
  ++counters_.rtxUnwrapped;
  const uint16_t seq = original->sequenceNumber();
  // Forwarded once: not if the original (or an earlier retransmission) arrived, nor if NACK gave up on it already.
  bool duplicate = false;
  if (track.retransmission) {
    const auto held = track.retransmission->find(seq);
    const auto heldPacket = held ? rtp::Packet::parse(*held) : std::nullopt;
    duplicate = heldPacket && heldPacket->ssrc() == track.ssrc;
  }
  if (!duplicate && track.nack && track.nack->onPacket(seq, now) == rtp::NackGenerator::Arrival::kLate)
    duplicate = true;
  if (duplicate) {
    ++counters_.publisherRtx;
    return;
  }
  ++counters_.rtxRecovered;
  onTrackPacket(track, *original, now, true);
}

void Router::forward(Track& track, Subscription& sub, const rtp::Packet& packet, TimePoint now) {
  const uint32_t ssrc = packet.ssrc();
  if (!sub.started || sub.sourceSsrc != ssrc) {
    // A new source: its first packet continues where the subscriber's view left off (or starts at the initial
    // values), so the subscriber's jitter buffer sees neither a jump back nor a gap.
    uint16_t seq = sub.config.initialSequence;
    uint32_t ts = sub.config.initialTimestamp;
    if (sub.started) {
      seq = uint16_t(sub.lastSeq + 1);
      const auto elapsed = std::chrono::duration_cast<Millis>(now - sub.lastSent).count();
      ts = sub.lastTs + uint32_t(std::max<int64_t>(1, elapsed * int64_t(track.config.clockRate) / 1000));
    }
    sub.seqOffset = uint16_t(seq - packet.sequenceNumber());
    sub.tsOffset = ts - packet.timestamp();
    sub.sourceSsrc = ssrc;
    sub.lastSeq = uint16_t(seq - 1);
    sub.started = true;
  }
  const uint16_t seq = uint16_t(packet.sequenceNumber() + sub.seqOffset);
  const uint32_t ts = packet.timestamp() + sub.tsOffset;
  if (rtp::isNewer(seq, sub.lastSeq)) {
    sub.lastSeq = seq;
    sub.lastTs = ts;
    sub.lastSent = now;
  }
  auto it = subscribers_.find(sub.subscriber);
  if (it == subscribers_.end()) return;
  Subscriber& subscriber = it->second;
  const uint16_t buffer = acquire(sub.subscriber, subscriber, track, track.id);
  if (buffer == SendPool::kNone) return;
  const auto length = rewrite(sub, packet, seq, ts, pool_->buffer(buffer));
  if (!length) {
    pool_->release(buffer);
    return;
  }
  const bool wasEmpty = subscriber.queue.size() == 0;
  subscriber.queue.push(buffer, *length, track.config.kind == MediaKind::kVideo ? track.id : 0);
  ++counters_.forwarded;
  ++sub.stats.packetsSent;
  sub.stats.octetsSent += packet.payload().size();
  if (wasEmpty) io_->onReady(sub.subscriber);
}

uint16_t Router::acquire(TransportId id, Subscriber& subscriber, const Track& track, TrackId trackId) {
  SendQueue& queue = subscriber.queue;
  if (track.config.kind == MediaKind::kVideo) {
    // Video leaves the pool's last sixteenth to audio: one subscriber's burst of video never starves the audio of
    // the others on the worker.
    if (!queue.full() && pool_->available() > pool_->capacity() / 16) {
      if (const uint16_t b = pool_->acquire(); b != SendPool::kNone) return b;
    }
    ++counters_.queueFull;
    markVideoDropped(id, subscriber, trackId);
    return SendPool::kNone;
  }
  if (!queue.full()) {
    if (const uint16_t b = pool_->acquire(); b != SendPool::kNone) return b;
  }
  // Audio first: the subscriber's newest queued video packet gives its place (and its buffer) up.
  if (const TrackId dropped = queue.dropNewestVideo(); dropped != 0) {
    ++counters_.queueFull;
    markVideoDropped(id, subscriber, dropped);
    return pool_->acquire();
  }
  ++counters_.audioDropped;
  return SendPool::kNone;
}

void Router::markVideoDropped(TransportId id, Subscriber& subscriber, TrackId trackId) {
  Track* track = findTrack(trackId);
  if (track == nullptr) return;
  for (Subscription& s : track->subscriptions) {
    if (s.subscriber == id) s.videoDropped = true;
  }
  subscriber.videoDropped = true;
}

void Router::onDrainedAfterDrop(TransportId id, Subscriber& subscriber) {
  subscriber.videoDropped = false;
  for (const auto& [ssrc, trackId] : subscriber.bySsrc) {
    Track* track = findTrack(trackId);
    if (track == nullptr) continue;
    for (Subscription& s : track->subscriptions) {
      if (s.subscriber != id || !s.videoDropped) continue;
      s.videoDropped = false;
      s.keyframeDue = true;
      keyframesDue_ = true;
    }
  }
}

std::optional<size_t> Router::rewrite(const Subscription& sub, const rtp::Packet& packet, uint16_t seq, uint32_t ts,
                                      std::span<uint8_t> out) {
  const auto pt = sub.config.payloadTypes[packet.payloadType()];
  if (!pt) {
    ++counters_.unmappedPayloadType;
    return std::nullopt;
  }
  const auto in = packet.bytes();
  if (in.size() > SendQueue::kMaxPacket || in.size() > out.size()) {
    ++counters_.tooLarge;
    return std::nullopt;
  }
  std::memcpy(out.data(), in.data(), in.size());
  auto copy = rtp::MutablePacket::parse(out.first(in.size()));
  if (!copy) {  // cannot happen: the same bytes parsed before
    ++counters_.badRtp;
    return std::nullopt;
  }
  copy->setSsrc(sub.config.ssrc);
  copy->setSequenceNumber(seq);
  copy->setTimestamp(ts);
  copy->setPayloadType(*pt);
  if (!copy->remapExtensionIds(sub.config.extensions)) {
    ++counters_.unmappedExtension;
    return std::nullopt;
  }
  return in.size();
}

bool Router::enqueue(TransportId subscriber, std::span<const uint8_t> bytes, const Track& track) {
  auto it = subscribers_.find(subscriber);
  if (it == subscribers_.end()) return false;
  if (bytes.size() > SendQueue::kMaxPacket) {
    ++counters_.tooLarge;
    return false;
  }
  const uint16_t buffer = acquire(subscriber, it->second, track, track.id);
  if (buffer == SendPool::kNone) return false;
  std::memcpy(pool_->buffer(buffer).data(), bytes.data(), bytes.size());
  const bool wasEmpty = it->second.queue.size() == 0;
  it->second.queue.push(buffer, bytes.size(), track.config.kind == MediaKind::kVideo ? track.id : 0);
  if (wasEmpty) io_->onReady(subscriber);
  return true;
}

void Router::requestKeyframe(Track& track, TimePoint now, bool urgent) {
  ++counters_.keyframeRequestsIn;
  if (urgent ? track.throttle.requestUrgent(now) : track.throttle.request(now)) sendPli(track);
}

void Router::sendPli(const Track& track) {
  // Before the SSRC is known there is nothing to ask; the first keyframe comes anyway.
  if (track.ssrc == 0) return;
  auto pub = publishers_.find(track.publisher);
  if (pub == publishers_.end()) return;
  std::array<uint8_t, 16> buffer{};
  if (auto n = rtp::rtcp::writePli(buffer, {pub->second.config.feedbackSsrc, track.ssrc})) {
    ++counters_.keyframeRequestsSent;
    io_->sendRtcp(track.publisher, std::span<const uint8_t>(buffer.data(), *n));
  }
}

void Router::tick(TimePoint now) {
  if (keyframesDue_) {
    keyframesDue_ = false;
    for (auto& [id, track] : tracks_) {
      for (Subscription& s : track.subscriptions) {
        if (!s.keyframeDue) continue;
        s.keyframeDue = false;
        requestKeyframe(track, now);
      }
    }
  }
  for (auto& [id, track] : tracks_) {
    if (track.throttle.poll(now)) sendPli(track);
    if (track.nack) sendNacks(track, now);
  }
  if (now >= nextReport_) {
    sendReports(now);
    nextReport_ = now + kReportInterval;
  }
}

TimePoint Router::nextDeadline() const {
  if (keyframesDue_) return TimePoint::min();
  TimePoint next = mediaSeen_ ? nextReport_ : TimePoint::max();
  for (const auto& [id, track] : tracks_) {
    if (auto at = track.throttle.pendingAt()) next = std::min(next, *at);
    if (track.nack) {
      if (auto at = track.nack->nextDue()) next = std::min(next, *at);
    }
  }
  return next;
}

void Router::sendNacks(Track& track, TimePoint now) {
  auto pub = publishers_.find(track.publisher);
  if (pub == publishers_.end() || track.ssrc == 0) return;
  const PublisherConfig& config = pub->second.config;
  // One NACK packet per tick; what does not fit stays due for the next.
  std::array<uint16_t, 64> seqs{};
  const size_t n = track.nack->collect(now, seqs);
  if (n > 0) {
    std::array<uint8_t, 512> buffer{};
    rtp::rtcp::CompoundBuilder b(buffer);
    // RFC 3550 wants every compound packet to start with a report and carry a CNAME; RFC 5506 lets feedback go
    // alone once reduced-size RTCP was negotiated.
    if (!config.reducedSize) b.receiverReport(config.feedbackSsrc).sdesCname(config.feedbackSsrc, "kaiwa");
    b.nack({config.feedbackSsrc, track.ssrc}, std::span<const uint16_t>(seqs.data(), n));
    if (b.ok()) {
      ++counters_.nacksSent;
      counters_.nackRequested += n;
      io_->sendRtcp(track.publisher, b.bytes());
    }
  }
  // Given up or beyond what the list holds: only a keyframe repairs the decoders now.
  if (track.nack->keyframeNeeded()) {
    track.nack->onKeyframeRequested();
    requestKeyframe(track, now);
  }
}

void Router::sendReports(TimePoint now) {
  std::array<uint8_t, 1500> buffer{};
  std::array<rtp::rtcp::ReportBlock, rtp::rtcp::kMaxReportBlocks> blocks{};
  for (auto& [id, pub] : publishers_) {
    size_t n = 0;
    for (TrackId t : pub.tracks) {
      Track* track = findTrack(t);
      if (track == nullptr || track->ssrc == 0 || n == blocks.size()) continue;
      if (auto block = track->received.report(track->ssrc, now)) blocks[n++] = *block;
    }
    if (n == 0) continue;
    rtp::rtcp::CompoundBuilder b(buffer);
    b.receiverReport(pub.config.feedbackSsrc, std::span<const rtp::rtcp::ReportBlock>(blocks.data(), n))
        .sdesCname(pub.config.feedbackSsrc, "kaiwa");
    if (b.ok()) {
      ++counters_.receiverReportsSent;
      io_->sendRtcp(id, b.bytes());
    }
  }
  const uint64_t ntp = rtp::toNtp(now, unixAtEpoch_);
  for (auto& [id, track] : tracks_) {
    // Without the publisher's SR there is no RTP time that kaiwa could say belongs to an NTP time: no SR yet.
    if (!track.mapping) continue;
    const auto elapsed = std::chrono::duration_cast<std::chrono::microseconds>(now - track.mapping->arrival).count();
    const auto sourceNow =
        track.mapping->rtpTimestamp + uint32_t(int64_t(elapsed) * int64_t(track.config.clockRate) / 1'000'000);
    for (Subscription& sub : track.subscriptions) {
      // Sent nothing yet, or still forwarding from an older source whose offsets this mapping does not fit.
      if (!sub.started || sub.stats.packetsSent == 0 || sub.sourceSsrc != track.ssrc) continue;
      auto subscriber = subscribers_.find(sub.subscriber);
      if (subscriber == subscribers_.end()) continue;
      const rtp::rtcp::SenderInfo info{.ntpTimestamp = ntp,
                                       .rtpTimestamp = sourceNow + sub.tsOffset,
                                       .packetCount = uint32_t(sub.stats.packetsSent),
                                       .octetCount = uint32_t(sub.stats.octetsSent)};
      rtp::rtcp::CompoundBuilder b(buffer);
      b.senderReport(sub.config.ssrc, info).sdesCname(sub.config.ssrc, subscriber->second.cname);
      if (b.ok()) {
        ++counters_.senderReportsSent;
        io_->sendRtcp(sub.subscriber, b.bytes());
      }
    }
  }
}

void Router::onPublisherRtcp(TransportId publisher, std::span<const uint8_t> packet, TimePoint now) {
  if (!publishers_.contains(publisher)) return;
  rtp::rtcp::CompoundReader reader(packet);
  while (auto block = reader.next()) {
    if (rtp::rtcp::PacketType(block->type) != rtp::rtcp::PacketType::kSenderReport) continue;
    const auto sr = rtp::rtcp::SenderReport::parse(*block);
    if (!sr) {
      ++counters_.badRtcp;
      continue;
    }
    auto it = bySsrc_.find(ssrcKey(publisher, sr->ssrc));
    Track* track = it == bySsrc_.end() ? nullptr : findTrack(it->second);
    if (track == nullptr) continue;  // e.g. the RTX stream's SR
    track->received.onSenderReport(sr->info.ntpTimestamp, now);
    track->mapping = SenderMapping{sr->info.rtpTimestamp, now};
  }
  if (reader.error() != rtp::rtcp::WalkError::kNone) ++counters_.badRtcp;
}

void Router::onReportBlock(TransportId subscriber, const rtp::rtcp::ReportBlock& block, TimePoint now) {
  auto sub = subscribers_.find(subscriber);
  if (sub == subscribers_.end()) return;
  auto it = sub->second.bySsrc.find(block.ssrc);
  Track* track = it == sub->second.bySsrc.end() ? nullptr : findTrack(it->second);
  if (track == nullptr) return;  // a block about a stream kaiwa does not send it (or an RTX SSRC's)
  for (Subscription& s : track->subscriptions) {
    if (s.subscriber != subscriber || s.config.ssrc != block.ssrc) continue;
    ++counters_.receiverReportsIn;
    s.stats.reported = true;
    s.stats.fractionLost = block.fractionLost;
    s.stats.cumulativeLost = block.cumulativeLost;
    s.stats.jitter = block.jitter;
    if (auto rtt = rtp::roundTripTime(rtp::toNtp(now, unixAtEpoch_), block.lastSenderReport,
                                      block.delaySinceLastSenderReport)) {
      s.stats.rtt = *rtt;
    }
  }
}

void Router::onSubscriberRtcp(TransportId subscriber, std::span<const uint8_t> packet, TimePoint now) {
  auto sub = subscribers_.find(subscriber);
  if (sub == subscribers_.end()) return;
  // Finds the track and the subscription a feedback SSRC names.
  auto lookup = [&](uint32_t ssrc) -> std::pair<Track*, Subscription*> {
    auto it = sub->second.bySsrc.find(ssrc);
    Track* track = it == sub->second.bySsrc.end() ? nullptr : findTrack(it->second);
    if (track == nullptr) {
      ++counters_.unknownFeedbackSsrc;
      return {nullptr, nullptr};
    }
    for (Subscription& s : track->subscriptions) {
      if (s.subscriber == subscriber) return {track, &s};
    }
    return {nullptr, nullptr};
  };
  rtp::rtcp::CompoundReader reader(packet);
  while (auto block = reader.next()) {
    const auto type = rtp::rtcp::PacketType(block->type);
    if (type == rtp::rtcp::PacketType::kReceiverReport || type == rtp::rtcp::PacketType::kSenderReport) {
      std::optional<rtp::rtcp::ReceiverReport> rr;
      if (type == rtp::rtcp::PacketType::kReceiverReport) {
        rr = rtp::rtcp::ReceiverReport::parse(*block);
      } else if (auto sr = rtp::rtcp::SenderReport::parse(*block)) {
        rr = rtp::rtcp::ReceiverReport{sr->ssrc, sr->reports};
      }
      if (!rr) {
        ++counters_.badRtcp;
        continue;
      }
      for (size_t i = 0; i < rr->reports.size(); ++i) onReportBlock(subscriber, rr->reports[i], now);
    } else if (type == rtp::rtcp::PacketType::kPayloadFeedback && block->count == rtp::rtcp::kFmtPli) {
      if (auto pli = rtp::rtcp::Pli::parse(*block)) {
        if (auto [track, s] = lookup(pli->header.mediaSsrc); track != nullptr) requestKeyframe(*track, now);
      } else {
        ++counters_.badRtcp;
      }
    } else if (type == rtp::rtcp::PacketType::kPayloadFeedback && block->count == rtp::rtcp::kFmtFir) {
      if (auto fir = rtp::rtcp::Fir::parse(*block)) {
        for (size_t i = 0; i < fir->size(); ++i) {
          if (auto [track, s] = lookup((*fir)[i].ssrc); track != nullptr) requestKeyframe(*track, now);
        }
      } else {
        ++counters_.badRtcp;
      }
    } else if (type == rtp::rtcp::PacketType::kRtpFeedback && block->count == rtp::rtcp::kFmtNack) {
      if (auto nack = rtp::rtcp::Nack::parse(*block)) {
        auto [track, s] = lookup(nack->header().mediaSsrc);
        if (track == nullptr) continue;
        // At most 17 numbers per item; a bounded array keeps the path free of allocation (the rest are asked again).
        std::array<uint16_t, 128> seqs{};
        const size_t n = nack->sequenceNumbers(seqs);
        answerNack(*track, *s, std::span<const uint16_t>(seqs.data(), n));
      } else {
        ++counters_.badRtcp;
      }
    }
  }
  if (reader.error() != rtp::rtcp::WalkError::kNone) ++counters_.badRtcp;
}

void Router::answerNack(Track& track, Subscription& sub, std::span<const uint16_t> seqs) {
  if (!track.retransmission || !sub.started) {
    counters_.nackMissed += seqs.size();
    return;
  }
  for (uint16_t outSeq : seqs) {
    // The subscriber's numbers map back to the current source's; older sources' packets are not held apart.
    const uint16_t inSeq = uint16_t(outSeq - sub.seqOffset);
    const auto stored = track.retransmission->find(inSeq);
    const auto original = stored ? rtp::Packet::parse(*stored) : std::nullopt;
    if (!original || original->ssrc() != sub.sourceSsrc) {
      ++counters_.nackMissed;
      continue;
    }
    const std::span<uint8_t> scratch(scratch_.get(), SendQueue::kSlotSize);
    const auto length = rewrite(sub, *original, outSeq, original->timestamp() + sub.tsOffset, scratch);
    if (!length) continue;
    if (sub.config.rtxSsrc == 0) {
      if (enqueue(sub.subscriber, scratch.first(*length), track)) ++counters_.nackRetransmitted;
      continue;
    }
    const auto rewritten = rtp::Packet::parse(scratch.first(*length));
    std::array<uint8_t, SendQueue::kMaxPacket> rtx{};
    const auto rtxLength =
        rewritten ? rtp::writeRtx(*rewritten, sub.config.rtxSsrc, sub.config.rtxPayloadType, sub.rtxSeq, rtx)
                  : std::nullopt;
    if (!rtxLength) {
      ++counters_.tooLarge;
      continue;
    }
    ++sub.rtxSeq;
    if (enqueue(sub.subscriber, std::span<const uint8_t>(rtx.data(), *rtxLength), track)) {
      ++counters_.nackRetransmitted;
    }
  }
}

size_t Router::queued(TransportId subscriber) const {
  auto it = subscribers_.find(subscriber);
  return it == subscribers_.end() ? 0 : it->second.queue.size();
}

std::optional<rtp::KeyframeRequestThrottle::Stats> Router::keyframeStats(TrackId track) const {
  auto it = tracks_.find(track);
  if (it == tracks_.end()) return std::nullopt;
  return it->second.throttle.stats();
}

std::optional<SubscriptionStats> Router::subscriptionStats(TransportId subscriber, TrackId track) const {
  auto it = tracks_.find(track);
  if (it == tracks_.end()) return std::nullopt;
  for (const Subscription& s : it->second.subscriptions) {
    if (s.subscriber == subscriber) return s.stats;
  }
  return std::nullopt;
}

std::optional<rtp::rtcp::ReportBlock> Router::receiveStats(TrackId track, TimePoint now) const {
  auto it = tracks_.find(track);
  if (it == tracks_.end() || it->second.ssrc == 0) return std::nullopt;
  rtp::ReceiveStatistics copy = it->second.received;  // report() starts a new interval: ask a copy
  return copy.report(it->second.ssrc, now);
}

size_t Router::lossySubscriptions(uint8_t fraction) const {
  size_t n = 0;
  for (const auto& [id, track] : tracks_) {
    for (const Subscription& s : track.subscriptions) n += s.stats.reported && s.stats.fractionLost >= fraction;
  }
  return n;
}

}  // namespace kaiwa::sfu

#include "sfu/router.hpp"

#include <algorithm>
#include <cstring>

#include "rtp/payload.hpp"
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

void Router::addPublisher(TransportId publisher, PublisherConfig config) {
  Publisher& p = publishers_[publisher];
  p.config = config;
  if (config.transportCcExtensionId != 0 && !p.feedback) {
    p.feedback = std::make_unique<bwe::FeedbackGenerator>(config.feedbackSsrc);
    bweActive_ = true;
  }
}

std::optional<TrackId> Router::addSimulcastTrack(TransportId publisher, std::span<const TrackConfig> layers) {
  if (layers.empty() || layers.size() > SimulcastRewriter::kMaxLayers || !publishers_.contains(publisher))
    return std::nullopt;
  std::vector<TrackId> ids;
  for (const TrackConfig& config : layers) {
    auto id = addTrack(publisher, config);
    if (!id) {
      for (TrackId t : ids) removeTrack(t);
      return std::nullopt;
    }
    ids.push_back(*id);
  }
  for (size_t i = 0; i < ids.size(); ++i) {
    Track& t = tracks_[ids[i]];
    t.group = ids.front();
    t.spatial = uint8_t(i);
  }
  tracks_[ids.front()].layers = ids;
  return ids.front();
}

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
  Subscriber& subscriberState = sub->second;
  subscriberState.bySsrc[config.ssrc] = trackId;
  if (config.rtxSsrc != 0) subscriberState.bySsrc[config.rtxSsrc] = trackId;
  Subscription s{.subscriber = subscriber, .config = config};
  s.rtxSeq = s.config.initialSequence;
  if (config.transportCcExtensionId != 0 && !subscriberState.estimator) {
    subscriberState.transportCcId = config.transportCcExtensionId;
    subscriberState.estimator = std::make_unique<bwe::BandwidthEstimator>();
    bweActive_ = true;
  }
  const bool simulcast = track->group == trackId;
  if (simulcast) {
    s.simulcast =
        std::make_unique<SimulcastRewriter>(track->config.clockRate, config.initialSequence, config.initialTimestamp);
    s.sent = std::make_unique<std::array<Subscription::Sent, Subscription::kSentRing>>();
    if (!subscriberState.selector) subscriberState.selector = std::make_unique<bwe::LayerSelector>();
    subscriberState.selector->addTrack(selectorInfo(*track, s));
    bweActive_ = true;
  }
  track->subscriptions.push_back(std::move(s));
  // The new subscriber's decoder can start only at a keyframe: an urgent request, not held for the whole window. A
  // simulcast subscription asks for the layer its selector picks (tick).
  if (track->config.kind == MediaKind::kVideo && !simulcast) requestKeyframe(*track, now, true);
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
  // A simulcast subscription has its own rewriting state: it is not moved (the caller subscribes anew).
  if (source->group != 0 || target->group != 0) return false;
  auto it = std::find_if(source->subscriptions.begin(), source->subscriptions.end(),
                         [subscriber](const Subscription& s) { return s.subscriber == subscriber; });
  if (it == source->subscriptions.end()) return false;
  for (const Subscription& s : target->subscriptions) {
    if (s.subscriber == subscriber) return false;
  }
  sub->second.bySsrc[it->config.ssrc] = to;
  if (it->config.rtxSsrc != 0) sub->second.bySsrc[it->config.rtxSsrc] = to;
  target->subscriptions.push_back(std::move(*it));
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
      for (const Subscription& s : track->second.subscriptions) forgetSubscription(s.subscriber, s, t);
      if (track->second.ssrc != 0) bySsrc_.erase(ssrcKey(id, track->second.ssrc));
      const bool tapped = track->second.tapped;
      tracks_.erase(track);
      trackEnded(t, tapped);
    }
    publishers_.erase(pub);
    speakers_.remove(id);
  }
  if (auto sub = subscribers_.find(id); sub != subscribers_.end()) {
    collectSwitches(sub->second);
    for (const auto& [ssrc, t] : sub->second.bySsrc) {
      if (Track* track = findTrack(t)) {
        std::erase_if(track->subscriptions, [id](const Subscription& s) { return s.subscriber == id; });
      }
    }
    subscribers_.erase(sub);
  }
}

void Router::forgetSubscription(TransportId subscriber, const Subscription& s, TrackId track) {
  auto sub = subscribers_.find(subscriber);
  if (sub == subscribers_.end()) return;
  sub->second.bySsrc.erase(s.config.ssrc);
  if (s.config.rtxSsrc != 0) sub->second.bySsrc.erase(s.config.rtxSsrc);
  if (s.simulcast && sub->second.selector) {
    collectSwitches(sub->second);
    sub->second.selector->removeTrack(track);
  }
}

void Router::removeTrack(TrackId id) {
  auto track = tracks_.find(id);
  if (track == tracks_.end()) return;
  // A simulcast group goes whole: its other layers first.
  if (track->second.group == id) {
    const std::vector<TrackId> layers = track->second.layers;
    for (TrackId layer : layers) {
      if (layer != id) removeTrack(layer);
    }
    track = tracks_.find(id);
    if (track == tracks_.end()) return;
  }
  for (const Subscription& s : track->second.subscriptions) forgetSubscription(s.subscriber, s, id);
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
  forgetSubscription(subscriber, *it, id);
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
  if (const auto& feedback = pub->second.feedback) {
    // Every packet with the transport-wide number counts (RTX and padding too): the publisher's estimate is of its
    // whole transport.
    if (const auto value = packet->extension(pub->second.config.transportCcExtensionId)) {
      if (const auto seq = rtp::parseTransportSequenceNumber(*value)) feedback->onPacket(packet->ssrc(), *seq, now);
    }
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
  if (track.group == 0) {
    if (track.config.kind == MediaKind::kAudio) track.meterBytes[0] += packet.bytes().size();
    for (Subscription& sub : track.subscriptions) forward(track, sub, packet, now);
    return;
  }
  const PacketLayers layers = readLayers(track, packet);
  Track* head = track.group == track.id ? &track : findTrack(track.group);
  if (head == nullptr) return;
  for (Subscription& sub : head->subscriptions) forwardSimulcast(*head, track, sub, packet, layers, now);
}

Router::PacketLayers Router::readLayers(Track& track, const rtp::Packet& packet) {
  PacketLayers out;
  if (track.config.vp8) {
    out.vp8 = rtp::parseVp8Layers(packet.payload());
    if (const auto d = rtp::parseVp8(packet.payload()); d && d->keyframe) {
      out.keyframe = true;
      if (const auto size = rtp::vp8KeyframeSize(packet.payload().subspan(d->size))) track.height = size->height;
    }
  }
  const uint8_t tid = out.vp8 ? std::min<uint8_t>(out.vp8->temporalId, bwe::kMaxTemporalLayers - 1) : 0;
  track.meterBytes[tid] += packet.bytes().size();
  return out;
}

Router::Track& Router::forwardedTrack(Track& head, const Subscription& sub) {
  if (!sub.started) return head;
  for (TrackId id : head.layers) {
    Track* layer = findTrack(id);
    if (layer != nullptr && layer->ssrc == sub.sourceSsrc) return *layer;
  }
  return head;
}

void Router::forwardSimulcast(Track& head, Track& layer, Subscription& sub, const rtp::Packet& packet,
                              const PacketLayers& layers, TimePoint now) {
  auto it = subscribers_.find(sub.subscriber);
  if (it == subscribers_.end() || !it->second.selector || !sub.simulcast) return;
  Subscriber& subscriber = it->second;
  const bool frameStart = layers.vp8 && layers.vp8->frameStart;
  const uint8_t tid = layers.vp8 ? layers.vp8->temporalId : 0;
  const bool sync = layers.vp8 && layers.vp8->layerSync;
  const auto verdict = subscriber.selector->onPacket(head.id, layer.spatial, tid, frameStart, layers.keyframe, sync);
  if (!verdict.forward) {
    if (sub.started && layer.ssrc == sub.sourceSsrc) sub.simulcast->drop(layer.spatial, packet.sequenceNumber());
    return;
  }
  SimulcastRewriter::In in;
  in.layer = layer.spatial;
  in.sequence = packet.sequenceNumber();
  in.timestamp = packet.timestamp();
  if (layers.vp8) {
    in.pictureId = layers.vp8->pictureId;
    in.tl0PicIdx = layers.vp8->tl0PicIdx;
  }
  const auto out = sub.simulcast->forward(in, verdict.switched, now);
  if (!out) {
    ++counters_.simulcastLate;
    return;
  }
  sub.started = true;
  sub.sourceSsrc = layer.ssrc;
  sub.tsOffset = out->timestamp - packet.timestamp();
  if (rtp::isNewer(out->sequence, sub.lastSeq) || out->switched != SimulcastRewriter::Switch::kNone) {
    sub.lastSeq = out->sequence;
    sub.lastTs = out->timestamp;
    sub.lastSent = now;
  }
  (*sub.sent)[out->sequence % Subscription::kSentRing] = {layer.id,     out->sequence,  packet.sequenceNumber(),
                                                          sub.tsOffset, out->pictureId, out->tl0PicIdx};
  const uint16_t buffer = acquire(sub.subscriber, subscriber, layer, head.id);
  if (buffer == SendPool::kNone) return;
  const auto length = rewrite(sub, packet, out->sequence, out->timestamp, pool_->buffer(buffer));
  if (!length) {
    pool_->release(buffer);
    return;
  }
  if (layers.vp8) {
    const size_t offset = size_t(packet.payload().data() - packet.bytes().data());
    const auto payload = pool_->buffer(buffer).subspan(offset, packet.payload().size());
    if (out->pictureId) rtp::writeVp8PictureId(payload, *layers.vp8, *out->pictureId);
    if (out->tl0PicIdx) rtp::writeVp8Tl0PicIdx(payload, *layers.vp8, *out->tl0PicIdx);
  }
  const bool wasEmpty = subscriber.queue.size() == 0;
  subscriber.queue.push(buffer, *length, head.id);
  ++counters_.forwarded;
  ++sub.stats.packetsSent;
  sub.stats.octetsSent += packet.payload().size();
  if (wasEmpty) io_->onReady(sub.subscriber);
}

void Router::stampTransportSequence(Subscriber& s, std::span<uint8_t> packet, TimePoint now) {
  s.sentBytes += packet.size();
  auto mutablePacket = rtp::MutablePacket::parse(packet);
  if (!mutablePacket) return;
  const auto value = mutablePacket->extension(s.transportCcId);
  if (!value || value->size() != 2) return;
  const uint16_t seq = s.transportSequence++;
  (*value)[0] = uint8_t(seq >> 8);
  (*value)[1] = uint8_t(seq);
  s.estimator->onPacketSent(seq, now, packet.size());
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
        requestKeyframe(track.group == id ? forwardedTrack(track, s) : track, now);
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
  if (bweActive_ && now >= nextBweTick_) {
    nextBweTick_ = now + kBweTick;
    sendTransportFeedback(now);
    rollMeters(now);
    updateSelectors(now);
    for (auto& [id, s] : subscribers_) {
      if (s.probeTarget > 0) probe(id, s, now);
    }
  }
}

void Router::sendTransportFeedback(TimePoint now) {
  std::array<uint8_t, 1280> buffer{};
  for (auto& [id, pub] : publishers_) {
    if (!pub.feedback) continue;
    // Sent alone: Chromium and Firefox negotiate reduced-size RTCP (RFC 5506), and a message is due every 100 ms.
    while (const auto n = pub.feedback->poll(now, buffer)) {
      ++counters_.transportFeedbackSent;
      io_->sendRtcp(id, std::span<const uint8_t>(buffer.data(), *n));
    }
  }
}

void Router::rollMeters(TimePoint now) {
  if (!metering_) {
    metering_ = true;
    meterStart_ = now;
    return;
  }
  const auto window = std::chrono::duration_cast<std::chrono::microseconds>(now - meterStart_).count();
  if (window < std::chrono::duration_cast<std::chrono::microseconds>(kMeterWindow).count()) return;
  meterStart_ = now;
  auto bps = [window](uint64_t bytes) { return bytes * 8 * 1'000'000 / uint64_t(window); };
  for (auto& [id, s] : subscribers_) {
    s.sentRate = bps(s.sentBytes);
    s.sentBytes = 0;
    s.audioRate = 0;
  }
  for (auto& [id, track] : tracks_) {
    uint64_t cumulative = 0;
    uint8_t layers = 1;
    for (size_t t = 0; t < track.meterBytes.size(); ++t) {
      cumulative += track.meterBytes[t];
      if (track.meterBytes[t] > 0) layers = uint8_t(t + 1);
      track.rate[t] = uint32_t(std::min<uint64_t>(bps(cumulative), UINT32_MAX));
      track.meterBytes[t] = 0;
    }
    track.temporalLayers = layers;
    if (track.config.kind != MediaKind::kAudio) continue;
    for (const Subscription& sub : track.subscriptions) {
      if (auto it = subscribers_.find(sub.subscriber); it != subscribers_.end()) it->second.audioRate += track.rate[0];
    }
  }
  for (auto& [id, track] : tracks_) {
    if (track.group != id) continue;
    for (const Subscription& sub : track.subscriptions) {
      auto it = subscribers_.find(sub.subscriber);
      if (it != subscribers_.end() && it->second.selector) it->second.selector->updateTrack(selectorInfo(track, sub));
    }
  }
}

bwe::VideoTrackInfo Router::selectorInfo(const Track& head, const Subscription& sub) const {
  bwe::VideoTrackInfo info;
  info.id = head.id;
  if (head.config.screenShare) {
    info.priority = bwe::TrackPriority::kScreenShare;
  } else if (speakers_.dominant() == head.publisher) {
    info.priority = bwe::TrackPriority::kSpeaker;
  }
  info.spatialLayers = uint8_t(std::min(head.layers.size(), bwe::kMaxSpatialLayers));
  uint8_t temporal = 1;
  for (size_t s = 0; s < info.spatialLayers; ++s) {
    auto it = tracks_.find(head.layers[s]);
    if (it == tracks_.end()) continue;
    const Track& layer = it->second;
    temporal = std::max(temporal, layer.temporalLayers);
    for (size_t t = 0; t < bwe::kMaxTemporalLayers; ++t) {
      info.bitrate[s][t] = layer.rate[std::min<size_t>(t, layer.temporalLayers - 1)];
    }
    info.height[s] = layer.height;
  }
  info.temporalLayers = temporal;
  info.renderedWidth = sub.tileWidth;
  info.renderedHeight = sub.tileHeight;
  return info;
}

void Router::collectSwitches(Subscriber& s) {
  if (!s.selector) return;
  const uint64_t switches = s.selector->stats().switches;
  counters_.layerSwitches += switches - s.switchesCounted;
  s.switchesCounted = switches;
}

void Router::updateSelectors(TimePoint now) {
  for (auto& [id, s] : subscribers_) {
    if (!s.selector) continue;
    const uint64_t estimate = s.estimator ? s.estimator->estimate() : kNoEstimate;
    s.selector->setAudioBitrate(s.audioRate);
    s.selector->update(now, estimate);
    collectSwitches(s);
    s.probeTarget = 0;
    s.probeWanted = false;
  }
  for (auto& [id, head] : tracks_) {
    if (head.group != id) continue;
    for (Subscription& sub : head.subscriptions) {
      auto it = subscribers_.find(sub.subscriber);
      if (it == subscribers_.end() || !it->second.selector) continue;
      Subscriber& s = it->second;
      // A layer the selector waits for starts at its keyframe: asked through that layer's throttle.
      if (const auto wanted = s.selector->keyframeWanted(id); wanted && *wanted < head.layers.size()) {
        if (Track* layer = findTrack(head.layers[*wanted])) {
          requestKeyframe(*layer, now, !s.selector->current(id).has_value());
        }
      }
      // Probing: what this track would take at the next spatial layer above its target, if the tile would show it
      // and the publisher sends it; else what it takes now.
      if (!s.estimator) continue;
      const auto target = s.selector->target(id);
      const auto info = selectorInfo(head, sub);
      const uint64_t current = target ? info.bitrate[target->spatial][target->temporal] : 0;
      const size_t next = target ? size_t(target->spatial) + 1 : 0;
      const bool higher =
          next < info.spatialLayers && info.bitrate[next][info.temporalLayers - 1] != 0 && sub.tileWidth != 0 &&
          sub.tileHeight != 0 &&
          !(target && info.height[target->spatial] != 0 && info.height[target->spatial] >= sub.tileHeight);
      if (higher) {
        s.probeWanted = true;
        s.probeTarget += uint64_t(double(info.bitrate[next][info.temporalLayers - 1]) * bwe::LayerSelector::kUpMargin);
      } else {
        s.probeTarget += current;
      }
    }
  }
  for (auto& [id, s] : subscribers_) {
    if (!s.probeWanted || !s.estimator) {
      s.probeTarget = 0;
      continue;
    }
    // Audio and every track at the layer it could go to, never above the estimate: padding shows the room, it does
    // not take more than the estimate says there is (which is at most 1.5 x what was acknowledged).
    s.probeTarget = std::min({s.audioRate + s.probeTarget, s.estimator->estimate(), kMaxProbeRate});
  }
}

void Router::probe(TransportId id, Subscriber& s, TimePoint now) {
  // Bytes owed since the window started, against what left: the deficit goes out as the latest packets again.
  const auto elapsed = std::chrono::duration_cast<std::chrono::microseconds>(now - meterStart_).count();
  double left = double(s.probeTarget) * double(elapsed) / 8e6 - double(s.sentBytes);
  size_t budget = kMaxProbePacketsPerTick;
  for (auto& [trackId, head] : tracks_) {
    if (head.group != trackId) continue;
    for (Subscription& sub : head.subscriptions) {
      if (sub.subscriber != id || !sub.started || !sub.sent) continue;
      for (uint16_t k = 0; k < Subscription::kSentRing && budget > 0 && left > 0; ++k) {
        const uint16_t seq = uint16_t(sub.lastSeq - k);
        if ((*sub.sent)[seq % Subscription::kSentRing].outSeq != seq) break;
        const size_t bytes = retransmit(head, sub, seq, true);
        left -= double(bytes);
        if (bytes > 0) --budget;
      }
    }
  }
  s.lastProbe = now;
}

size_t Router::retransmit(Track& head, Subscription& sub, uint16_t outSeq, bool probe) {
  const auto& entry = (*sub.sent)[outSeq % Subscription::kSentRing];
  Track* layer = entry.layer != 0 && entry.outSeq == outSeq ? findTrack(entry.layer) : nullptr;
  if (layer == nullptr || !layer->retransmission) return 0;
  const auto stored = layer->retransmission->find(entry.inSeq);
  const auto original = stored ? rtp::Packet::parse(*stored) : std::nullopt;
  if (!original || original->ssrc() != layer->ssrc) return 0;
  const std::span<uint8_t> scratch(scratch_.get(), SendQueue::kSlotSize);
  const auto length = rewrite(sub, *original, outSeq, original->timestamp() + entry.tsOffset, scratch);
  if (!length) return 0;
  if (layer->config.vp8) {
    if (const auto vp8 = rtp::parseVp8Layers(original->payload())) {
      const size_t offset = size_t(original->payload().data() - original->bytes().data());
      const auto payload = scratch.subspan(offset, original->payload().size());
      if (entry.pictureId) rtp::writeVp8PictureId(payload, *vp8, *entry.pictureId);
      if (entry.tl0PicIdx) rtp::writeVp8Tl0PicIdx(payload, *vp8, *entry.tl0PicIdx);
    }
  }
  return sendAgain(head, sub, *length, probe);
}

TimePoint Router::nextDeadline() const {
  if (keyframesDue_) return TimePoint::min();
  TimePoint next = mediaSeen_ ? nextReport_ : TimePoint::max();
  if (bweActive_) next = std::min(next, nextBweTick_);
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
    for (Subscription& sub : track.subscriptions) {
      // A simulcast subscription's timeline is the layer it forwards now.
      const Track& source = track.group == id ? forwardedTrack(track, sub) : track;
      // Without the publisher's SR there is no RTP time that kaiwa could say belongs to an NTP time: no SR yet.
      if (!source.mapping) continue;
      const auto elapsed = std::chrono::duration_cast<std::chrono::microseconds>(now - source.mapping->arrival).count();
      const auto sourceNow =
          source.mapping->rtpTimestamp + uint32_t(int64_t(elapsed) * int64_t(source.config.clockRate) / 1'000'000);
      // Sent nothing yet, or still forwarding from an older source whose offsets this mapping does not fit.
      if (!sub.started || sub.stats.packetsSent == 0 || sub.sourceSsrc != source.ssrc) continue;
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
    // Each layer's report puts it on the others' clock at a switch.
    if (Track* head = track->group != 0 ? findTrack(track->group) : nullptr) {
      for (Subscription& sub : head->subscriptions) {
        if (sub.simulcast) sub.simulcast->onSenderReport(track->spatial, sr->info.ntpTimestamp, sr->info.rtpTimestamp);
      }
    }
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
        if (auto [track, s] = lookup(pli->header.mediaSsrc); track != nullptr) {
          requestKeyframe(track->group == track->id ? forwardedTrack(*track, *s) : *track, now);
        }
      } else {
        ++counters_.badRtcp;
      }
    } else if (type == rtp::rtcp::PacketType::kPayloadFeedback && block->count == rtp::rtcp::kFmtFir) {
      if (auto fir = rtp::rtcp::Fir::parse(*block)) {
        for (size_t i = 0; i < fir->size(); ++i) {
          if (auto [track, s] = lookup((*fir)[i].ssrc); track != nullptr) {
            requestKeyframe(track->group == track->id ? forwardedTrack(*track, *s) : *track, now);
          }
        }
      } else {
        ++counters_.badRtcp;
      }
    } else if (type == rtp::rtcp::PacketType::kRtpFeedback && block->count == rtp::rtcp::kFmtTransportCc) {
      onTransportFeedback(subscriber, sub->second, *block, now);
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

void Router::onTransportFeedback(TransportId /*subscriber*/, Subscriber& s, const rtp::rtcp::Block& block,
                                 TimePoint now) {
  if (!s.estimator) return;  // it did not negotiate transport-cc: ignored
  const auto feedback = rtp::rtcp::TransportFeedback::parse(block);
  if (!feedback || !s.estimator->onFeedback(now, *feedback)) {
    ++counters_.badRtcp;
    return;
  }
  ++counters_.transportFeedbackIn;
}

void Router::answerNack(Track& track, Subscription& sub, std::span<const uint16_t> seqs) {
  if (!sub.started) {
    counters_.nackMissed += seqs.size();
    return;
  }
  if (sub.simulcast) {
    // The subscriber's numbers are the rewriter's: each maps back to the layer and number it was sent from.
    for (uint16_t outSeq : seqs) {
      if (retransmit(track, sub, outSeq, false) > 0) {
        ++counters_.nackRetransmitted;
      } else {
        ++counters_.nackMissed;
      }
    }
    return;
  }
  if (!track.retransmission) {
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
    if (sendAgain(track, sub, *length, false) > 0) ++counters_.nackRetransmitted;
  }
}

size_t Router::sendAgain(Track& track, Subscription& sub, size_t length, bool probe) {
  const std::span<uint8_t> scratch(scratch_.get(), SendQueue::kSlotSize);
  std::span<const uint8_t> packet = scratch.first(length);
  std::array<uint8_t, SendQueue::kMaxPacket> rtx{};
  if (sub.config.rtxSsrc != 0) {
    const auto rewritten = rtp::Packet::parse(packet);
    const auto rtxLength =
        rewritten ? rtp::writeRtx(*rewritten, sub.config.rtxSsrc, sub.config.rtxPayloadType, sub.rtxSeq, rtx)
                  : std::nullopt;
    if (!rtxLength) {
      ++counters_.tooLarge;
      return 0;
    }
    ++sub.rtxSeq;
    packet = std::span<const uint8_t>(rtx.data(), *rtxLength);
  }
  if (!enqueue(sub.subscriber, packet, track)) return 0;
  if (probe) {
    ++counters_.probePackets;
    counters_.probeBytes += packet.size();
  }
  return packet.size();
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

bool Router::setTileSize(TransportId subscriber, TrackId id, uint16_t width, uint16_t height) {
  Track* track = findTrack(id);
  auto it = subscribers_.find(subscriber);
  if (track == nullptr || it == subscribers_.end()) return false;
  for (Subscription& sub : track->subscriptions) {
    if (sub.subscriber != subscriber) continue;
    sub.tileWidth = width;
    sub.tileHeight = height;
    if (sub.simulcast && it->second.selector) it->second.selector->updateTrack(selectorInfo(*track, sub));
    return true;
  }
  return false;
}

std::optional<SubscriberBandwidth> Router::bandwidth(TransportId subscriber) const {
  auto it = subscribers_.find(subscriber);
  if (it == subscribers_.end()) return std::nullopt;
  const Subscriber& s = it->second;
  SubscriberBandwidth b;
  b.estimating = s.estimator != nullptr;
  b.estimate = s.estimator ? s.estimator->estimate() : 0;
  b.sentRate = s.sentRate;
  b.probeTarget = s.probeTarget;
  if (s.estimator) {
    b.delayBased = s.estimator->delayBased();
    b.lossBased = s.estimator->lossBased();
    b.ackedRate = s.estimator->ackedRate();
    b.stats = s.estimator->stats();
  }
  return b;
}

std::pair<size_t, uint64_t> Router::estimates() const {
  std::pair<size_t, uint64_t> out{0, 0};
  for (const auto& [id, s] : subscribers_) {
    if (!s.estimator) continue;
    ++out.first;
    out.second += s.estimator->estimate();
  }
  return out;
}

std::optional<bwe::Layer> Router::forwardedLayer(TransportId subscriber, TrackId track) const {
  auto it = subscribers_.find(subscriber);
  if (it == subscribers_.end() || !it->second.selector) return std::nullopt;
  return it->second.selector->current(track);
}

std::optional<uint32_t> Router::layerBitrate(TrackId id, uint8_t spatial, uint8_t temporal) const {
  auto it = tracks_.find(id);
  if (it == tracks_.end() || spatial >= it->second.layers.size() || temporal >= bwe::kMaxTemporalLayers)
    return std::nullopt;
  auto layer = tracks_.find(it->second.layers[spatial]);
  if (layer == tracks_.end()) return std::nullopt;
  return layer->second.rate[temporal];
}

size_t Router::lossySubscriptions(uint8_t fraction) const {
  size_t n = 0;
  for (const auto& [id, track] : tracks_) {
    for (const Subscription& s : track.subscriptions) n += s.stats.reported && s.stats.fractionLost >= fraction;
  }
  return n;
}

}  // namespace kaiwa::sfu

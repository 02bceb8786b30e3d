#include "bwe/layer_selector.hpp"

#include <algorithm>

namespace kaiwa::bwe {

namespace {

bool visible(const VideoTrackInfo& i) { return i.renderedWidth > 0 && i.renderedHeight > 0; }

}  // namespace

LayerSelector::Track* LayerSelector::find(uint32_t id) {
  for (auto& t : tracks_) {
    if (t.info.id == id) return &t;
  }
  return nullptr;
}

const LayerSelector::Track* LayerSelector::find(uint32_t id) const {
  for (const auto& t : tracks_) {
    if (t.info.id == id) return &t;
  }
  return nullptr;
}

bool LayerSelector::addTrack(const VideoTrackInfo& info) {
  if (tracks_.size() >= kMaxTracks || find(info.id)) return false;
  if (tracks_.capacity() == 0) {
    tracks_.reserve(kMaxTracks);
    order_.reserve(kMaxTracks);
  }
  Track t;
  t.info = info;
  t.info.spatialLayers = std::clamp<uint8_t>(info.spatialLayers, 1, kMaxSpatialLayers);
  t.info.temporalLayers = std::clamp<uint8_t>(info.temporalLayers, 1, kMaxTemporalLayers);
  tracks_.push_back(t);
  return true;
}

void LayerSelector::removeTrack(uint32_t id) {
  std::erase_if(tracks_, [id](const Track& t) { return t.info.id == id; });
}

bool LayerSelector::updateTrack(const VideoTrackInfo& info) {
  Track* t = find(info.id);
  if (!t) return false;
  t->info = info;
  t->info.spatialLayers = std::clamp<uint8_t>(info.spatialLayers, 1, kMaxSpatialLayers);
  t->info.temporalLayers = std::clamp<uint8_t>(info.temporalLayers, 1, kMaxTemporalLayers);
  return true;
}

std::optional<Layer> LayerSelector::target(uint32_t id) const {
  const Track* t = find(id);
  return t ? t->target : std::nullopt;
}

std::optional<Layer> LayerSelector::current(uint32_t id) const {
  const Track* t = find(id);
  return t ? t->current : std::nullopt;
}

std::optional<uint8_t> LayerSelector::keyframeWanted(uint32_t id) const {
  const Track* t = find(id);
  if (!t || !t->target) return std::nullopt;
  if (t->current && t->current->spatial == t->target->spatial) return std::nullopt;
  return t->target->spatial;
}

std::optional<Layer> LayerSelector::lowest(const Track& t) const {
  for (uint8_t s = 0; s < t.info.spatialLayers; ++s) {
    if (t.info.bitrate[s][0] > 0) return Layer{s, 0};
  }
  return std::nullopt;
}

uint8_t LayerSelector::spatialCap(const Track& t) const {
  uint8_t cap = 0;
  for (uint8_t s = 0; s < t.info.spatialLayers; ++s) {
    if (t.info.bitrate[s][0] == 0) continue;
    cap = s;
    // The first layer at least as tall as the tile is enough; a layer of unknown height does not stop the search.
    if (t.info.height[s] != 0 && t.info.height[s] >= t.info.renderedHeight) break;
  }
  return cap;
}

// The highest spatial layer whose full frame rate fits, else the lowest spatial layer with as many temporal layers
// as fit: temporal layers are given up only where the spatial layer cannot go lower. A layer above the current
// target needs kUpMargin to spare.
std::optional<Layer> LayerSelector::bestWithin(const Track& t, double budget) const {
  auto fits = [&](Layer l) {
    const uint32_t c = cost(t, l);
    if (c == 0) return false;
    const double need = t.target && *t.target < l ? double(c) * kUpMargin : double(c);
    return need <= budget;
  };
  const uint8_t top = uint8_t(t.info.temporalLayers - 1);
  const auto low = lowest(t);
  if (!low) return std::nullopt;
  for (int s = spatialCap(t); s >= low->spatial; --s) {
    const Layer l{uint8_t(s), top};
    if (fits(l)) return l;
  }
  for (int tl = top; tl >= 0; --tl) {
    const Layer l{low->spatial, uint8_t(tl)};
    if (fits(l)) return l;
  }
  return std::nullopt;
}

void LayerSelector::allocate(uint64_t estimate) {
  double budget = estimate > audio_ ? double(estimate - audio_) : 0.0;
  order_.clear();
  for (size_t i = 0; i < tracks_.size(); ++i) order_.push_back(i);
  auto before = [this](size_t a, size_t b) {
    const auto& x = tracks_[a].info;
    const auto& y = tracks_[b].info;
    if (x.priority != y.priority) return x.priority < y.priority;
    return uint32_t(x.renderedWidth) * x.renderedHeight > uint32_t(y.renderedWidth) * y.renderedHeight;
  };
  // An insertion sort: stable, and unlike std::stable_sort it needs no buffer (at most kMaxTracks entries).
  for (size_t i = 1; i < order_.size(); ++i) {
    const size_t v = order_[i];
    size_t j = i;
    for (; j > 0 && before(v, order_[j - 1]); --j) order_[j] = order_[j - 1];
    order_[j] = v;
  }
  // First every visible track's lowest layer, then each as high as the rest allows. A visible tile is never left
  // black for want of bandwidth (as libwebrtc's allocator enforces each video stream's minimum bitrate): where the
  // lowest layer does not fit, the lowest layer's base temporal layer is taken anyway, and the estimate, which may
  // be short only because nothing was sent to show the room (it never exceeds 1.5 x what was acknowledged), grows
  // on what it carries.
  for (size_t i : order_) {
    Track& t = tracks_[i];
    t.desired.reset();
    if (!visible(t.info)) continue;
    const auto low = lowest(t);
    if (!low) continue;
    t.desired = double(cost(t, *low)) <= budget ? *low : Layer{low->spatial, 0};
    budget = std::max(0.0, budget - double(cost(t, *t.desired)));
  }
  for (size_t i : order_) {
    Track& t = tracks_[i];
    if (!t.desired) continue;
    budget += double(cost(t, *t.desired));
    if (auto best = bestWithin(t, budget)) t.desired = best;  // (else the minimum given above)
    budget = std::max(0.0, budget - double(cost(t, *t.desired)));
  }
}

void LayerSelector::applyHysteresis(Track& t, TimePoint now, uint64_t estimate, uint64_t forwarded) {
  const auto& want = t.desired;
  auto settle = [&] {
    t.upSince.reset();
    t.downSince.reset();
  };
  // Starting, and stopping for a hidden tile, are not flapping: at once. A track the budget paused restarts like a
  // switch up, after the backoff and the hold, so that an estimate around its lowest layer does not flap it on and
  // off.
  if (!visible(t.info) || (!t.target && !t.lastDown)) {
    t.target = want;
    if (!visible(t.info)) t.lastDown.reset();
    settle();
    return;
  }
  if (!t.target && !want) {
    settle();
    return;
  }
  if (want == t.target) {
    settle();
    return;
  }
  const bool down = !want || (t.target && *want < *t.target);
  if (down) {
    t.upSince.reset();
    if (!t.downSince) t.downSince = now;
    const bool severe = double(estimate) < kSevere * double(forwarded);
    if (severe || now - *t.downSince >= kDownHold) {
      t.target = want;
      t.lastDown = now;
      settle();
    }
    return;
  }
  t.downSince.reset();
  if (t.lastDown && now - *t.lastDown < kUpBackoff) {
    t.upSince.reset();
    return;
  }
  if (!t.upSince) t.upSince = now;
  if (now - *t.upSince >= kUpHold) {
    t.target = want;
    settle();
  }
}

void LayerSelector::update(TimePoint now, uint64_t estimate) {
  uint64_t forwarded = audio_;
  for (const auto& t : tracks_) {
    if (t.target) forwarded += cost(t, *t.target);
  }
  allocate(estimate);
  for (auto& t : tracks_) applyHysteresis(t, now, estimate, forwarded);
}

LayerSelector::Verdict LayerSelector::onPacket(uint32_t id, uint8_t spatial, uint8_t temporal, bool frameStart,
                                               bool keyframe, bool layerSync) {
  Track* t = find(id);
  if (!t) return {};
  if (!t->target) {
    t->current.reset();
    return {};
  }
  const Layer target = *t->target;
  if (!t->current || t->current->spatial != target.spatial) {
    if (spatial == target.spatial && keyframe && frameStart) {
      if (t->current) ++stats_.keyframeWaits;
      t->current = target;
      ++stats_.switches;
      ++stats_.spatialSwitches;
      return {true, true};
    }
    if (!t->current || spatial != t->current->spatial) return {};
    // The old layer goes on until the new one's keyframe; on the way down only its base temporal layer, which
    // relieves the path at once.
    const uint8_t limit = target.spatial < t->current->spatial ? 0 : t->current->temporal;
    return {temporal <= limit, false};
  }
  if (spatial != t->current->spatial) return {};
  if (frameStart && target.temporal != t->current->temporal) {
    if (target.temporal < t->current->temporal || layerSync || keyframe) {
      t->current->temporal = target.temporal;
      ++stats_.switches;
    }
  }
  return {temporal <= t->current->temporal, false};
}

}  // namespace kaiwa::bwe

#include "sfu/room.hpp"

#include <algorithm>

namespace kaiwa::sfu {

std::optional<Source> parseSource(std::string_view text) {
  if (text == "camera") return Source::kCamera;
  if (text == "microphone") return Source::kMicrophone;
  if (text == "screen") return Source::kScreen;
  if (text == "screen-audio") return Source::kScreenAudio;
  return std::nullopt;
}

std::string_view toString(Source source) {
  switch (source) {
    case Source::kCamera:
      return "camera";
    case Source::kMicrophone:
      return "microphone";
    case Source::kScreen:
      return "screen";
    case Source::kScreenAudio:
      return "screen-audio";
  }
  return "camera";
}

std::string_view toString(MediaKind kind) { return kind == MediaKind::kAudio ? "audio" : "video"; }

Room::Member* Room::find(std::string_view peer) {
  auto it = std::find_if(members_.begin(), members_.end(), [&](const Member& m) { return m.peer == peer; });
  return it == members_.end() ? nullptr : &*it;
}

const Room::Member* Room::find(std::string_view peer) const { return const_cast<Room*>(this)->find(peer); }

Room::Member& Room::get(std::string_view peer) {
  if (Member* m = find(peer)) return *m;
  Member m;
  m.peer = std::string(peer);
  members_.push_back(std::move(m));
  return members_.back();
}

size_t Room::publishers() const {
  return size_t(std::count_if(members_.begin(), members_.end(), [](const Member& m) { return !m.tracks.empty(); }));
}

std::optional<PublishRefusal> Room::mayPublish(std::string_view peer, size_t tracks) const {
  if (tracks > limits_.tracksPerPublisher) return PublishRefusal::kTooManyTracks;
  const Member* m = find(peer);
  const bool publishing = m != nullptr && !m->tracks.empty();
  if (!publishing && tracks > 0 && publishers() >= limits_.publishersPerRoom) return PublishRefusal::kTooManyPublishers;
  return std::nullopt;
}

void Room::changedForOthers(std::string_view peer) {
  for (Member& m : members_) {
    if (m.peer != peer && m.receives) m.changed = true;
  }
}

void Room::setTracks(std::string_view peer, std::vector<PublishedTrack> tracks) {
  get(peer).tracks = std::move(tracks);
  changedForOthers(peer);
}

const std::vector<PublishedTrack>* Room::tracks(std::string_view peer) const {
  const Member* m = find(peer);
  return m ? &m->tracks : nullptr;
}

void Room::addSubscriber(std::string_view peer) {
  Member& m = get(peer);
  m.retiredUntil.reset();
  if (m.receives) return;
  m.receives = true;
  m.changed = true;
}

void Room::removeMember(std::string_view peer) {
  const Member* m = find(peer);
  if (m == nullptr) return;
  const bool published = !m->tracks.empty();
  std::erase_if(members_, [&](const Member& x) { return x.peer == peer; });
  if (published) changedForOthers(peer);
}

void Room::resetSubscriber(std::string_view peer) {
  Member* m = find(peer);
  if (m == nullptr) return;
  m->lines.clear();
  m->applied.clear();
  m->version = 0;
  m->outstanding = false;
  m->changed = m->receives;
}

std::optional<RestartRefusal> Room::restartSubscriber(std::string_view peer, TimePoint now) {
  Member* m = find(peer);
  if (m == nullptr || !m->receives) return RestartRefusal::kNotReceiving;
  if (m->lastRestart && now - *m->lastRestart < limits_.subscribeRestartInterval) return RestartRefusal::kTooSoon;
  m->lastRestart = now;
  resetSubscriber(peer);
  return std::nullopt;
}

void Room::retire(std::string_view peer, TimePoint now) {
  if (Member* m = find(peer); m != nullptr && !m->retiredUntil) m->retiredUntil = now + limits_.meshGrace;
}

bool Room::retiring(std::string_view peer) const {
  const Member* m = find(peer);
  return m != nullptr && m->retiredUntil.has_value();
}

std::vector<std::string> Room::retiredBy(TimePoint now) const {
  std::vector<std::string> out;
  for (const Member& m : members_) {
    if (m.retiredUntil && *m.retiredUntil <= now) out.push_back(m.peer);
  }
  return out;
}

uint32_t Room::newSsrc(const Member& m) {
  for (;;) {
    const uint32_t s = random_();
    if (s == 0) continue;
    const bool taken =
        std::any_of(m.lines.begin(), m.lines.end(), [s](const OfferLine& l) { return l.ssrc == s || l.rtxSsrc == s; });
    if (!taken) return s;
  }
}

bool Room::layOut(Member& m) {
  bool changed = false;
  // Lines whose track ended go inactive.
  for (OfferLine& line : m.lines) {
    if (!line.track) continue;
    const Member* publisher = find(line.peer);
    const bool alive =
        publisher != nullptr && std::any_of(publisher->tracks.begin(), publisher->tracks.end(),
                                            [&](const PublishedTrack& t) { return t.track == *line.track; });
    if (!alive) {
      line.track.reset();
      line.peer.clear();
      changed = true;
    }
  }
  // New tracks take an inactive line of their kind, else a new one (within the limit; past it a track is not
  // offered to this member).
  for (const Member& publisher : members_) {
    if (publisher.peer == m.peer) continue;
    for (const PublishedTrack& t : publisher.tracks) {
      const bool offered = std::any_of(m.lines.begin(), m.lines.end(),
                                       [&](const OfferLine& l) { return l.track && *l.track == t.track; });
      if (offered) continue;
      auto free = std::find_if(m.lines.begin(), m.lines.end(),
                               [&](const OfferLine& l) { return !l.track && l.kind == t.kind; });
      if (free == m.lines.end()) {
        if (m.lines.size() >= limits_.linesPerSubscriber) continue;
        OfferLine line;
        line.mid = std::to_string(m.lines.size());
        line.kind = t.kind;
        m.lines.push_back(std::move(line));
        m.applied.emplace_back();
        free = m.lines.end() - 1;
      }
      free->track = t.track;
      free->peer = publisher.peer;
      free->source = t.source;
      free->ssrc = newSsrc(m);
      free->rtxSsrc = 0;  // set below, after ssrc is part of the line, so the two differ
      free->rtxSsrc = newSsrc(m);
      changed = true;
    }
  }
  return changed;
}

std::vector<Offer> Room::takeOffers() {
  std::vector<Offer> offers;
  for (Member& m : members_) {
    if (!m.receives || !m.changed || m.outstanding || m.retiredUntil) continue;
    m.changed = false;
    if (!layOut(m)) continue;
    ++m.version;
    m.outstanding = true;
    offers.push_back(Offer{m.peer, m.version, m.lines});
  }
  return offers;
}

Room::AnswerResult Room::answer(std::string_view peer, uint64_t version) {
  Member* m = find(peer);
  if (m == nullptr || !m->receives) return {std::nullopt, AnswerRefusal::kUnknown};
  if (!m->outstanding || version != m->version) return {std::nullopt, AnswerRefusal::kStale};
  m->outstanding = false;
  AnswerChanges changes;
  for (size_t i = 0; i < m->lines.size(); ++i) {
    const OfferLine& line = m->lines[i];
    if (m->applied[i] == line.track) continue;
    if (m->applied[i]) changes.stop.push_back(*m->applied[i]);
    if (line.track) changes.start.push_back(line);
    m->applied[i] = line.track;
  }
  return {std::move(changes), AnswerRefusal::kStale};
}

const std::vector<OfferLine>& Room::lines(std::string_view peer) const {
  static const std::vector<OfferLine> kNone;
  const Member* m = find(peer);
  return m ? m->lines : kNone;
}

std::optional<uint64_t> Room::outstanding(std::string_view peer) const {
  const Member* m = find(peer);
  return m && m->outstanding ? std::optional<uint64_t>(m->version) : std::nullopt;
}

}  // namespace kaiwa::sfu

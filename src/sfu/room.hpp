#pragma once
// The protocol state of one SFU room in the native protocol, sans-I/O: which member publishes which tracks, and for
// each member who receives, the m-lines of kaiwa's offers to its subscribe connection — which track each carries,
// which are inactive and may be reused, the SSRCs kaiwa chose for them, the offer's version and whether it is
// outstanding. It touches no socket, no SDP text and no router: the caller (media::Service) turns its offers into
// SDP with sdp::offer and its answers' results into sfu::Router subscriptions.
//
// The rules (docs/protocol.md, "SFU rooms"):
// - Every member who receives gets every other member's tracks, never its own.
// - kaiwa never has two offers outstanding to one member: a change made while an offer waits for its answer goes into
//   the next offer, made after the answer arrived (takeOffers() leaves that member out until then).
// - An m-line whose track ended is offered `inactive` and reused by the next new track of the same kind, so a
//   subscriber's peer connection does not grow with every join and leave; new m-lines are appended only when no
//   inactive one of the kind is left.
// - An m-line starts carrying its new track when the answer to the offer that assigned it arrives (answer() says
//   which router subscriptions start and stop).
// - A member may ask for a new subscribe connection (subscribe-restart) at most once per subscribeRestartInterval.
// - A member the room no longer serves through the SFU (a switch to mesh) is *retired*: its transports are kept,
//   so media keeps flowing while its mesh connections come up, until the caller removes it (its `unpublish`) or
//   the deadline passes (retiredBy()); it gets no new offer meanwhile.
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.hpp"
#include "sfu/router.hpp"

namespace kaiwa::sfu {

enum class Source : uint8_t { kCamera, kMicrophone, kScreen, kScreenAudio };
std::optional<Source> parseSource(std::string_view text);
std::string_view toString(Source source);
std::string_view toString(MediaKind kind);

// Bounds of one room, with their defaults in one place (media::Limits carries them; the important ones have flags).
struct RoomLimits {
  size_t publishersPerRoom = 16;
  size_t tracksPerPublisher = 4;   // camera, microphone, screen, screen audio
  size_t linesPerSubscriber = 64;  // m-lines in one offer (sdp::Limits takes 64)
  // A page asks for a new subscribe connection when its old one failed; one every 2 s heals any real failure, and a
  // page that asks more often only makes kaiwa drop and rebuild transports for nothing.
  std::chrono::milliseconds subscribeRestartInterval{2000};
  // How long a member's SFU transports outlive a switch to mesh at most (its `unpublish` ends them sooner).
  std::chrono::milliseconds meshGrace{10000};
};

// A track a member publishes, as the router knows it.
struct PublishedTrack {
  Source source = Source::kCamera;
  MediaKind kind = MediaKind::kVideo;
  TrackId track = 0;
};

// One m-line of kaiwa's offer to a subscriber.
struct OfferLine {
  std::string mid;  // "0", "1", ... in order of creation
  MediaKind kind = MediaKind::kVideo;
  std::optional<TrackId> track;  // what it carries in this offer; nullopt: inactive
  std::string peer;              // the publisher of `track` (empty when inactive)
  Source source = Source::kCamera;
  uint32_t ssrc = 0;  // kaiwa's SSRCs on this line, chosen afresh at each assignment
  uint32_t rtxSsrc = 0;
};

struct Offer {
  std::string peer;  // the member it is for
  uint64_t version = 0;
  std::vector<OfferLine> lines;
};

enum class PublishRefusal : uint8_t { kTooManyPublishers, kTooManyTracks };

// What the router must change once a subscriber answered: lines whose track starts, and tracks that stop.
struct AnswerChanges {
  std::vector<OfferLine> start;
  std::vector<TrackId> stop;
};
enum class AnswerRefusal : uint8_t { kStale, kUnknown };
enum class RestartRefusal : uint8_t { kNotReceiving, kTooSoon };

class Room {
 public:
  // `random` gives kaiwa's SSRCs (nonzero values are used as they come, zero is skipped).
  Room(RoomLimits limits, std::function<uint32_t()> random) : limits_(limits), random_(std::move(random)) {}

  // Whether `peer` may publish `tracks` tracks (a publisher that publishes again is not counted twice).
  std::optional<PublishRefusal> mayPublish(std::string_view peer, size_t tracks) const;
  // The member's published tracks are now these (all of them: a track left out ended). Every other receiving member
  // gets an offer that says so.
  void setTracks(std::string_view peer, std::vector<PublishedTrack> tracks);
  const std::vector<PublishedTrack>* tracks(std::string_view peer) const;
  // The member receives: it gets the others' tracks from the next takeOffers() on.
  void addSubscriber(std::string_view peer);
  // The member is gone (left, or the room went back to mesh): its tracks end for everybody, it receives no more.
  void removeMember(std::string_view peer);
  // The member's subscribe connection ended (its transport died): it starts again from an empty offer, version 1.
  void resetSubscriber(std::string_view peer);
  // subscribe-restart: the member starts again from an empty offer, version 1 (resetSubscriber), unless it does
  // not receive or its last restart was less than subscribeRestartInterval before `now`.
  std::optional<RestartRefusal> restartSubscriber(std::string_view peer, TimePoint now);

  // The room went to mesh: the member's transports are kept until `now` + meshGrace at most; it gets no offer
  // meanwhile. addSubscriber() takes it back.
  void retire(std::string_view peer, TimePoint now);
  bool retiring(std::string_view peer) const;
  // The retired members whose grace is over at `now` (the caller removes them).
  std::vector<std::string> retiredBy(TimePoint now) const;

  // The offers to send now: one for each receiving member whose set of tracks changed and that has no offer
  // outstanding (and, for its first offer, has at least one track to receive). Each is outstanding from here on.
  std::vector<Offer> takeOffers();
  // The member answered the offer of `version`: the router changes to make, or a refusal (a version that is not the
  // outstanding one is stale and ignored).
  struct AnswerResult {
    std::optional<AnswerChanges> changes;
    AnswerRefusal refusal = AnswerRefusal::kStale;
  };
  AnswerResult answer(std::string_view peer, uint64_t version);
  // The lines of the newest offer to `peer` (empty if none).
  const std::vector<OfferLine>& lines(std::string_view peer) const;
  std::optional<uint64_t> outstanding(std::string_view peer) const;

  size_t publishers() const;
  bool empty() const { return members_.empty(); }

 private:
  struct Member {
    std::string peer;
    std::vector<PublishedTrack> tracks;
    bool receives = false;
    bool changed = false;      // its set of tracks to receive changed since its newest offer
    bool outstanding = false;  // an offer waits for its answer
    uint64_t version = 0;
    std::optional<TimePoint> retiredUntil;        // set while retired (the room went to mesh)
    std::optional<TimePoint> lastRestart;         // the last subscribe-restart granted
    std::vector<OfferLine> lines;                 // as in the newest offer
    std::vector<std::optional<TrackId>> applied;  // per line: what the router forwards on it (as last answered)
  };
  Member* find(std::string_view peer);
  const Member* find(std::string_view peer) const;
  Member& get(std::string_view peer);
  void changedForOthers(std::string_view peer);
  uint32_t newSsrc(const Member& m);
  // Lays out the member's lines for the tracks it should receive now; false if nothing changed.
  bool layOut(Member& m);

  RoomLimits limits_;
  std::function<uint32_t()> random_;
  std::vector<Member> members_;  // a few per room: a scan costs less than a map
};

}  // namespace kaiwa::sfu

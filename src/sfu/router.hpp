#pragma once
// Forwarding inside one room, sans-I/O: a publisher's tracks fan out to the subscribers of each track. The router
// takes unprotected RTP from publishers and RTCP from both (with `now`), and hands back what to send: RTP in a
// bounded send queue per subscriber that the I/O around it drains (RouterIo::onReady says when one is no longer
// empty), and RTCP through RouterIo::sendRtcp: keyframe requests, NACKs and Receiver Reports towards publishers,
// Sender Reports towards subscribers.
//
// Per subscription (one subscriber, one track), every forwarded packet is rewritten in its own copy: the SSRC the
// subscriber's SDP announced, sequence numbers and timestamps continuous from the subscriber's view (an offset per
// source, re-based when the source SSRC changes so the subscriber sees no jump back), payload types and header
// extension ids mapped to what the subscriber negotiated. A payload type the subscriber did not negotiate is
// dropped and counted.
//
// Keyframes: PLI or FIR from a subscriber, a new subscription and video lost in a send queue each ask the
// publisher for a keyframe through one rtp::KeyframeRequestThrottle per track (at most one per 500 ms; one asked
// inside the window is sent when it ends, at the time pendingAt() gives). A new subscription's request is urgent:
// it waits at most 100 ms after the last request sent, so a late joiner's first frame does not wait out another
// subscriber's window. NACK from a subscriber is answered
// from a per-track rtp::RetransmissionBuffer holding the publisher's packets as received: with RTX when the
// subscription has an RTX SSRC and payload type, else the original packet again.
//
// RTCP of its own on both legs (RFC 3550 section 6.4), sent from tick() every kReportInterval: towards each
// publisher a Receiver Report with one block per track (loss, jitter, LSR/DLSR from rtp::ReceiveStatistics) and an
// SDES CNAME; towards each subscription a Sender Report (NTP now, the RTP timestamp of that instant in the
// subscriber's timeline, packets and octets sent to it) and an SDES CNAME, once the publisher's own SR gave the
// mapping from its RTP clock to NTP. Subscribers' reports are kept per subscription (loss, jitter, round-trip time).
//
// Loss towards the SFU: a video track with `nack` negotiated has an rtp::NackGenerator; tick() sends the NACKs it
// says are due (with an RR and SDES first unless reduced-size RTCP was negotiated, RFC 5506), and a PLI when it
// gives up. The publisher's RTX packets (RFC 4588) are unwrapped into the original packet and handled as if it had
// come late: forwarded (once) if it fills a hole, and stored for the subscribers' NACKs.
//
// A subscriber never slows the publisher or the other subscribers: its queue holds at most queuePackets descriptors
// (allocated when it is added) of buffers from the worker's SendPool (send_queue.hpp). When its queue or the pool is
// full, its video goes first: a video packet is dropped, and an audio packet takes the place of the subscriber's
// newest queued video packet; audio is dropped only when none of its video is queued. Video may not take the pool's
// last sixteenth (kept for audio). Every drop is counted, and a subscription that lost video asks for a keyframe
// (through the throttle) at the first tick after its queue drained. Nothing on the packet path allocates; adding
// publishers, tracks and subscriptions does (control plane).
//
// Learning the publisher's SSRCs: a track configured with its SSRC (the offer's a=ssrc) is found by it; a track
// without (an offer with only a=mid, and a=rid for simulcast) is bound to the first SSRC whose packet carries its
// MID (and RID, if the track has one) in the header extensions named by PublisherConfig.
//
// Simulcast and bandwidth estimation (issue 15): addSimulcastTrack groups a publisher's RID streams of one m-line,
// lowest first, under the first layer's TrackId; a subscription to that id is a simulcast subscription. Each
// subscriber that negotiated transport-wide-cc (SubscriptionConfig::transportCcExtensionId) has a
// bwe::BandwidthEstimator: drain() stamps kaiwa's own transport-wide sequence numbers on every packet as it leaves
// and tells the estimator, and the subscriber's transport-cc feedback goes to it. Each subscriber with a simulcast
// subscription has a bwe::LayerSelector, fed with the estimate (or kNoEstimate without transport-cc), the layers'
// bitrates measured here on the publisher's streams (per spatial and VP8 temporal layer, over kMeterWindow), the
// tile sizes the subscriber reported (setTileSize) and priorities (a screen share, the active speaker). A
// sfu::SimulcastRewriter per simulcast subscription keeps the subscriber's stream continuous (it learns each layer's
// Sender Reports), and a ring of the numbers it gave answers the subscriber's NACKs from the right layer. A layer
// the selector waits for a keyframe of is asked for through its throttle. While a subscriber's selector could take
// a higher layer than it forwards, tick() pads its send rate up to that layer's bitrate (within the estimate) with
// retransmissions of what it last sent (RTX when negotiated), so that the estimate can show the room for it.
// A publisher that negotiated transport-wide-cc (PublisherConfig::transportCcExtensionId) gets transport-cc
// feedback (bwe::FeedbackGenerator) from tick(), every 100 ms.
//
// Active speaker: an audio track configured with the RFC 6464 audio level extension's id makes its publisher a
// speaker of the room's sfu::ActiveSpeaker, and each of its packets (not retransmissions) gives its level to it. The
// level is one byte read from the packet's parsed extensions (one-byte or two-byte form); an element of another
// length is ignored and counted. The caller ticks the detector (tickSpeakers) on a timer of its own, not per packet.
#include <array>
#include <bitset>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "bwe/estimator.hpp"
#include "bwe/feedback_generator.hpp"
#include "bwe/layer_selector.hpp"
#include "common/clock.hpp"
#include "rtp/keyframe_throttle.hpp"
#include "rtp/nack_generator.hpp"
#include "rtp/packet.hpp"
#include "rtp/receive_statistics.hpp"
#include "rtp/retransmission_buffer.hpp"
#include "rtp/rtcp.hpp"
#include "rtp/vp8_layers.hpp"
#include "sfu/active_speaker.hpp"
#include "sfu/send_queue.hpp"
#include "sfu/simulcast_rewriter.hpp"

namespace kaiwa::sfu {

// The caller's id of a transport (a publisher or a subscriber); anything that crosses workers carries it.
using TransportId = uint32_t;
// A published track, as the router numbers them.
using TrackId = uint32_t;

enum class MediaKind : uint8_t { kAudio, kVideo };

// Payload type translation for one subscription: the publisher's type to the subscriber's. Unmapped by default
// (dropped): only what the subscriber's SDP negotiated is sent to it.
class PayloadTypeMap {
 public:
  PayloadTypeMap() { to_.fill(kNone); }
  void set(uint8_t from, uint8_t to) { to_[from & 0x7F] = uint8_t(to & 0x7F); }
  std::optional<uint8_t> operator[](uint8_t from) const {
    const uint8_t to = to_[from & 0x7F];
    return to == kNone ? std::nullopt : std::optional<uint8_t>(to);
  }

 private:
  static constexpr uint8_t kNone = 0xFF;
  std::array<uint8_t, 128> to_;
};

// What the router asks of the I/O around it. Called from inside the router's methods: they must not add or remove
// publishers, tracks, subscribers or subscriptions (post that for later).
class RouterIo {
 public:
  virtual ~RouterIo() = default;
  // The subscriber's queue was empty and now holds a packet: drain it (e.g. at the end of the receive batch).
  virtual void onReady(TransportId subscriber) = 0;
  // An RTCP packet for a publisher (PLI, NACK, RR) or a subscriber (SR), unprotected: the I/O protects it with that
  // transport's own SRTCP context. The buffer is valid during the call only.
  virtual void sendRtcp(TransportId to, std::span<const uint8_t> packet) = 0;
};

// A tap on published tracks (recording): the packets of each tapped track, after RTX is unwrapped, as the router takes
// them. Called on the router's thread from inside its methods, with the rules of RouterIo; the packet is valid during
// the call only.
class RouterTap {
 public:
  virtual ~RouterTap() = default;
  // A packet of the track's media stream (a retransmission that filled a hole too: the tap may see it late).
  virtual void onTrackRtp(TrackId track, const rtp::Packet& packet, TimePoint now) = 0;
  // The track ended (its publisher stopped it or left): no more packets come.
  virtual void onTrackEnded(TrackId track) = 0;
};

struct PublisherConfig {
  uint8_t midExtensionId = 0;  // the offer's extmap id of urn:ietf:params:rtp-hdrext:sdes:mid; 0 if none
  uint8_t ridExtensionId = 0;  // rtp-stream-id; 0 if none
  uint32_t feedbackSsrc = 1;   // the sender SSRC of kaiwa's RTCP feedback to this publisher
  bool reducedSize = false;    // a=rtcp-rsize was negotiated: feedback may go without an RR and SDES (RFC 5506)
  // The extmap id of transport-wide-cc-01 in kaiwa's answer: kaiwa sends the publisher transport-cc feedback. 0: none.
  uint8_t transportCcExtensionId = 0;
};

struct TrackConfig {
  MediaKind kind = MediaKind::kVideo;
  std::string mid{};
  std::string rid{};     // empty unless simulcast
  uint32_t ssrc = 0;     // from the offer's a=ssrc; 0 to learn it from MID/RID
  uint32_t rtxSsrc = 0;  // the publisher's RTX SSRC (its packets are not forwarded); 0 if none
  uint32_t clockRate = 90000;
  // The media payload types of the track: an SSRC is learned by MID/RID only from a packet of one of these (the
  // RTX stream carries the same MID). Empty: any.
  std::bitset<128> payloadTypes{};
  rtp::RetransmissionConfig retransmission{};  // sized per kind by the caller; {0, 0} for none
  bool nack = false;                           // generic NACK negotiated: the SFU asks for what it lost (video only)
  PayloadTypeMap rtxPayloadTypes{};            // the publisher's RTX payload types to their apt (RFC 4588)
  // The extmap id of ssrc-audio-level (RFC 6464) on an audio track whose levels pick the active speaker; 0: none.
  uint8_t audioLevelExtensionId = 0;
  bool vp8 = false;          // the codec is VP8: simulcast layers are switched at its keyframes, temporal layers read
  bool screenShare = false;  // first in a subscriber's layer selection
};

struct SubscriptionConfig {
  uint32_t ssrc = 0;              // what the subscriber's SDP announced for this track
  uint32_t rtxSsrc = 0;           // 0 if RTX was not negotiated
  uint8_t rtxPayloadType = 0;     // the subscriber's RTX payload type for the forwarded codec
  PayloadTypeMap payloadTypes{};  // the publisher's types to the subscriber's
  rtp::ExtensionIdMap extensions{};
  uint16_t initialSequence = 0;  // the first sequence number the subscriber sees (random, RFC 3550)
  uint32_t initialTimestamp = 0;
  // The subscriber's extmap id of transport-wide-cc-01 (`extensions` maps the publisher's id to it): kaiwa writes its
  // own transport-wide numbers there and estimates the subscriber's bandwidth from its feedback. 0: none.
  uint8_t transportCcExtensionId = 0;
};

struct SubscriberConfig {
  // Descriptors of 8 bytes each; the queue is drained after every receive round (at most 32 packets in).
  size_t queuePackets = 256;
  std::string cname = "kaiwa";  // the CNAME of the SSRCs the subscriber's SDP announced, for the SRs' SDES
};

// What kaiwa sent to a subscriber on one track, and what the subscriber's last Receiver Report said about it.
struct SubscriptionStats {
  uint64_t packetsSent = 0;  // on the subscription's SSRC (RTX retransmissions not included)
  uint64_t octetsSent = 0;   // payload octets of those, as an SR counts them
  bool reported = false;     // a report block about the subscription's SSRC has arrived
  uint8_t fractionLost = 0;  // out of 256
  int32_t cumulativeLost = 0;
  uint32_t jitter = 0;          // in RTP timestamp units
  std::optional<Millis> rtt{};  // from LSR/DLSR; nullopt until a block echoes an SR
};

// What the router dropped or did, for /metrics.
struct RouterCounters {
  uint64_t rtpIn = 0;                  // packets from publishers
  uint64_t forwarded = 0;              // copies queued for subscribers
  uint64_t badRtp = 0;                 // packets that do not parse
  uint64_t unknownSsrc = 0;            // from an SSRC no track has (nor could learn by MID/RID)
  uint64_t publisherRtx = 0;           // publisher RTX not forwarded: padding probes, duplicates, no known apt
  uint64_t unmappedPayloadType = 0;    // a payload type the subscriber did not negotiate
  uint64_t unmappedExtension = 0;      // an extension id that does not fit the packet's form after mapping
  uint64_t tooLarge = 0;               // a packet bigger than a queue slot
  uint64_t queueFull = 0;              // video dropped for a full queue or pool (or given up for audio)
  uint64_t audioDropped = 0;           // audio dropped for a full queue or pool that held none of its video
  uint64_t badRtcp = 0;                // RTCP (from subscribers or publishers) that does not walk or parse
  uint64_t unknownFeedbackSsrc = 0;    // feedback for an SSRC the subscriber was not given
  uint64_t keyframeRequestsIn = 0;     // PLI/FIR from subscribers, new subscriptions and overflows
  uint64_t keyframeRequestsSent = 0;   // PLIs sent to publishers
  uint64_t nackRetransmitted = 0;      // packets sent again for a NACK
  uint64_t nackMissed = 0;             // NACKed packets no longer held
  uint64_t nacksSent = 0;              // NACK packets sent to publishers
  uint64_t nackRequested = 0;          // sequence numbers asked for in them, retries included
  uint64_t rtxUnwrapped = 0;           // the publishers' RTX packets turned back into the original
  uint64_t rtxRecovered = 0;           // of those, the ones that filled a hole and were forwarded
  uint64_t senderReportsSent = 0;      // to subscribers
  uint64_t receiverReportsSent = 0;    // to publishers
  uint64_t receiverReportsIn = 0;      // report blocks from subscribers about what kaiwa sent them
  uint64_t audioLevels = 0;            // audio levels given to the active speaker detector
  uint64_t badAudioLevel = 0;          // audio level elements of the wrong length (ignored)
  uint64_t layerSwitches = 0;          // changes of a simulcast subscription's forwarded layer (spatial or temporal)
  uint64_t transportFeedbackIn = 0;    // transport-cc messages from subscribers given to their estimators
  uint64_t transportFeedbackSent = 0;  // transport-cc messages sent to publishers
  uint64_t probePackets = 0;           // retransmissions sent as padding, so that an estimate can grow
  uint64_t probeBytes = 0;
  uint64_t simulcastLate = 0;  // simulcast packets refused by the rewriter (older than a dropped one)
};

// What one subscriber's bandwidth estimate and layer selection say now (for /metrics and tests).
struct SubscriberBandwidth {
  bool estimating = false;   // the subscriber negotiated transport-cc
  uint64_t estimate = 0;     // bits per second
  uint64_t sentRate = 0;     // what was sent to it over the last meter window, padding included
  uint64_t probeTarget = 0;  // the rate padding fills up to now; 0: not probing
  uint64_t delayBased = 0;   // the estimator's two parts
  uint64_t lossBased = 0;
  std::optional<uint64_t> ackedRate;
  bwe::BandwidthEstimator::Stats stats{};
};

class Router {
 public:
  // Outgoing packets wait in buffers of `pool`, which the caller shares between its routers and keeps alive longer
  // than them.
  Router(RouterIo& io, SendPool& pool);
  // With a pool of the router's own (tests, tools).
  explicit Router(RouterIo& io);
  Router(const Router&) = delete;
  Router& operator=(const Router&) = delete;

  void addPublisher(TransportId publisher, PublisherConfig config);
  // The simulcast streams of one m-line, lowest layer first (at most SimulcastRewriter::kMaxLayers, each with its
  // RID): one track each; the first one's id names the group (subscribe, removeTrack, setTileSize). nullopt if the
  // publisher is unknown or a layer cannot be added.
  std::optional<TrackId> addSimulcastTrack(TransportId publisher, std::span<const TrackConfig> layers);
  // A track of a publisher already added; nullopt if the publisher is unknown or its SSRC is already taken.
  std::optional<TrackId> addTrack(TransportId publisher, TrackConfig config);
  void addSubscriber(TransportId subscriber, SubscriberConfig config = {});
  // Starts forwarding `track` to `subscriber` and asks the publisher for a keyframe. False if either is unknown, the
  // subscriber already has the track, or the SSRC is 0 or already used by that subscriber.
  bool subscribe(TransportId subscriber, TrackId track, const SubscriptionConfig& config, TimePoint now);
  // Moves a subscriber's subscription from one track to another of the same kind (a new publisher takes over the
  // room): its SSRC, sequence numbers and timestamps go on where they were, and the new publisher is asked for a
  // keyframe. False if there is no such subscription or the kinds differ.
  bool switchTrack(TransportId subscriber, TrackId from, TrackId to, TimePoint now);
  // A transport ended: its tracks (with their subscriptions) or its subscriptions go.
  void removeTransport(TransportId id);
  // One track ends (its publisher stopped it and keeps publishing others), with its subscriptions.
  void removeTrack(TrackId track);
  // A subscriber stops receiving one track (the m-line it came on went inactive or carries another track now).
  // False if there was no such subscription.
  bool unsubscribe(TransportId subscriber, TrackId track);

  // An unprotected RTP packet from a publisher; rewritten copies are queued for the subscribers.
  void onPublisherRtp(TransportId publisher, std::span<const uint8_t> packet, TimePoint now);
  // An unprotected RTCP packet from a subscriber: PLI, FIR and NACK are acted on, report blocks about what it was
  // sent are kept (subscriptionStats); the rest is ignored.
  void onSubscriberRtcp(TransportId subscriber, std::span<const uint8_t> packet, TimePoint now);
  // An unprotected RTCP packet from a publisher: its Sender Reports (for LSR/DLSR and the RTP-to-NTP mapping of the
  // SRs to subscribers); the rest is ignored.
  void onPublisherRtcp(TransportId publisher, std::span<const uint8_t> packet, TimePoint now);
  // Sends the keyframe requests the throttles held back, the NACKs that are due and, every kReportInterval, the
  // Receiver and Sender Reports.
  void tick(TimePoint now);
  // When tick() has something to do: TimePoint::min() when a drained queue's keyframe request waits for it,
  // TimePoint::max() when nothing is held back or due and no media arrived yet.
  TimePoint nextDeadline() const;

  // RTCP reports go out this often. RFC 3550 section 6.2 randomizes the interval to keep many senders from
  // synchronizing; a room has one SFU sending to each transport, so a fixed interval is used.
  static constexpr Millis kReportInterval{1000};
  // The SRs' NTP timestamps are the steady clock plus the Unix time of its epoch, read once at construction; tests
  // set it to make NTP values exact.
  void setUnixTimeOfClockEpoch(std::chrono::nanoseconds offset) { unixAtEpoch_ = offset; }

  // The tap that tapped tracks go to (nullptr: none); it outlives its use here, or is unset first.
  void setTap(RouterTap* tap) { tap_ = tap; }
  // Starts or stops handing a track's packets to the tap. False if the track is unknown.
  bool tapTrack(TrackId track, bool on);
  // Asks the track's publisher for a keyframe through the track's throttle (recording's start, and its losses);
  // `urgent` as for a new subscription. False if the track is unknown.
  bool requestKeyframe(TrackId track, TimePoint now, bool urgent = false);

  // The subscriber's queued packets, oldest first (see SendQueue::drain); 0 for an unknown subscriber. A subscription
  // that lost video while it was queued asks for a keyframe at the next tick.
  template <class F>
  size_t drain(TransportId subscriber, F&& f) {
    auto it = subscribers_.find(subscriber);
    if (it == subscribers_.end()) return 0;
    const size_t n = it->second.queue.drain(f);
    if (it->second.videoDropped) onDrainedAfterDrop(subscriber, it->second);
    return n;
  }
  size_t queued(TransportId subscriber) const;
  // As drain, and every packet leaving gets the subscriber's next transport-wide sequence number (when it negotiated
  // transport-cc and the packet carries the extension), which its estimator records as sent at `now`.
  template <class F>
  size_t drain(TransportId subscriber, TimePoint now, F&& f) {
    auto it = subscribers_.find(subscriber);
    if (it == subscribers_.end()) return 0;
    Subscriber& s = it->second;
    const size_t n = s.queue.drain([&](std::span<uint8_t> slot, size_t length) {
      if (s.estimator) stampTransportSequence(s, slot.first(length), now);
      f(slot, length);
    });
    if (s.videoDropped) onDrainedAfterDrop(subscriber, s);
    return n;
  }

  // The subscriber's rendered size of a track's tile (0 x 0: hidden); a simulcast track's layer follows it. False if
  // there is no such subscription.
  bool setTileSize(TransportId subscriber, TrackId track, uint16_t width, uint16_t height);
  std::optional<SubscriberBandwidth> bandwidth(TransportId subscriber) const;
  // Subscribers with an estimate, and the sum of their estimates (bits per second).
  std::pair<size_t, uint64_t> estimates() const;
  // The spatial and temporal layer a simulcast subscription forwards now; nullopt if none (yet) or not simulcast.
  std::optional<bwe::Layer> forwardedLayer(TransportId subscriber, TrackId track) const;
  // A simulcast track's measured bitrate of a layer (spatial, temporal layers 0..t), bits per second.
  std::optional<uint32_t> layerBitrate(TrackId track, uint8_t spatial, uint8_t temporal) const;

  // The estimate a subscriber without transport-cc is given: its layers follow only its tiles.
  static constexpr uint64_t kNoEstimate = 10'000'000;
  // The layers' bitrates are measured over this window (and the selector's tracks updated at its end).
  static constexpr Millis kMeterWindow{500};
  // Padding: at most this many retransmissions per subscriber per tick, and never above this rate.
  static constexpr size_t kMaxProbePacketsPerTick = 16;
  static constexpr uint64_t kMaxProbeRate = 3'000'000;

  // The active speaker detector's tick (call every ActiveSpeaker::Config::interval): the publisher that became the
  // dominant speaker, or nullopt when it did not change.
  std::optional<TransportId> tickSpeakers(TimePoint now) { return speakers_.tick(now); }
  std::optional<TransportId> activeSpeaker() const { return speakers_.dominant(); }
  const ActiveSpeaker& speakers() const { return speakers_; }

  const RouterCounters& counters() const { return counters_; }
  // A track's keyframe throttle statistics (nullopt if unknown).
  std::optional<rtp::KeyframeRequestThrottle::Stats> keyframeStats(TrackId track) const;
  // A subscription's counts and the subscriber's last report about it; nullopt if there is no such subscription.
  std::optional<SubscriptionStats> subscriptionStats(TransportId subscriber, TrackId track) const;
  // The report block the next Receiver Report would carry for a track, without starting a new interval.
  std::optional<rtp::rtcp::ReportBlock> receiveStats(TrackId track, TimePoint now) const;
  // Subscriptions whose last report says at least `fraction` (out of 256) of the last interval's packets were lost.
  size_t lossySubscriptions(uint8_t fraction) const;

 private:
  struct Subscription {
    TransportId subscriber;
    SubscriptionConfig config;
    bool started = false;
    uint32_t sourceSsrc = 0;  // the publisher SSRC the offsets were computed for
    uint16_t seqOffset = 0;   // out = in + offset
    uint32_t tsOffset = 0;
    uint16_t lastSeq = 0;  // the newest sequence number sent
    uint32_t lastTs = 0;
    TimePoint lastSent{};
    uint16_t rtxSeq = 0;
    bool videoDropped = false;  // lost video in the queue: a keyframe is due once it drained
    bool keyframeDue = false;   // drained since: tick() asks
    SubscriptionStats stats{};
    // A simulcast subscription: its rewriter, and what each recent outgoing number was (for NACKs and padding).
    std::unique_ptr<SimulcastRewriter> simulcast{};
    struct Sent {
      TrackId layer = 0;  // 0: nothing sent with this number (yet)
      uint16_t outSeq = 0;
      uint16_t inSeq = 0;
      uint32_t tsOffset = 0;
      std::optional<uint16_t> pictureId;
      std::optional<uint8_t> tl0PicIdx;
    };
    static constexpr size_t kSentRing = 512;
    std::unique_ptr<std::array<Sent, kSentRing>> sent{};
    uint16_t tileWidth = 0xFFFF;  // until the subscriber reports its tile: as large as any layer
    uint16_t tileHeight = 0xFFFF;
  };
  // The publisher's last Sender Report of a track: its RTP timestamp at an NTP time, and when it arrived.
  struct SenderMapping {
    uint32_t rtpTimestamp = 0;
    TimePoint arrival{};
  };
  struct Track {
    TrackId id = 0;
    TransportId publisher;
    TrackConfig config;
    uint32_t ssrc = 0;  // bound SSRC (config.ssrc or learned)
    rtp::KeyframeRequestThrottle throttle;
    std::unique_ptr<rtp::RetransmissionBuffer> retransmission;
    std::vector<Subscription> subscriptions;
    rtp::ReceiveStatistics received;
    std::unique_ptr<rtp::NackGenerator> nack;  // video tracks with NACK negotiated
    std::optional<SenderMapping> mapping;      // from the publisher's last SR
    bool tapped = false;                       // its packets go to tap_ too
    // Simulcast: the group's first layer (itself for that one; 0: not simulcast), this track's spatial layer, and on
    // the first layer the group's layers, lowest first. Subscriptions are kept on the first layer.
    TrackId group = 0;
    uint8_t spatial = 0;
    std::vector<TrackId> layers;
    // The bitrate meter: bytes per temporal layer since windowStart, and the last window's cumulative rates.
    std::array<uint64_t, bwe::kMaxTemporalLayers> meterBytes{};
    std::array<uint32_t, bwe::kMaxTemporalLayers> rate{};
    uint8_t temporalLayers = 1;
    uint16_t height = 0;  // from its last VP8 keyframe
  };
  struct Publisher {
    PublisherConfig config;
    std::vector<TrackId> tracks;
    std::unique_ptr<bwe::FeedbackGenerator> feedback{};  // transport-cc towards it, if negotiated
  };
  struct Subscriber {
    SendQueue queue;
    std::string cname;
    bool videoDropped = false;  // some subscription of it lost video since the last drain
    // The subscriber's SSRC (and RTX SSRC) to the track, for its feedback.
    std::unordered_map<uint32_t, TrackId> bySsrc;
    // Transport-cc: the extension id, the next number, the estimator (made at the first subscription that has it).
    uint8_t transportCcId = 0;
    uint16_t transportSequence = 0;
    std::unique_ptr<bwe::BandwidthEstimator> estimator{};
    std::unique_ptr<bwe::LayerSelector> selector{};  // made at the first simulcast subscription
    uint64_t switchesCounted = 0;                    // of selector->stats().switches, added to layerSwitches
    uint64_t sentBytes = 0;                          // in the current meter window
    uint64_t sentRate = 0;                           // the last window's
    uint64_t audioRate = 0;                          // its audio subscriptions' bitrate, the last window's
    uint64_t probeTarget = 0;                        // padding fills the send rate up to this; 0: none
    bool probeWanted = false;                        // some simulcast track could go higher
    double probeCredit = 0;                          // bytes of padding owed
    TimePoint lastProbe{};
  };

  // What a video packet says of its layers (VP8 only; otherwise one temporal layer and no keyframe known).
  struct PacketLayers {
    std::optional<rtp::Vp8Layers> vp8;
    bool keyframe = false;
  };
  Router(RouterIo& io, SendPool* pool);
  PacketLayers readLayers(Track& track, const rtp::Packet& packet);
  void stampTransportSequence(Subscriber& s, std::span<uint8_t> packet, TimePoint now);
  void forwardSimulcast(Track& head, Track& layer, Subscription& sub, const rtp::Packet& packet,
                        const PacketLayers& layers, TimePoint now);
  // The layer track a simulcast subscription forwards now (the head itself before anything was forwarded).
  Track& forwardedTrack(Track& head, const Subscription& sub);
  void forgetSubscription(TransportId subscriber, const Subscription& sub, TrackId track);
  void rollMeters(TimePoint now);
  void updateSelectors(TimePoint now);
  bwe::VideoTrackInfo selectorInfo(const Track& head, const Subscription& sub) const;
  void probe(TransportId id, Subscriber& s, TimePoint now);
  void collectSwitches(Subscriber& s);
  // Sends one packet of a subscription again (RTX if negotiated): `outSeq` as the subscriber numbered it. False when
  // it is no longer held.
  // Returns the bytes queued (0: not held, or dropped).
  size_t retransmit(Track& head, Subscription& sub, uint16_t outSeq, bool probe);
  // Queues the rewritten packet in scratch_ again, in RTX if the subscription has it; the bytes queued or 0.
  size_t sendAgain(Track& track, Subscription& sub, size_t length, bool probe);
  void onTransportFeedback(TransportId subscriber, Subscriber& s, const rtp::rtcp::Block& block, TimePoint now);
  void sendTransportFeedback(TimePoint now);
  Track* findTrack(TrackId id);
  Track* learnSsrc(TransportId id, const Publisher& publisher, const rtp::Packet& packet);
  void forward(Track& track, Subscription& sub, const rtp::Packet& packet, TimePoint now);
  // Queues bytes for a subscriber; false (counted) when its queue is full.
  bool enqueue(TransportId subscriber, std::span<const uint8_t> bytes, const Track& track);
  // A pool buffer for the subscriber's next packet by the overflow policy (video first), or SendPool::kNone (counted).
  uint16_t acquire(TransportId id, Subscriber& subscriber, const Track& track, TrackId trackId);
  void markVideoDropped(TransportId subscriber, Subscriber& s, TrackId track);
  void onDrainedAfterDrop(TransportId id, Subscriber& s);
  // Writes the rewritten packet into `out`; its length or nullopt (counted) if it must be dropped.
  std::optional<size_t> rewrite(const Subscription& sub, const rtp::Packet& packet, uint16_t seq, uint32_t ts,
                                std::span<uint8_t> out);
  // Urgent: a new subscription's, which the throttle holds back only briefly (rtp::KeyframeRequestThrottle).
  void requestKeyframe(Track& track, TimePoint now, bool urgent = false);
  void sendPli(const Track& track);
  void answerNack(Track& track, Subscription& sub, std::span<const uint16_t> seqs);
  // A packet of a track's media stream, from the wire or unwrapped from RTX: statistics, NACK state, the
  // retransmission buffer and the subscribers.
  void onTrackPacket(Track& track, const rtp::Packet& packet, TimePoint now, bool retransmitted);
  void onPublisherRtx(Track& track, const rtp::Packet& rtx, TimePoint now);
  void sendNacks(Track& track, TimePoint now);
  void sendReports(TimePoint now);
  void onReportBlock(TransportId subscriber, const rtp::rtcp::ReportBlock& block, TimePoint now);
  void onAudioLevel(const Track& track, const rtp::Packet& packet);
  // A publisher stops being a speaker when it has no audio track with levels left.
  void dropSpeakerIfSilent(TransportId publisher);

  // The track is gone from tracks_: the tap hears of it if it was tapped.
  void trackEnded(TrackId id, bool tapped);

  RouterIo* io_;
  RouterTap* tap_ = nullptr;
  std::unique_ptr<SendPool> ownPool_;  // declared before the subscribers: their queues give buffers back to it
  SendPool* pool_;
  bool keyframesDue_ = false;  // some subscription's keyframeDue is set
  std::unique_ptr<uint8_t[]> scratch_ = std::make_unique<uint8_t[]>(SendQueue::kSlotSize);    // for RTX
  std::unique_ptr<uint8_t[]> unwrapped_ = std::make_unique<uint8_t[]>(SendQueue::kSlotSize);  // a publisher's RTX
  std::chrono::nanoseconds unixAtEpoch_;
  TimePoint nextReport_{};
  bool mediaSeen_ = false;  // reports are due only once some media arrived
  std::unordered_map<TransportId, Publisher> publishers_;
  std::unordered_map<TransportId, Subscriber> subscribers_;
  std::unordered_map<TrackId, Track> tracks_;
  // The publishers' bound SSRCs, keyed by publisher << 32 | SSRC (two publishers may pick the same SSRC).
  std::unordered_map<uint64_t, TrackId> bySsrc_;
  TrackId nextTrack_ = 1;
  TimePoint meterStart_{};
  bool metering_ = false;
  TimePoint nextBweTick_{};
  bool bweActive_ = false;  // some subscriber estimates or selects, or some publisher gets feedback: tick every 20 ms
  static constexpr Millis kBweTick{20};
  ActiveSpeaker speakers_;  // speakers named by their publisher's TransportId
  RouterCounters counters_;
};

}  // namespace kaiwa::sfu

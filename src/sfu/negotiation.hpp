#pragma once
// From SDP to forwarding: what sfu::Router needs to know about a WHIP publisher's tracks (from kaiwa's answer to its
// offer, which keeps the offer's payload types and extension ids, and the offer's a=ssrc lines), and what a viewer's
// subscription rewrites (from kaiwa's answer to the viewer's offer: the viewer's payload types for the same codecs,
// its extension ids for the same URIs). Sans-I/O: functions of their arguments.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "sdp/answer.hpp"
#include "sdp/description.hpp"
#include "sfu/router.hpp"

namespace kaiwa::sfu {

// The router's view of a publisher from its offer and kaiwa's answer: the extension ids it routes by and one track
// per accepted audio or video m-line (one per RID when the m-line is simulcast). Only m-lines kaiwa receives on.
struct PublishedMedia {
  PublisherConfig publisher;
  std::vector<TrackConfig> tracks;
};
PublishedMedia publishedMedia(const sdp::Description& offer, const sdp::Description& answer);

// The m-line of kaiwa's answer a track came from (for a viewer: the codecs and extension ids it was published with).
const sdp::Media* publishedSection(const sdp::Description& answer, const TrackConfig& track);

// What kaiwa sends on a viewer's m-line: the SSRCs (chosen by the caller, random) and names for ServerParams::senders.
sdp::OutgoingTrack outgoingTrack(const sdp::Media& viewerOffer, uint32_t ssrc, uint32_t rtxSsrc, std::string cname,
                                 std::string streamId);

// The rewrites of one subscription: `published` is the m-line of kaiwa's answer to the publisher, `viewer` the m-line
// of kaiwa's answer to the viewer. Each publisher codec maps to the viewer's payload type of the same codec (name,
// clock rate, channels; H.264 also profile and packetization mode), extension ids by URI (the rest dropped), and RTX
// to the viewer's RTX type for the first mapped codec; transport-cc is mapped too, and named in
// transportCcExtensionId (the router writes the viewer's own numbers into it). nullopt if no codec is common.
std::optional<SubscriptionConfig> subscriptionConfig(const sdp::Media& published, const sdp::Media& viewer,
                                                     uint32_t ssrc, uint32_t rtxSsrc);

}  // namespace kaiwa::sfu

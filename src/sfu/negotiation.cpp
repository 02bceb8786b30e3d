#include "sfu/negotiation.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <string_view>
#include <tuple>

namespace kaiwa::sfu {

namespace {

bool equalNoCase(std::string_view a, std::string_view b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end(),
                    [](char x, char y) { return std::tolower(uint8_t(x)) == std::tolower(uint8_t(y)); });
}

bool isRtx(const sdp::Codec& c) { return equalNoCase(c.name, "rtx"); }

bool receives(const sdp::Media& m) {
  return !m.isRejected() && m.isRtp() && (m.kind == "audio" || m.kind == "video") &&
         (m.direction == sdp::Direction::kRecvOnly || m.direction == sdp::Direction::kSendRecv);
}

uint8_t extmapId(const sdp::Media& m, std::string_view uri) {
  for (const auto& e : m.extmaps) {
    if (e.uri == uri && e.id < 256) return uint8_t(e.id);
  }
  return 0;
}

// H.264's profile (the first four hex digits of profile-level-id, level left free) and packetization mode.
bool sameCodec(const sdp::Codec& a, const sdp::Codec& b) {
  if (!equalNoCase(a.name, b.name) || a.clockRate != b.clockRate || a.channels.value_or(1) != b.channels.value_or(1))
    return false;
  if (equalNoCase(a.name, "H264")) {
    auto profile = [](const sdp::Codec& c) {
      auto p = c.fmtpParameter("profile-level-id");
      std::string s = p ? std::string(p->substr(0, 4)) : "42e0";
      for (char& ch : s) ch = char(std::tolower(uint8_t(ch)));
      return s;
    };
    auto mode = [](const sdp::Codec& c) { return std::string(c.fmtpParameter("packetization-mode").value_or("0")); };
    return profile(a) == profile(b) && mode(a) == mode(b);
  }
  if (equalNoCase(a.name, "VP9")) {
    return a.fmtpParameter("profile-id").value_or("0") == b.fmtpParameter("profile-id").value_or("0");
  }
  return true;
}

// The offer's media SSRC and RTX SSRC of an m-line: the FID group's pair, else the first a=ssrc.
std::pair<uint32_t, uint32_t> offeredSsrcs(const sdp::Media& m) {
  for (const auto& g : m.ssrcGroups) {
    if (g.semantics == "FID" && g.ssrcs.size() == 2) return {g.ssrcs[0], g.ssrcs[1]};
  }
  return {m.ssrcs.empty() ? 0 : m.ssrcs.front().ssrc, 0};
}

}  // namespace

PublishedMedia publishedMedia(const sdp::Description& offer, const sdp::Description& answer) {
  PublishedMedia out;
  for (const sdp::Media& m : answer.media) {
    if (!receives(m) || !m.mid) continue;
    if (out.publisher.midExtensionId == 0) out.publisher.midExtensionId = extmapId(m, sdp::uri::kMid);
    if (out.publisher.ridExtensionId == 0) out.publisher.ridExtensionId = extmapId(m, sdp::uri::kRid);
    if (out.publisher.transportCcExtensionId == 0)
      out.publisher.transportCcExtensionId = extmapId(m, sdp::uri::kTransportCc);
    TrackConfig track;
    track.kind = m.kind == "audio" ? MediaKind::kAudio : MediaKind::kVideo;
    track.mid = *m.mid;
    track.clockRate = track.kind == MediaKind::kAudio ? 48000 : 90000;
    if (track.kind == MediaKind::kAudio) track.audioLevelExtensionId = extmapId(m, sdp::uri::kAudioLevel);
    for (const sdp::Codec& c : m.codecs) {
      if (isRtx(c)) {
        uint8_t apt = 0;
        const auto value = c.fmtpParameter("apt");
        if (value && std::from_chars(value->data(), value->data() + value->size(), apt).ec == std::errc() && apt < 128)
          track.rtxPayloadTypes.set(c.payloadType, apt);
        continue;
      }
      if (track.payloadTypes.none()) track.vp8 = equalNoCase(c.name, "VP8");  // the first codec: what is sent
      track.payloadTypes.set(c.payloadType & 0x7F);
      if (c.clockRate != 0) track.clockRate = c.clockRate;
      for (const auto& fb : c.feedback) track.nack = track.nack || (fb.type == "nack" && fb.parameter.empty());
    }
    if (m.rtcpRsize) out.publisher.reducedSize = true;
    // Audio needs few packets kept for NACK (about a second at 50 packets per second).
    if (track.kind == MediaKind::kAudio) track.retransmission = {.maxPackets = 64, .maxBytes = 64 * 1500};
    const sdp::Media* offered = offer.findMid(*m.mid);
    std::vector<std::string> rids;
    for (const auto& r : m.rids) rids.push_back(r.id);
    if (rids.empty()) {
      if (offered != nullptr) std::tie(track.ssrc, track.rtxSsrc) = offeredSsrcs(*offered);
      out.tracks.push_back(track);
    } else {
      for (const auto& rid : rids) {  // simulcast: SSRCs are learned from MID and RID
        track.rid = rid;
        out.tracks.push_back(track);
      }
    }
  }
  return out;
}

const sdp::Media* publishedSection(const sdp::Description& answer, const TrackConfig& track) {
  return answer.findMid(track.mid);
}

sdp::OutgoingTrack outgoingTrack(const sdp::Media& viewerOffer, uint32_t ssrc, uint32_t rtxSsrc, std::string cname,
                                 std::string streamId) {
  sdp::OutgoingTrack t;
  t.mid = viewerOffer.mid.value_or("");
  t.kind = viewerOffer.kind;
  t.streamId = std::move(streamId);
  t.trackId = viewerOffer.kind + "-" + t.mid;
  t.cname = std::move(cname);
  t.ssrc = ssrc;
  const bool offersRtx =
      std::any_of(viewerOffer.codecs.begin(), viewerOffer.codecs.end(), [](const sdp::Codec& c) { return isRtx(c); });
  if (rtxSsrc != 0 && offersRtx) t.rtxSsrc = rtxSsrc;
  return t;
}

std::optional<SubscriptionConfig> subscriptionConfig(const sdp::Media& published, const sdp::Media& viewer,
                                                     uint32_t ssrc, uint32_t rtxSsrc) {
  SubscriptionConfig config;
  config.ssrc = ssrc;
  std::optional<uint8_t> firstMapped;
  for (const sdp::Codec& from : published.codecs) {
    if (isRtx(from)) continue;
    for (const sdp::Codec& to : viewer.codecs) {
      if (!isRtx(to) && sameCodec(from, to)) {
        config.payloadTypes.set(from.payloadType, to.payloadType);
        if (!firstMapped) firstMapped = to.payloadType;
        break;
      }
    }
  }
  if (!firstMapped) return std::nullopt;
  // RTX wraps what is retransmitted; the viewer's RTX type of the first mapped codec (Chromium and Firefox send
  // with one codec at a time, the first of the answer).
  if (rtxSsrc != 0) {
    for (const sdp::Codec& c : viewer.codecs) {
      const auto apt = c.fmtpParameter("apt");
      if (isRtx(c) && apt && *apt == std::to_string(*firstMapped)) {
        config.rtxSsrc = rtxSsrc;
        config.rtxPayloadType = c.payloadType;
        break;
      }
    }
  }
  for (int id = 1; id < 256; ++id) config.extensions.drop(uint8_t(id));
  // Transport-wide sequence numbers are per transport: the publisher's element is kept in its place, and the router
  // writes the viewer's own numbers into it as each packet leaves (Router::drain).
  for (const auto& e : published.extmaps) {
    const uint8_t to = extmapId(viewer, e.uri);
    if (e.id < 256 && to != 0) config.extensions.set(uint8_t(e.id), to);
    if (e.uri == sdp::uri::kTransportCc && to != 0) config.transportCcExtensionId = to;
  }
  return config;
}

}  // namespace kaiwa::sfu

#pragma once
// What kaiwa's SFU says in SDP: the answer to a browser's (or a WHIP client's) offer, and the offer it makes to a
// subscriber. kaiwa is ICE-lite (RFC 8445 section 2.5) and the DTLS server, so that Chromium picks the AES-GCM SRTP
// profiles (shared/docs/sfu.md): answers say a=setup:passive, offers a=setup:actpass. One transport per peer
// connection: every accepted m-line is in one BUNDLE group and carries the same ICE credentials and candidates.
// Pure functions of their arguments: the caller supplies the credentials, the certificate's fingerprint, the
// addresses and the session id, so tests are deterministic.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "sdp/description.hpp"

namespace kaiwa::sdp {

// An fmtp parameter a codec must have to match a server preference; a parameter the offer leaves out counts as
// `ifAbsent` (VP9's profile-id defaults to 0), or never matches when `ifAbsent` is empty.
struct FmtpRule {
  std::string key;
  std::string value;
  std::string ifAbsent;
};

// A codec the server forwards. `h264Profile` (4 hex digits: profile_idc and profile-iop of profile-level-id) must
// match when set; the level may differ (the answer keeps the offer's fmtp).
struct CodecPreference {
  std::string name;  // compared without case
  uint32_t clockRate = 0;
  std::optional<uint32_t> channels;
  std::vector<FmtpRule> fmtp;
  std::string h264Profile;
};

// Opus; VP8, VP9 profile 0, H.264 constrained baseline and baseline with packetization-mode 1, AV1.
std::vector<CodecPreference> defaultAudioCodecs();
std::vector<CodecPreference> defaultVideoCodecs();
// nack, nack pli, ccm fir, goog-remb, transport-cc: what the SFU answers or generates itself.
std::vector<RtcpFeedback> defaultFeedback();
// mid, rid, repaired-rid, ssrc-audio-level, abs-send-time, transport-wide-cc.
std::vector<std::string> defaultHeaderExtensions();

namespace uri {
inline constexpr std::string_view kMid = "urn:ietf:params:rtp-hdrext:sdes:mid";
inline constexpr std::string_view kRid = "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id";
inline constexpr std::string_view kRepairedRid = "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id";
inline constexpr std::string_view kAudioLevel = "urn:ietf:params:rtp-hdrext:ssrc-audio-level";
inline constexpr std::string_view kAbsSendTime = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time";
inline constexpr std::string_view kTransportCc =
    "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01";
}  // namespace uri

// One address the server's media socket is reachable at: a UDP host candidate, and a passive ICE-TCP one (RFC 6544)
// when tcpPort is set.
struct HostAddress {
  std::string ip;  // IPv4 or IPv6 text, as put in the candidate
  uint16_t udpPort = 0;
  std::optional<uint16_t> tcpPort;
};

// A track the server sends to a subscriber, as one m-line of its offer.
struct OutgoingTrack {
  std::string mid;
  std::string kind;                            // "audio" or "video"
  Direction direction = Direction::kSendOnly;  // inactive (or port 0 via `stopped`) once the track is gone
  bool stopped = false;                        // a recycled m-line: port 0, no BUNDLE
  std::string streamId;                        // a=msid
  std::string trackId;
  std::string cname;
  uint32_t ssrc = 0;
  std::optional<uint32_t> rtxSsrc;  // with an rtx codec in `codecs`: a=ssrc-group:FID
  std::vector<Codec> codecs;        // what the server will send with, payload types included
  std::vector<Extmap> extmaps;      // the ids the server writes
};

struct ServerParams {
  std::string iceUfrag;
  std::string icePwd;
  // The DTLS certificate's fingerprint as dtls::Certificate::fingerprint() gives it, "sha-256 AB:CD:…"; a value
  // without the hash function's name is taken as SHA-256.
  std::string fingerprint;
  std::vector<HostAddress> addresses;
  std::string sessionId = "0";  // o= line; a decimal number the caller chooses (random per session)
  std::string sessionVersion = "1";
  // What the server does with media: receive what the peer sends (a publisher), send what the peer asks for (a
  // viewer). An m-line's answer direction is the offer's mirrored, limited to these.
  bool receive = true;
  bool send = false;
  bool acceptAudio = true;
  bool acceptVideo = true;
  bool acceptData = true;
  std::vector<CodecPreference> audioCodecs = defaultAudioCodecs();
  std::vector<CodecPreference> videoCodecs = defaultVideoCodecs();
  std::vector<RtcpFeedback> feedback = defaultFeedback();
  std::vector<std::string> headerExtensions = defaultHeaderExtensions();
  uint16_t sctpPort = 5000;
  uint64_t maxMessageSize = 262144;
  // For an answer that sends on an m-line (a viewer's): the SSRCs, cname and msid of what goes out there, by mid
  // (OutgoingTrack above; its codecs, extmaps and direction are not used, the answer takes those from the offer).
  std::vector<OutgoingTrack> senders;
};

// The answer to `offer`. An error (with a reason WHIP's 400 can show) when the offer cannot be answered at all: no
// BUNDLE group, no m-line kaiwa can accept, a BUNDLE'd m-line without mid, ICE credentials, fingerprint or
// rtcp-mux, a=setup:passive (kaiwa must be the DTLS server), or server parameters without credentials, fingerprint
// or address. An m-line kaiwa refuses (a kind it does not take, no common codec, outside the BUNDLE group) is
// answered with port 0 and left out of the answer's BUNDLE group.
Result<Description> answer(const Description& offer, const ServerParams& server);

// What the server's DTLS and ICE need from the peer's description: the ICE credentials, the certificate
// fingerprints and the DTLS role of the BUNDLE transport (its first m-line that is not rejected; attributes at
// session level count for every m-line), and the peer's candidates on it.
struct RemoteTransport {
  std::string iceUfrag;
  std::string icePwd;
  std::vector<Fingerprint> fingerprints;
  Setup setup = Setup::kActPass;  // absent: actpass
  bool iceLite = false;
  std::vector<Candidate> candidates;
  bool operator==(const RemoteTransport&) const = default;
};

// An error when there is no BUNDLE group, no m-line in it that is not rejected, or that m-line has no ICE
// credentials or fingerprint.
Result<RemoteTransport> remoteTransport(const Description& d);

// An m-line for a data channel in the server's offer.
struct OutgoingData {
  std::string mid;
};

// Payload types and extension ids kaiwa's offers use when the caller has nothing better (Chromium's numbering).
std::vector<Codec> defaultOfferCodecs(std::string_view kind);
std::vector<Extmap> defaultOfferExtmaps(std::string_view kind);

// The server's offer to a subscriber: one m-line per track (and the data channel last, if given), a=setup:actpass,
// a=ice-lite, BUNDLE of every m-line not stopped. `server.receive`/`send` are not used: each track says its
// direction. An error for server parameters without credentials, fingerprint or address, or a track without mid or
// codecs.
Result<Description> offer(const std::vector<OutgoingTrack>& tracks, const std::optional<OutgoingData>& data,
                          const ServerParams& server);

// A trickle-ice-sdpfrag (RFC 8840 section 9), as a WHIP/WHEP client PATCHes it (RFC 9725 section 4.3): the ICE
// credentials (new ones mean an ICE restart) and the first m= line with its mid.
struct IceFragment {
  std::optional<std::string> iceUfrag;
  std::optional<std::string> icePwd;
  std::string kind;  // of the first m= line ("" when there is none)
  std::string proto;
  std::vector<std::string> formats;
  std::optional<std::string> mid;
  size_t candidates = 0;  // in all m= sections
  bool endOfCandidates = false;
};

// Parses a fragment with parse()'s grammar and limits (a fragment is a description's attribute and media lines
// without its session header). An error, with its line, for what parse() refuses, for an a=ice-ufrag without
// a=ice-pwd (or the reverse), or for credentials that RFC 8839 section 5.4 does not allow (ufrag 4-256 and password
// 22-256 characters of ALPHA, DIGIT, '+', '/').
Result<IceFragment> parseIceFragment(std::string_view text, const Limits& limits = {});

// The server's answer to an ICE restart fragment (RFC 9725 section 4.4.1's example): a=ice-lite, its new
// credentials, the request's first m= line and mid, and a host candidate per server address, then
// a=end-of-candidates. An error for server parameters without credentials or address.
Result<std::string> iceRestartAnswer(const IceFragment& request, const ServerParams& server);

}  // namespace kaiwa::sdp

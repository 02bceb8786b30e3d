// The SFU's answers and offers (answer.hpp). What Chromium accepts and why each line is there is in docs/sfu.md,
// section "SDP".
#include "sdp/answer.hpp"

#include <algorithm>

namespace kaiwa::sdp {
namespace {

bool equalNoCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; };
           return lower(x) == lower(y);
         });
}

Codec codec(uint8_t pt, std::string name, uint32_t clock, std::optional<uint32_t> channels,
            std::optional<std::string> fmtp, std::vector<RtcpFeedback> feedback = {}) {
  Codec c;
  c.payloadType = pt;
  c.hasRtpmap = true;
  c.name = std::move(name);
  c.clockRate = clock;
  c.channels = channels;
  c.fmtp = std::move(fmtp);
  c.feedback = std::move(feedback);
  return c;
}

// Text the parser reads back as one field: not empty, no space, no control character.
bool token(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    auto u = static_cast<unsigned char>(c);
    return u > 0x20 && u != 0x7F;
  });
}

// "sha-256 AB:CD:…" or "AB:CD:…" (SHA-256); both parts tokens.
std::optional<Fingerprint> serverFingerprint(std::string_view text) {
  Fingerprint f{"sha-256", std::string(text)};
  if (size_t space = text.find(' '); space != std::string_view::npos) {
    f = {std::string(text.substr(0, space)), std::string(text.substr(space + 1))};
  }
  if (!token(f.algorithm) || !token(f.value)) return std::nullopt;
  return f;
}

bool digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// The server's own values go into the text as they are, so they must be what the parser reads back unchanged.
std::optional<Error> checkServer(const ServerParams& s) {
  if (!token(s.iceUfrag) || !token(s.icePwd)) return Error{0, "server has no ICE credentials"};
  if (!digits(s.sessionId) || !digits(s.sessionVersion)) return Error{0, "server session id or version is no number"};
  for (const auto& a : s.addresses) {
    if (!token(a.ip)) return Error{0, "server has a media address that is no IP address"};
  }
  if (!serverFingerprint(s.fingerprint)) return Error{0, "server has no certificate fingerprint"};
  if (s.addresses.empty()) return Error{0, "server has no media address"};
  return std::nullopt;
}

Connection connectionOf(const std::string& ip) { return {"IN", ip.find(':') != std::string::npos ? "IP6" : "IP4", ip}; }

// RFC 8445 section 5.1.2.1: (2^24) type preference + (2^8) local preference + (256 - component). Host candidates
// have type preference 126; ICE-TCP candidates get a lower one so that a client with both prefers UDP (RFC 6544
// section 4.2 leaves this to the implementation), and their local preference starts with the passive direction's 4
// in its top three bits.
uint32_t priority(uint32_t typePref, uint32_t localPref) { return (typePref << 24) | (localPref << 8) | 255; }

std::vector<Candidate> hostCandidates(const ServerParams& s) {
  std::vector<Candidate> out;
  for (size_t i = 0; i < s.addresses.size(); ++i) {
    const auto& a = s.addresses[i];
    auto index = static_cast<uint32_t>(std::min<size_t>(i, 8191));
    Candidate udp;
    udp.foundation = std::to_string(2 * i + 1);
    udp.component = 1;
    udp.transport = "udp";
    udp.priority = priority(126, 65535 - index);
    udp.address = a.ip;
    udp.port = a.udpPort;
    udp.type = "host";
    out.push_back(udp);
    if (a.tcpPort) {
      Candidate tcp = udp;
      tcp.foundation = std::to_string(2 * i + 2);
      tcp.transport = "tcp";
      tcp.priority = priority(90, (4u << 13) | (8191 - index));
      tcp.port = *a.tcpPort;
      tcp.tcpType = "passive";
      out.push_back(tcp);
    }
  }
  return out;
}

// The transport lines every accepted m-line carries: address, candidates, ICE credentials, DTLS role, rtcp-mux.
void transport(Media& m, const ServerParams& s, Setup setup) {
  m.port = s.addresses.front().udpPort;
  m.connection = connectionOf(s.addresses.front().ip);
  m.candidates = hostCandidates(s);
  m.endOfCandidates = true;
  m.iceUfrag = s.iceUfrag;
  m.icePwd = s.icePwd;
  m.setup = setup;
}

Description sessionFor(const ServerParams& s) {
  Description d;
  d.origin = Origin{"-", s.sessionId, s.sessionVersion, "IN", "IP4", "127.0.0.1"};
  d.sessionName = "-";
  d.timing = "0 0";
  d.iceLite = true;
  d.fingerprints.push_back(*serverFingerprint(s.fingerprint));  // checkServer() came first
  return d;
}

bool matches(const Codec& c, const CodecPreference& p) {
  if (!c.hasRtpmap || !equalNoCase(c.name, p.name) || c.clockRate != p.clockRate) return false;
  if (p.channels && c.channels.value_or(1) != *p.channels) return false;
  for (const auto& rule : p.fmtp) {
    auto v = c.fmtpParameter(rule.key);
    if (v ? !equalNoCase(*v, rule.value) : (rule.ifAbsent.empty() || rule.ifAbsent != rule.value)) return false;
  }
  if (!p.h264Profile.empty()) {
    // profile-level-id defaults to 420010, baseline (RFC 6184 section 8.1).
    std::string_view plid = c.fmtpParameter("profile-level-id").value_or("420010");
    if (plid.size() != 6 || !equalNoCase(plid.substr(0, 4), p.h264Profile)) return false;
  }
  return true;
}

bool offered(const Media& m, uint8_t pt) {
  std::string s = std::to_string(pt);
  return std::find(m.formats.begin(), m.formats.end(), s) != m.formats.end();
}

// The offer's codecs the server takes, in the server's order of preference, each followed by its RTX codec, with
// the rtcp-fb lines the server supports.
std::vector<Codec> chooseCodecs(const Media& m, const std::vector<CodecPreference>& prefs,
                                const std::vector<RtcpFeedback>& feedback) {
  std::vector<Codec> out;
  auto taken = [&](uint8_t pt) {
    return std::any_of(out.begin(), out.end(), [&](const Codec& c) { return c.payloadType == pt; });
  };
  for (const auto& p : prefs) {
    for (const auto& c : m.codecs) {
      if (!offered(m, c.payloadType) || taken(c.payloadType) || !matches(c, p)) continue;
      Codec chosen = c;
      chosen.feedback.clear();
      for (const auto& fb : c.feedback) {
        if (std::find(feedback.begin(), feedback.end(), fb) != feedback.end()) chosen.feedback.push_back(fb);
      }
      out.push_back(std::move(chosen));
      std::string apt = std::to_string(c.payloadType);
      for (const auto& r : m.codecs) {
        if (r.hasRtpmap && equalNoCase(r.name, "rtx") && offered(m, r.payloadType) && !taken(r.payloadType) &&
            r.fmtpParameter("apt") == std::optional<std::string_view>(apt)) {
          Codec rtx = r;
          rtx.feedback.clear();
          out.push_back(std::move(rtx));
          break;
        }
      }
    }
  }
  return out;
}

Media rejected(const Media& offered) {
  Media m;
  m.kind = offered.kind;
  m.port = 0;
  m.proto = offered.proto;
  m.formats = {offered.formats.front()};
  m.connection = Connection{};
  m.mid = offered.mid;
  m.direction = Direction::kInactive;
  return m;
}

// The lines that name what the server sends on an m-line: a=msid, a=ssrc cname and msid, and the FID group of the
// RTX SSRC. A stream id, track id or cname that is no token (empty, a space, a control character) is left out
// rather than written as text that would not parse back the same.
void addSender(Media& m, const OutgoingTrack& t) {
  bool msid = token(t.streamId) && token(t.trackId);
  if (msid) m.msids.push_back({t.streamId, t.trackId});
  if (t.rtxSsrc) m.ssrcGroups.push_back({"FID", {t.ssrc, *t.rtxSsrc}});
  std::vector<uint32_t> ssrcs{t.ssrc};
  if (t.rtxSsrc) ssrcs.push_back(*t.rtxSsrc);
  for (uint32_t ssrc : ssrcs) {
    if (token(t.cname)) m.ssrcs.push_back({ssrc, "cname", t.cname});
    if (msid) m.ssrcs.push_back({ssrc, "msid", t.streamId + " " + t.trackId});
  }
}

std::string where(size_t index, const Media& m) {
  std::string s = "m-line " + std::to_string(index + 1) + " (" + m.kind;
  if (m.mid) s += ", mid " + *m.mid;
  return s + ")";
}

}  // namespace

Result<RemoteTransport> remoteTransport(const Description& d) {
  const Group* bundle = d.bundle();
  if (!bundle) return Error{0, "no a=group:BUNDLE"};
  for (const auto& mid : bundle->mids) {
    const Media* m = d.findMid(mid);
    if (!m || m->isRejected()) continue;
    RemoteTransport t;
    auto ufrag = m->iceUfrag ? m->iceUfrag : d.iceUfrag;
    auto pwd = m->icePwd ? m->icePwd : d.icePwd;
    if (!ufrag || !pwd) return Error{0, "m-line " + mid + " has no a=ice-ufrag and a=ice-pwd"};
    t.iceUfrag = *ufrag;
    t.icePwd = *pwd;
    t.fingerprints = m->fingerprints.empty() ? d.fingerprints : m->fingerprints;
    if (t.fingerprints.empty()) return Error{0, "m-line " + mid + " has no a=fingerprint"};
    t.setup = m->setup.value_or(d.setup.value_or(Setup::kActPass));
    t.iceLite = d.iceLite;
    t.candidates = m->candidates;
    return t;
  }
  return Error{0, "no m-line of the BUNDLE group is in use"};
}

std::vector<CodecPreference> defaultAudioCodecs() { return {{"opus", 48000, 2, {}, {}}}; }

std::vector<CodecPreference> defaultVideoCodecs() {
  return {
      {"VP8", 90000, std::nullopt, {}, {}},
      {"VP9", 90000, std::nullopt, {{"profile-id", "0", "0"}}, {}},
      {"H264", 90000, std::nullopt, {{"packetization-mode", "1", ""}}, "42e0"},
      {"H264", 90000, std::nullopt, {{"packetization-mode", "1", ""}}, "4200"},
      {"AV1", 90000, std::nullopt, {}, {}},
  };
}

std::vector<RtcpFeedback> defaultFeedback() {
  return {{"nack", ""}, {"nack", "pli"}, {"ccm", "fir"}, {"goog-remb", ""}, {"transport-cc", ""}};
}

std::vector<std::string> defaultHeaderExtensions() {
  return {std::string(uri::kMid),        std::string(uri::kRid),         std::string(uri::kRepairedRid),
          std::string(uri::kAudioLevel), std::string(uri::kAbsSendTime), std::string(uri::kTransportCc)};
}

Result<Description> answer(const Description& offer, const ServerParams& server) {
  if (auto e = checkServer(server)) return *e;
  const Group* bundle = offer.bundle();
  if (!bundle) return Error{0, "offer has no a=group:BUNDLE (kaiwa takes all media on one transport)"};
  auto inBundle = [&](const std::string& mid) {
    return std::find(bundle->mids.begin(), bundle->mids.end(), mid) != bundle->mids.end();
  };

  for (size_t i = 0; i < offer.media.size(); ++i) {
    for (size_t j = 0; j < i; ++j) {
      if (offer.media[i].mid && offer.media[i].mid == offer.media[j].mid) {
        return Error{0, where(i, offer.media[i]) + " repeats the mid of m-line " + std::to_string(j + 1)};
      }
    }
  }
  Description d = sessionFor(server);
  d.extmapAllowMixed = offer.extmapAllowMixed;
  std::vector<std::string> accepted;
  for (size_t i = 0; i < offer.media.size(); ++i) {
    const Media& om = offer.media[i];
    if (om.formats.empty()) return Error{0, where(i, om) + " has no format"};
    bool rtp = om.isRtp();
    bool data = om.kind == "application" && om.proto.find("SCTP") != std::string::npos &&
                std::find(om.formats.begin(), om.formats.end(), "webrtc-datachannel") != om.formats.end();
    bool wanted = (om.kind == "audio" && rtp && server.acceptAudio) ||
                  (om.kind == "video" && rtp && server.acceptVideo) || (data && server.acceptData);
    if (om.isRejected() || !om.mid || !inBundle(*om.mid) || !wanted) {
      if (!om.isRejected() && !om.mid) return Error{0, where(i, om) + " has no a=mid"};
      d.media.push_back(rejected(om));
      continue;
    }
    // The transport's parameters, at media or session level (a bundle-only m-line has none of its own).
    if (!om.bundleOnly()) {
      if (!(om.iceUfrag || offer.iceUfrag) || !(om.icePwd || offer.icePwd)) {
        return Error{0, where(i, om) + " has no a=ice-ufrag and a=ice-pwd"};
      }
      if (om.fingerprints.empty() && offer.fingerprints.empty()) {
        return Error{0, where(i, om) + " has no a=fingerprint"};
      }
      auto setup = om.setup ? om.setup : offer.setup;
      if (setup == Setup::kPassive || setup == Setup::kHoldConn) {
        return Error{0, where(i, om) + " has a=setup:" + std::string(toString(*setup)) +
                            " (kaiwa is the DTLS server: offer actpass or active)"};
      }
    }
    if (rtp && !om.rtcpMux) return Error{0, where(i, om) + " has no a=rtcp-mux"};

    Media m;
    m.kind = om.kind;
    m.proto = om.proto;
    m.mid = om.mid;
    if (data) {
      m.formats = {"webrtc-datachannel"};
      m.sctpPort = server.sctpPort;
      m.maxMessageSize = server.maxMessageSize;
    } else {
      m.codecs = chooseCodecs(om, om.kind == "audio" ? server.audioCodecs : server.videoCodecs, server.feedback);
      if (m.codecs.empty()) {
        d.media.push_back(rejected(om));
        continue;
      }
      for (const auto& c : m.codecs) m.formats.push_back(std::to_string(c.payloadType));
      std::vector<Extmap> offeredExt = om.extmaps;
      offeredExt.insert(offeredExt.end(), offer.extmaps.begin(), offer.extmaps.end());
      for (const auto& e : offeredExt) {
        if (std::find(server.headerExtensions.begin(), server.headerExtensions.end(), e.uri) ==
            server.headerExtensions.end()) {
          continue;
        }
        if (std::any_of(m.extmaps.begin(), m.extmaps.end(), [&](const Extmap& x) { return x.id == e.id; })) continue;
        Extmap x{e.id, std::nullopt, e.uri, ""};
        if (e.direction) x.direction = reverse(*e.direction);
        m.extmaps.push_back(std::move(x));
      }
      Direction offerDir = om.direction.value_or(offer.direction.value_or(Direction::kSendRecv));
      bool peerSends = offerDir == Direction::kSendRecv || offerDir == Direction::kSendOnly;
      bool peerReceives = offerDir == Direction::kSendRecv || offerDir == Direction::kRecvOnly;
      bool recv = peerSends && server.receive;
      bool send = peerReceives && server.send;
      m.direction = recv && send ? Direction::kSendRecv
                    : recv       ? Direction::kRecvOnly
                    : send       ? Direction::kSendOnly
                                 : Direction::kInactive;
      m.rtcpMux = true;
      m.rtcpRsize = om.rtcpRsize;
      if (send) {
        for (const auto& t : server.senders) {
          if (t.mid == *m.mid) addSender(m, t);
        }
      }
      // Simulcast: receive every RID the offer sends (RFC 8853 section 5.3).
      if (recv && om.simulcast && !om.simulcast->send.empty()) {
        Simulcast sc;
        for (const auto& stream : om.simulcast->send) {
          std::vector<SimulcastRid> alts;
          for (const auto& r : stream) {
            alts.push_back({r.id, false});
            m.rids.push_back({r.id, RidDirection::kRecv, ""});
          }
          sc.recv.push_back(std::move(alts));
        }
        m.simulcast = std::move(sc);
      }
    }
    transport(m, server, Setup::kPassive);
    accepted.push_back(*m.mid);
    d.media.push_back(std::move(m));
  }
  if (accepted.empty()) return Error{0, "offer has no m-line kaiwa can accept"};
  // The answer's BUNDLE group names the accepted mids in the offer's order; its first is the offerer's tagged
  // m-line when that one was accepted (RFC 8843 section 7.3).
  Group g{"BUNDLE", {}};
  for (const auto& mid : bundle->mids) {
    if (std::find(accepted.begin(), accepted.end(), mid) != accepted.end()) g.mids.push_back(mid);
  }
  d.groups.push_back(std::move(g));
  return d;
}

std::vector<Codec> defaultOfferCodecs(std::string_view kind) {
  std::vector<RtcpFeedback> video = {
      {"goog-remb", ""}, {"transport-cc", ""}, {"ccm", "fir"}, {"nack", ""}, {"nack", "pli"}};
  if (kind == "audio") {
    return {codec(111, "opus", 48000, 2, "minptime=10;useinbandfec=1", {{"transport-cc", ""}})};
  }
  return {
      codec(96, "VP8", 90000, std::nullopt, std::nullopt, video),
      codec(97, "rtx", 90000, std::nullopt, "apt=96"),
      codec(98, "VP9", 90000, std::nullopt, "profile-id=0", video),
      codec(99, "rtx", 90000, std::nullopt, "apt=98"),
      codec(102, "H264", 90000, std::nullopt, "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
            video),
      codec(103, "rtx", 90000, std::nullopt, "apt=102"),
  };
}

std::vector<Extmap> defaultOfferExtmaps(std::string_view kind) {
  std::vector<Extmap> out;
  if (kind == "audio") out.push_back({1, std::nullopt, std::string(uri::kAudioLevel), ""});
  out.push_back({2, std::nullopt, std::string(uri::kAbsSendTime), ""});
  out.push_back({3, std::nullopt, std::string(uri::kTransportCc), ""});
  out.push_back({4, std::nullopt, std::string(uri::kMid), ""});
  return out;
}

Result<Description> offer(const std::vector<OutgoingTrack>& tracks, const std::optional<OutgoingData>& data,
                          const ServerParams& server) {
  if (auto e = checkServer(server)) return *e;
  Description d = sessionFor(server);
  d.extmapAllowMixed = true;
  d.msidSemantic = MsidSemantic{"WMS", {}};
  std::vector<std::string> mids;
  auto newMid = [&](const std::string& mid) -> std::optional<Error> {
    if (!token(mid)) return Error{0, "a track's mid is empty or not a token"};
    if (std::find(mids.begin(), mids.end(), mid) != mids.end()) return Error{0, "mid " + mid + " used twice"};
    mids.push_back(mid);
    return std::nullopt;
  };
  Group g{"BUNDLE", {}};
  for (const auto& t : tracks) {
    if (auto e = newMid(t.mid)) return *e;
    if (!token(t.kind)) return Error{0, "track " + t.mid + " has no kind"};
    if (t.codecs.empty()) return Error{0, "track " + t.mid + " has no codec"};
    for (size_t i = 0; i < t.codecs.size(); ++i) {
      for (size_t j = 0; j < i; ++j) {
        if (t.codecs[i].payloadType == t.codecs[j].payloadType) {
          return Error{0,
                       "track " + t.mid + " names payload type " + std::to_string(t.codecs[i].payloadType) + " twice"};
        }
      }
    }
    Media m;
    m.kind = t.kind;
    m.proto = "UDP/TLS/RTP/SAVPF";
    m.mid = t.mid;
    for (const auto& c : t.codecs) m.formats.push_back(std::to_string(c.payloadType));
    m.codecs = t.codecs;
    if (t.stopped) {
      m.port = 0;
      m.connection = Connection{};
      m.direction = Direction::kInactive;
      d.media.push_back(std::move(m));
      continue;
    }
    transport(m, server, Setup::kActPass);
    m.extmaps = t.extmaps;
    m.direction = t.direction;
    m.rtcpMux = true;
    m.rtcpRsize = true;
    if (t.direction == Direction::kSendOnly || t.direction == Direction::kSendRecv) addSender(m, t);
    g.mids.push_back(t.mid);
    d.media.push_back(std::move(m));
  }
  if (data) {
    if (auto e = newMid(data->mid)) return *e;
    Media m;
    m.kind = "application";
    m.proto = "UDP/DTLS/SCTP";
    m.formats = {"webrtc-datachannel"};
    m.mid = data->mid;
    m.sctpPort = server.sctpPort;
    m.maxMessageSize = server.maxMessageSize;
    transport(m, server, Setup::kActPass);
    g.mids.push_back(data->mid);
    d.media.push_back(std::move(m));
  }
  if (g.mids.empty()) return Error{0, "an offer needs at least one live m-line"};
  d.groups.push_back(std::move(g));
  return d;
}

namespace {

// RFC 8839 section 5.4: ice-char = ALPHA / DIGIT / "+" / "/".
bool iceChars(std::string_view s, size_t min, size_t max) {
  if (s.size() < min || s.size() > max) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '+' || c == '/';
  });
}

// The session header put before a fragment so that parse() reads it; its lines are not the client's, so error line
// numbers are shifted back by their count.
constexpr std::string_view kFragmentHeader = "v=0\r\no=- 0 0 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n";
constexpr size_t kFragmentHeaderLines = 4;

}  // namespace

Result<IceFragment> parseIceFragment(std::string_view text, const Limits& limits) {
  if (text.size() > limits.maxBytes) return Error{0, "the fragment is too large"};
  std::string whole(kFragmentHeader);
  whole += text;
  Limits shifted = limits;
  shifted.maxBytes += kFragmentHeader.size();
  shifted.maxLines += kFragmentHeaderLines;
  auto d = parse(whole, shifted);
  if (!d) {
    Error e = d.error();
    e.line = e.line > kFragmentHeaderLines ? e.line - kFragmentHeaderLines : 0;
    return e;
  }
  IceFragment f;
  f.iceUfrag = d->iceUfrag;
  f.icePwd = d->icePwd;
  f.endOfCandidates = d->endOfCandidates;
  for (const Media& m : d->media) {
    if (f.kind.empty()) {
      f.kind = m.kind;
      f.proto = m.proto;
      f.formats = m.formats;
      f.mid = m.mid;
      if (!f.iceUfrag) f.iceUfrag = m.iceUfrag;
      if (!f.icePwd) f.icePwd = m.icePwd;
    }
    f.candidates += m.candidates.size();
    f.endOfCandidates = f.endOfCandidates || m.endOfCandidates;
  }
  if (f.iceUfrag.has_value() != f.icePwd.has_value()) return Error{0, "a=ice-ufrag and a=ice-pwd come together"};
  if (f.iceUfrag && (!iceChars(*f.iceUfrag, 4, 256) || !iceChars(*f.icePwd, 22, 256))) {
    return Error{0, "the ICE credentials are not of RFC 8839's form"};
  }
  return f;
}

Result<std::string> iceRestartAnswer(const IceFragment& request, const ServerParams& server) {
  if (!token(server.iceUfrag) || !token(server.icePwd)) return Error{0, "server has no ICE credentials"};
  if (server.addresses.empty()) return Error{0, "server has no media address"};
  std::string out = "a=ice-lite\r\na=ice-ufrag:" + server.iceUfrag + "\r\na=ice-pwd:" + server.icePwd + "\r\n";
  if (!request.kind.empty()) {
    out += "m=" + request.kind + " 9 " + request.proto;
    for (const auto& f : request.formats) out += " " + f;
    out += "\r\n";
    if (request.mid) out += "a=mid:" + *request.mid + "\r\n";
  }
  for (const Candidate& c : hostCandidates(server)) out += "a=candidate:" + writeCandidate(c) + "\r\n";
  out += "a=end-of-candidates\r\n";
  return out;
}

}  // namespace kaiwa::sdp

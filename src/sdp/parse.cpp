// The SDP parser: one pass over the lines, each line's value split into the fields of description.hpp. Every
// check that can fail returns an Error naming the line; nothing here throws on input.
#include <charconv>
#include <limits>

#include "sdp/description.hpp"

namespace kaiwa::sdp {
namespace {

// Splits on spaces, dropping empty tokens.
std::vector<std::string_view> tokens(std::string_view s) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && s[i] == ' ') ++i;
    size_t start = i;
    while (i < s.size() && s[i] != ' ') ++i;
    if (i > start) out.push_back(s.substr(start, i - start));
  }
  return out;
}

// The first token of `s` and what follows it with the spaces between them skipped.
std::pair<std::string_view, std::string_view> firstToken(std::string_view s) {
  size_t i = 0;
  while (i < s.size() && s[i] == ' ') ++i;
  size_t start = i;
  while (i < s.size() && s[i] != ' ') ++i;
  std::string_view tok = s.substr(start, i - start);
  while (i < s.size() && s[i] == ' ') ++i;
  return {tok, s.substr(i)};
}

template <typename T>
std::optional<T> number(std::string_view s, T max = std::numeric_limits<T>::max()) {
  if (s.empty() || s.size() > 20) return std::nullopt;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
  }
  uint64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || v > static_cast<uint64_t>(max)) return std::nullopt;
  return static_cast<T>(v);
}

std::optional<Direction> directionNamed(std::string_view s) {
  if (s == "sendrecv") return Direction::kSendRecv;
  if (s == "sendonly") return Direction::kSendOnly;
  if (s == "recvonly") return Direction::kRecvOnly;
  if (s == "inactive") return Direction::kInactive;
  return std::nullopt;
}

class Parser {
 public:
  explicit Parser(const Limits& limits) : limits_(limits) {}

  Result<Description> run(std::string_view text) {
    if (text.size() > limits_.maxBytes) {
      return Error{0, "description larger than " + std::to_string(limits_.maxBytes) + " bytes"};
    }
    size_t pos = 0;
    while (pos < text.size()) {
      size_t nl = text.find('\n', pos);
      size_t end = nl == std::string_view::npos ? text.size() : nl;
      std::string_view line = text.substr(pos, end - pos);
      pos = nl == std::string_view::npos ? text.size() : nl + 1;
      ++lineNo_;
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      if (line.empty()) continue;  // blank lines (a trailing one, mostly) carry nothing
      if (++lines_ > limits_.maxLines) return fail("more than " + std::to_string(limits_.maxLines) + " lines");
      if (!onLine(line)) return std::move(*error_);
    }
    ++lineNo_;
    if (!sawV_) return fail("no v= line");
    if (!sawO_) return fail("no o= line");
    if (!sawS_) return fail("no s= line");
    if (!sawT_) return fail("no t= line");
    return std::move(d_);
  }

 private:
  Error fail(std::string reason) { return Error{lineNo_, std::move(reason)}; }
  bool bad(std::string reason) {
    error_ = Error{lineNo_, std::move(reason)};
    return false;
  }

  bool onLine(std::string_view line) {
    for (char c : line) {
      auto u = static_cast<unsigned char>(c);
      if (u < 0x20 || u == 0x7F) return bad("control character in line");
    }
    if (line.size() < 2 || line[1] != '=') return bad("not a <type>=<value> line");
    char type = line[0];
    std::string_view value = line.substr(2);
    if (!sawV_) {
      if (type != 'v') return bad("the first line is not v=");
      if (value != "0") return bad("v= is not 0");
      sawV_ = true;
      return true;
    }
    switch (type) {
      case 'v':
        return bad("a second v= line");
      case 'o':
        return onOrigin(value);
      case 's':
        if (sawS_ || media_) return bad("s= out of place");
        sawS_ = true;
        d_.sessionName = std::string(value);
        return true;
      case 't':
        if (media_) return bad("t= inside a media section");
        if (!sawT_) {
          sawT_ = true;
          d_.timing = std::string(value);
        } else {
          d_.timeLines.push_back({type, std::string(value)});
        }
        return true;
      case 'r':
      case 'z':
        if (media_) return bad(std::string(1, type) + "= inside a media section");
        d_.timeLines.push_back({type, std::string(value)});
        return true;
      case 'u':
      case 'e':
      case 'p':
        if (media_) return bad(std::string(1, type) + "= inside a media section");
        d_.lines.push_back({type, std::string(value)});
        return true;
      case 'i':
      case 'b':
      case 'k':
        if (media_) {
          media_->lines.push_back({type, std::string(value)});
        } else if (type == 'k') {
          d_.timeLines.push_back({type, std::string(value)});
        } else {
          d_.lines.push_back({type, std::string(value)});
        }
        return true;
      case 'c':
        return onConnection(value);
      case 'm':
        return onMedia(value);
      case 'a':
        if (++attributes_ > limits_.maxAttributesPerSection) {
          return bad("more than " + std::to_string(limits_.maxAttributesPerSection) + " attributes in a section");
        }
        return onAttribute(value);
      default:
        return bad(std::string("unknown line type ") + type + "=");
    }
  }

  bool onOrigin(std::string_view value) {
    if (sawO_ || media_) return bad("o= out of place");
    auto t = tokens(value);
    if (t.size() != 6) return bad("o= needs 6 fields");
    d_.origin = Origin{std::string(t[0]), std::string(t[1]), std::string(t[2]),
                       std::string(t[3]), std::string(t[4]), std::string(t[5])};
    sawO_ = true;
    return true;
  }

  bool onConnection(std::string_view value) {
    auto t = tokens(value);
    if (t.size() != 3) return bad("c= needs 3 fields");
    auto& slot = media_ ? media_->connection : d_.connection;
    if (slot) return bad("a second c= line in one section");
    slot = Connection{std::string(t[0]), std::string(t[1]), std::string(t[2])};
    return true;
  }

  bool onMedia(std::string_view value) {
    if (!sawO_ || !sawS_ || !sawT_) return bad("m= before o=, s= and t=");
    if (d_.media.size() >= limits_.maxMedia) return bad("more than " + std::to_string(limits_.maxMedia) + " m= lines");
    auto t = tokens(value);
    if (t.size() < 4) return bad("m= needs media, port, proto and at least one format");
    Media m;
    m.kind = std::string(t[0]);
    std::string_view port = t[1];
    if (size_t slash = port.find('/'); slash != std::string_view::npos) {
      auto count = number<uint16_t>(port.substr(slash + 1));
      if (!count) return bad("m= port count is not a number");
      m.portCount = *count;
      port = port.substr(0, slash);
    }
    auto p = number<uint16_t>(port);
    if (!p) return bad("m= port is not a number up to 65535");
    m.port = *p;
    m.proto = std::string(t[2]);
    for (size_t i = 3; i < t.size(); ++i) m.formats.emplace_back(t[i]);
    d_.media.push_back(std::move(m));
    media_ = &d_.media.back();
    attributes_ = 0;
    return true;
  }

  // Sets a single-valued slot once; a second line of the same attribute in one section is an error.
  template <typename T>
  bool once(std::optional<T>& slot, T value, std::string_view name) {
    if (slot) return bad("a=" + std::string(name) + " given twice in one section");
    slot = std::move(value);
    return true;
  }

  bool flag(bool& slot, const std::optional<std::string_view>& value, std::string_view name) {
    if (value) return bad("a=" + std::string(name) + " takes no value");
    slot = true;
    return true;
  }

  bool onAttribute(std::string_view text) {
    std::string_view name = text;
    std::optional<std::string_view> value;
    if (size_t colon = text.find(':'); colon != std::string_view::npos) {
      name = text.substr(0, colon);
      value = text.substr(colon + 1);
    }
    if (name.empty()) return bad("a= with no attribute name");
    CommonAttributes& common = media_ ? static_cast<CommonAttributes&>(*media_) : d_;
    auto need = [&](std::string_view n) -> bool {
      if (!value || value->empty()) return bad("a=" + std::string(n) + " needs a value");
      return true;
    };

    // Attributes allowed at both levels.
    if (auto dir = directionNamed(name)) {
      if (value) return bad("a=" + std::string(name) + " takes no value");
      if (common.direction) return bad("more than one direction attribute in one section");
      common.direction = *dir;
      return true;
    }
    if (name == "ice-ufrag") return need(name) && once(common.iceUfrag, std::string(*value), name);
    if (name == "ice-pwd") return need(name) && once(common.icePwd, std::string(*value), name);
    if (name == "ice-options") {
      if (!need(name)) return false;
      if (!common.iceOptions.empty()) return bad("a=ice-options given twice in one section");
      for (auto t : tokens(*value)) common.iceOptions.emplace_back(t);
      if (common.iceOptions.empty()) return bad("a=ice-options needs a value");
      return true;
    }
    if (name == "fingerprint") {
      if (!need(name)) return false;
      auto t = tokens(*value);
      if (t.size() != 2) return bad("a=fingerprint needs a hash function and a value");
      common.fingerprints.push_back({std::string(t[0]), std::string(t[1])});
      return true;
    }
    if (name == "setup") {
      if (!need(name)) return false;
      std::optional<Setup> s;
      if (*value == "actpass") s = Setup::kActPass;
      if (*value == "active") s = Setup::kActive;
      if (*value == "passive") s = Setup::kPassive;
      if (*value == "holdconn") s = Setup::kHoldConn;
      if (!s) return bad("a=setup is not actpass, active, passive or holdconn");
      return once(common.setup, *s, name);
    }
    if (name == "extmap-allow-mixed") return flag(common.extmapAllowMixed, value, name);
    if (name == "end-of-candidates") return flag(common.endOfCandidates, value, name);
    if (name == "extmap") return need(name) && onExtmap(common, *value);

    if (!media_) {
      if (name == "ice-lite") return flag(d_.iceLite, value, name);
      if (name == "group") {
        if (!need(name)) return false;
        auto t = tokens(*value);
        if (t.empty()) return bad("a=group needs semantics");
        Group g{std::string(t[0]), {}};
        for (size_t i = 1; i < t.size(); ++i) g.mids.emplace_back(t[i]);
        d_.groups.push_back(std::move(g));
        return true;
      }
      if (name == "msid-semantic") {
        if (!need(name)) return false;
        auto t = tokens(*value);
        if (t.empty()) return bad("a=msid-semantic needs a semantic");
        MsidSemantic ms{std::string(t[0]), {}};
        for (size_t i = 1; i < t.size(); ++i) ms.ids.emplace_back(t[i]);
        return once(d_.msidSemantic, std::move(ms), name);
      }
      d_.others.push_back({std::string(name), value ? std::optional<std::string>(*value) : std::nullopt});
      return true;
    }

    Media& m = *media_;
    if (name == "mid") {
      if (!need(name)) return false;
      if (value->find(' ') != std::string_view::npos) return bad("a=mid is not a token");
      return once(m.mid, std::string(*value), name);
    }
    if (name == "rtcp") return need(name) && once(m.rtcp, std::string(*value), name);
    if (name == "rtcp-mux") return flag(m.rtcpMux, value, name);
    if (name == "rtcp-mux-only") return flag(m.rtcpMuxOnly, value, name);
    if (name == "rtcp-rsize") return flag(m.rtcpRsize, value, name);
    if (name == "msid") {
      if (!need(name)) return false;
      auto t = tokens(*value);
      if (t.empty() || t.size() > 2) return bad("a=msid needs a stream id and at most a track id");
      m.msids.push_back({std::string(t[0]), t.size() == 2 ? std::optional<std::string>(t[1]) : std::nullopt});
      return true;
    }
    if (name == "rtpmap") return need(name) && onRtpmap(m, *value);
    if (name == "fmtp") return need(name) && onFmtp(m, *value);
    if (name == "rtcp-fb") return need(name) && onRtcpFb(m, *value);
    if (name == "ssrc") return need(name) && onSsrc(m, *value);
    if (name == "ssrc-group") {
      if (!need(name)) return false;
      auto t = tokens(*value);
      if (t.size() < 2) return bad("a=ssrc-group needs semantics and at least one SSRC");
      SsrcGroup g{std::string(t[0]), {}};
      for (size_t i = 1; i < t.size(); ++i) {
        auto s = number<uint32_t>(t[i]);
        if (!s) return bad("a=ssrc-group: SSRC is not a 32-bit number");
        g.ssrcs.push_back(*s);
      }
      m.ssrcGroups.push_back(std::move(g));
      return true;
    }
    if (name == "rid") return need(name) && onRid(m, *value);
    if (name == "simulcast") return need(name) && onSimulcast(m, *value);
    if (name == "candidate") return need(name) && onCandidate(m, *value);
    if (name == "sctp-port") {
      if (!need(name)) return false;
      auto p = number<uint16_t>(*value);
      if (!p) return bad("a=sctp-port is not a port number");
      return once(m.sctpPort, *p, name);
    }
    if (name == "max-message-size") {
      if (!need(name)) return false;
      auto n = number<uint64_t>(*value);
      if (!n) return bad("a=max-message-size is not a number");
      return once(m.maxMessageSize, *n, name);
    }
    m.others.push_back({std::string(name), value ? std::optional<std::string>(*value) : std::nullopt});
    return true;
  }

  bool onExtmap(CommonAttributes& common, std::string_view value) {
    auto [idDir, rest] = firstToken(value);
    auto [uri, attrs] = firstToken(rest);
    if (uri.empty()) return bad("a=extmap needs an id and a URI");
    Extmap e;
    std::string_view id = idDir;
    if (size_t slash = idDir.find('/'); slash != std::string_view::npos) {
      e.direction = directionNamed(idDir.substr(slash + 1));
      if (!e.direction) return bad("a=extmap direction is not sendrecv, sendonly, recvonly or inactive");
      id = idDir.substr(0, slash);
    }
    // 1-14 one-byte, 1-255 two-byte headers, 4096-4351 for offers (RFC 8285 section 5).
    auto n = number<uint16_t>(id, 4351);
    if (!n || *n == 0 || (*n > 255 && *n < 4096)) return bad("a=extmap id out of range");
    e.id = *n;
    e.uri = std::string(uri);
    e.attributes = std::string(attrs);
    common.extmaps.push_back(std::move(e));
    return true;
  }

  // The codec entry of a payload type, made on first mention.
  Codec* codecFor(Media& m, std::string_view pt) {
    auto n = number<uint8_t>(pt, 127);
    if (!n) {
      bad("payload type is not a number from 0 to 127");
      return nullptr;
    }
    for (auto& c : m.codecs) {
      if (c.payloadType == *n) return &c;
    }
    m.codecs.push_back(Codec{});
    m.codecs.back().payloadType = *n;
    return &m.codecs.back();
  }

  bool onRtpmap(Media& m, std::string_view value) {
    auto t = tokens(value);
    if (t.size() != 2) return bad("a=rtpmap needs a payload type and <name>/<clock rate>");
    Codec* c = codecFor(m, t[0]);
    if (!c) return false;
    if (c->hasRtpmap) return bad("a second a=rtpmap for one payload type");
    std::string_view enc = t[1];
    size_t s1 = enc.find('/');
    if (s1 == std::string_view::npos || s1 == 0) return bad("a=rtpmap needs <name>/<clock rate>");
    std::string_view rate = enc.substr(s1 + 1);
    std::optional<uint32_t> channels;
    if (size_t s2 = rate.find('/'); s2 != std::string_view::npos) {
      channels = number<uint32_t>(rate.substr(s2 + 1));
      if (!channels) return bad("a=rtpmap channels is not a number");
      rate = rate.substr(0, s2);
    }
    auto clock = number<uint32_t>(rate);
    if (!clock) return bad("a=rtpmap clock rate is not a number");
    c->hasRtpmap = true;
    c->name = std::string(enc.substr(0, s1));
    c->clockRate = *clock;
    c->channels = channels;
    return true;
  }

  bool onFmtp(Media& m, std::string_view value) {
    auto [pt, params] = firstToken(value);
    Codec* c = codecFor(m, pt);
    if (!c) return false;
    if (c->fmtp) return bad("a second a=fmtp for one payload type");
    c->fmtp = std::string(params);
    return true;
  }

  bool onRtcpFb(Media& m, std::string_view value) {
    auto [pt, rest] = firstToken(value);
    auto [type, param] = firstToken(rest);
    if (type.empty()) return bad("a=rtcp-fb needs a payload type and a feedback type");
    RtcpFeedback fb{std::string(type), std::string(param)};
    if (pt == "*") {
      m.feedbackAll.push_back(std::move(fb));
      return true;
    }
    Codec* c = codecFor(m, pt);
    if (!c) return false;
    c->feedback.push_back(std::move(fb));
    return true;
  }

  bool onSsrc(Media& m, std::string_view value) {
    auto [id, rest] = firstToken(value);
    auto ssrc = number<uint32_t>(id);
    if (!ssrc) return bad("a=ssrc: SSRC is not a 32-bit number");
    if (rest.empty()) return bad("a=ssrc needs an attribute");
    SsrcAttribute a{*ssrc, std::string(rest), std::nullopt};
    if (size_t colon = rest.find(':'); colon != std::string_view::npos) {
      a.attribute = std::string(rest.substr(0, colon));
      a.value = std::string(rest.substr(colon + 1));
    }
    if (a.attribute.empty()) return bad("a=ssrc needs an attribute name");
    m.ssrcs.push_back(std::move(a));
    return true;
  }

  bool onRid(Media& m, std::string_view value) {
    auto [id, rest] = firstToken(value);
    auto [dir, restrictions] = firstToken(rest);
    Rid r{std::string(id), RidDirection::kSend, std::string(restrictions)};
    if (dir == "send") {
      r.direction = RidDirection::kSend;
    } else if (dir == "recv") {
      r.direction = RidDirection::kRecv;
    } else {
      return bad("a=rid needs an id and send or recv");
    }
    m.rids.push_back(std::move(r));
    return true;
  }

  bool onSimulcast(Media& m, std::string_view value) {
    auto t = tokens(value);
    if (t.empty() || t.size() % 2 != 0) return bad("a=simulcast needs send or recv and a stream list");
    Simulcast sc;
    bool sawSend = false, sawRecv = false;
    for (size_t i = 0; i < t.size(); i += 2) {
      bool send = t[i] == "send";
      if (!send && t[i] != "recv") return bad("a=simulcast direction is not send or recv");
      bool& saw = send ? sawSend : sawRecv;
      if (saw) return bad("a=simulcast names one direction twice");
      saw = true;
      auto& list = send ? sc.send : sc.recv;
      std::string_view streams = t[i + 1];
      while (true) {
        size_t semi = streams.find(';');
        std::string_view stream = streams.substr(0, semi);
        std::vector<SimulcastRid> alts;
        while (true) {
          size_t comma = stream.find(',');
          std::string_view alt = stream.substr(0, comma);
          SimulcastRid r;
          if (!alt.empty() && alt[0] == '~') {
            r.paused = true;
            alt.remove_prefix(1);
          }
          if (alt.empty()) return bad("a=simulcast has an empty rid");
          r.id = std::string(alt);
          alts.push_back(std::move(r));
          if (comma == std::string_view::npos) break;
          stream = stream.substr(comma + 1);
        }
        list.push_back(std::move(alts));
        if (semi == std::string_view::npos) break;
        streams = streams.substr(semi + 1);
      }
    }
    return once(m.simulcast, std::move(sc), "simulcast");
  }

  bool onCandidate(Media& m, std::string_view value) {
    auto t = tokens(value);
    if (t.size() < 8 || t[6] != "typ") return bad("a=candidate needs 8 fields up to typ <type>");
    Candidate c;
    c.foundation = std::string(t[0]);
    auto component = number<uint32_t>(t[1], 256);
    auto priority = number<uint32_t>(t[3]);
    auto port = number<uint16_t>(t[5]);
    if (!component || *component == 0) return bad("a=candidate component is not 1-256");
    if (!priority) return bad("a=candidate priority is not a 32-bit number");
    if (!port) return bad("a=candidate port is not a port number");
    c.component = *component;
    c.transport = std::string(t[2]);
    c.priority = *priority;
    c.address = std::string(t[4]);
    c.port = *port;
    c.type = std::string(t[7]);
    if ((t.size() - 8) % 2 != 0) return bad("a=candidate extension without a value");
    for (size_t i = 8; i < t.size(); i += 2) {
      std::string_view k = t[i], v = t[i + 1];
      if (k == "raddr") {
        if (c.relatedAddress) return bad("a=candidate raddr given twice");
        c.relatedAddress = std::string(v);
      } else if (k == "rport") {
        auto rp = number<uint16_t>(v);
        if (!rp || c.relatedPort) return bad("a=candidate rport is not a port number or given twice");
        c.relatedPort = *rp;
      } else if (k == "tcptype") {
        if (c.tcpType) return bad("a=candidate tcptype given twice");
        c.tcpType = std::string(v);
      } else {
        c.extensions.emplace_back(std::string(k), std::string(v));
      }
    }
    m.candidates.push_back(std::move(c));
    return true;
  }

  const Limits& limits_;
  Description d_;
  // The section being read, in d_.media; only onMedia grows d_.media, and it points this at the new back.
  Media* media_ = nullptr;
  size_t lineNo_ = 0;
  size_t lines_ = 0;
  size_t attributes_ = 0;
  bool sawV_ = false, sawO_ = false, sawS_ = false, sawT_ = false;
  std::optional<Error> error_;
};

}  // namespace

Result<Description> parse(std::string_view text, const Limits& limits) { return Parser(limits).run(text); }

}  // namespace kaiwa::sdp

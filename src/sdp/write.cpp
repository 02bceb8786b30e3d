// The SDP writer and the small accessors of description.hpp. The order of lines follows what Chromium writes, so an
// answer reads like the browser's own; every field goes to one fixed place, which is what makes parse(write(d))
// give d back.
#include <algorithm>

#include "sdp/description.hpp"

namespace kaiwa::sdp {

std::string Error::message() const {
  if (line == 0) return reason;
  return "line " + std::to_string(line) + ": " + reason;
}

std::string_view toString(Direction d) {
  switch (d) {
    case Direction::kSendRecv:
      return "sendrecv";
    case Direction::kSendOnly:
      return "sendonly";
    case Direction::kRecvOnly:
      return "recvonly";
    case Direction::kInactive:
      return "inactive";
  }
  return "inactive";
}

std::string_view toString(Setup s) {
  switch (s) {
    case Setup::kActPass:
      return "actpass";
    case Setup::kActive:
      return "active";
    case Setup::kPassive:
      return "passive";
    case Setup::kHoldConn:
      return "holdconn";
  }
  return "holdconn";
}

Direction reverse(Direction d) {
  if (d == Direction::kSendOnly) return Direction::kRecvOnly;
  if (d == Direction::kRecvOnly) return Direction::kSendOnly;
  return d;
}

namespace {

bool equalNoCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; };
           return lower(x) == lower(y);
         });
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
  return s;
}

}  // namespace

std::optional<std::string_view> Codec::fmtpParameter(std::string_view key) const {
  if (!fmtp) return std::nullopt;
  std::string_view rest = *fmtp;
  while (!rest.empty()) {
    size_t semi = rest.find(';');
    std::string_view item = rest.substr(0, semi);
    rest = semi == std::string_view::npos ? std::string_view{} : rest.substr(semi + 1);
    size_t eq = item.find('=');
    if (eq == std::string_view::npos) continue;
    if (equalNoCase(trim(item.substr(0, eq)), key)) return trim(item.substr(eq + 1));
  }
  return std::nullopt;
}

std::string writeCandidate(const Candidate& c) {
  std::string v = c.foundation + " " + std::to_string(c.component) + " " + c.transport + " " +
                  std::to_string(c.priority) + " " + c.address + " " + std::to_string(c.port) + " typ " + c.type;
  if (c.relatedAddress) v += " raddr " + *c.relatedAddress;
  if (c.relatedPort) v += " rport " + std::to_string(*c.relatedPort);
  if (c.tcpType) v += " tcptype " + *c.tcpType;
  for (const auto& [k, x] : c.extensions) v += " " + k + " " + x;
  return v;
}

bool Media::isRtp() const { return proto.find("RTP") != std::string::npos; }

bool Media::bundleOnly() const {
  return std::any_of(others.begin(), others.end(), [](const Attribute& a) { return a.name == "bundle-only"; });
}

const Codec* Media::codec(uint8_t payloadType) const {
  for (const auto& c : codecs) {
    if (c.payloadType == payloadType) return &c;
  }
  return nullptr;
}

std::optional<std::string_view> Media::cname() const {
  for (const auto& s : ssrcs) {
    if (s.attribute == "cname" && s.value) return std::string_view(*s.value);
  }
  return std::nullopt;
}

const Group* Description::bundle() const {
  for (const auto& g : groups) {
    if (g.semantics == "BUNDLE") return &g;
  }
  return nullptr;
}

const Media* Description::findMid(std::string_view mid) const {
  for (const auto& m : media) {
    if (m.mid && *m.mid == mid) return &m;
  }
  return nullptr;
}

namespace {

class Writer {
 public:
  std::string take() { return std::move(out_); }

  void line(char type, std::string_view value) {
    out_ += type;
    out_ += '=';
    out_ += value;
    out_ += "\r\n";
  }
  // a=<name>[:<value>]
  void attr(std::string_view name, std::optional<std::string_view> value = std::nullopt) {
    out_ += "a=";
    out_ += name;
    if (value) {
      out_ += ':';
      out_ += *value;
    }
    out_ += "\r\n";
  }

  void lines(const std::vector<Line>& ls) {
    for (const auto& l : ls) line(l.type, l.value);
  }

  void connection(const std::optional<Connection>& c) {
    if (c) line('c', c->netType + " " + c->addrType + " " + c->address);
  }

  void ice(const CommonAttributes& c) {
    if (c.iceUfrag) attr("ice-ufrag", *c.iceUfrag);
    if (c.icePwd) attr("ice-pwd", *c.icePwd);
    if (!c.iceOptions.empty()) attr("ice-options", join(c.iceOptions, ' '));
    for (const auto& f : c.fingerprints) attr("fingerprint", f.algorithm + " " + f.value);
    if (c.setup) attr("setup", toString(*c.setup));
  }

  void extmaps(const CommonAttributes& c, bool withAllowMixed = true) {
    if (withAllowMixed && c.extmapAllowMixed) attr("extmap-allow-mixed");
    for (const auto& e : c.extmaps) {
      std::string v = std::to_string(e.id);
      if (e.direction) {
        v += '/';
        v += toString(*e.direction);
      }
      v += ' ';
      v += e.uri;
      if (!e.attributes.empty()) {
        v += ' ';
        v += e.attributes;
      }
      attr("extmap", v);
    }
  }

  void others(const std::vector<Attribute>& as) {
    for (const auto& a : as) {
      attr(a.name, a.value ? std::optional<std::string_view>(*a.value) : std::nullopt);
    }
  }

  void feedback(std::string_view pt, const RtcpFeedback& fb) {
    std::string v(pt);
    v += ' ';
    v += fb.type;
    if (!fb.parameter.empty()) {
      v += ' ';
      v += fb.parameter;
    }
    attr("rtcp-fb", v);
  }

  void candidate(const Candidate& c) { attr("candidate", writeCandidate(c)); }

  void simulcast(const Simulcast& s) {
    auto list = [](const std::vector<std::vector<SimulcastRid>>& streams) {
      std::string v;
      for (size_t i = 0; i < streams.size(); ++i) {
        if (i) v += ';';
        for (size_t j = 0; j < streams[i].size(); ++j) {
          if (j) v += ',';
          if (streams[i][j].paused) v += '~';
          v += streams[i][j].id;
        }
      }
      return v;
    };
    std::string v;
    if (!s.send.empty()) v += "send " + list(s.send);
    if (!s.recv.empty()) v += std::string(v.empty() ? "" : " ") + "recv " + list(s.recv);
    attr("simulcast", v);
  }

  void media(const Media& m) {
    std::string v = m.kind + " " + std::to_string(m.port);
    if (m.portCount) v += "/" + std::to_string(*m.portCount);
    v += " " + m.proto;
    for (const auto& f : m.formats) v += " " + f;
    line('m', v);
    connection(m.connection);
    lines(m.lines);
    if (m.rtcp) attr("rtcp", *m.rtcp);
    for (const auto& c : m.candidates) candidate(c);
    if (m.endOfCandidates) attr("end-of-candidates");
    ice(m);
    if (m.mid) attr("mid", *m.mid);
    extmaps(m);
    if (m.direction) attr(toString(*m.direction));
    for (const auto& ms : m.msids) attr("msid", ms.track ? ms.stream + " " + *ms.track : ms.stream);
    if (m.rtcpMux) attr("rtcp-mux");
    if (m.rtcpMuxOnly) attr("rtcp-mux-only");
    if (m.rtcpRsize) attr("rtcp-rsize");
    for (const auto& c : m.codecs) {
      std::string pt = std::to_string(c.payloadType);
      if (c.hasRtpmap) {
        std::string r = pt + " " + c.name + "/" + std::to_string(c.clockRate);
        if (c.channels) r += "/" + std::to_string(*c.channels);
        attr("rtpmap", r);
      }
      for (const auto& fb : c.feedback) feedback(pt, fb);
      if (c.fmtp) attr("fmtp", c.fmtp->empty() ? pt : pt + " " + *c.fmtp);
    }
    for (const auto& fb : m.feedbackAll) feedback("*", fb);
    for (const auto& g : m.ssrcGroups) {
      std::string s = g.semantics;
      for (auto x : g.ssrcs) s += " " + std::to_string(x);
      attr("ssrc-group", s);
    }
    for (const auto& s : m.ssrcs) {
      std::string x = std::to_string(s.ssrc) + " " + s.attribute;
      if (s.value) x += ":" + *s.value;
      attr("ssrc", x);
    }
    for (const auto& r : m.rids) {
      std::string x = r.id + (r.direction == RidDirection::kSend ? " send" : " recv");
      if (!r.restrictions.empty()) x += " " + r.restrictions;
      attr("rid", x);
    }
    if (m.simulcast) simulcast(*m.simulcast);
    if (m.sctpPort) attr("sctp-port", std::to_string(*m.sctpPort));
    if (m.maxMessageSize) attr("max-message-size", std::to_string(*m.maxMessageSize));
    others(m.others);
  }

  static std::string join(const std::vector<std::string>& xs, char sep) {
    std::string v;
    for (size_t i = 0; i < xs.size(); ++i) {
      if (i) v += sep;
      v += xs[i];
    }
    return v;
  }

 private:
  std::string out_;
};

}  // namespace

std::string write(const Description& d) {
  Writer w;
  w.line('v', "0");
  const Origin& o = d.origin;
  w.line('o', o.username + " " + o.sessionId + " " + o.sessionVersion + " " + o.netType + " " + o.addrType + " " +
                  o.address);
  w.line('s', d.sessionName);
  w.lines(d.lines);
  w.connection(d.connection);
  w.line('t', d.timing);
  w.lines(d.timeLines);
  if (d.iceLite) w.attr("ice-lite");
  for (const auto& g : d.groups) {
    std::string v = g.semantics;
    for (const auto& m : g.mids) v += " " + m;
    w.attr("group", v);
  }
  if (d.extmapAllowMixed) w.attr("extmap-allow-mixed");
  if (d.msidSemantic) {
    std::string v = d.msidSemantic->semantic;
    for (const auto& id : d.msidSemantic->ids) v += " " + id;
    w.attr("msid-semantic", v);
  }
  w.ice(d);
  if (d.direction) w.attr(toString(*d.direction));
  w.extmaps(d, false);
  if (d.endOfCandidates) w.attr("end-of-candidates");
  w.others(d.others);
  for (const auto& m : d.media) w.media(m);
  return w.take();
}

}  // namespace kaiwa::sdp

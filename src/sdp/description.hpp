#pragma once
// Session descriptions (RFC 8866) as WebRTC uses them (JSEP, RFC 8829; BUNDLE, RFC 8843): a structured form, a
// parser over untrusted text and a writer. The parser never throws on its input (an allocation failure aside) and
// reports the first problem as an Error value with its line number; the writer emits CRLF lines in one fixed order,
// so write() of a parsed description parses back to an equal one.
//
// The structured form keeps every line it was given. The attributes kaiwa uses have fields; any other attribute is
// kept as (name, value) in the order it came, and so are session- and media-level lines other than v/o/s/t/c/m/a
// (i, u, e, p, b, r, z, k). rtpmap, fmtp and rtcp-fb lines are gathered per payload type into Codec entries, in the
// order a payload type is first named.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace kaiwa::sdp {

// Why a description was refused, with the 1-based line it was found on (0: the input as a whole).
struct Error {
  size_t line = 0;
  std::string reason;

  // "line 12: a=rtpmap: payload type out of range", or the reason alone for line 0: what WHIP's 400 shows.
  std::string message() const;
  bool operator==(const Error&) const = default;
};

// A value or the Error that prevented it (std::expected is C++23).
template <typename T>
class Result {
 public:
  Result(T value) : v_(std::move(value)) {}           // NOLINT(google-explicit-constructor): a value converts
  Result(Error error) : v_(std::move(error)) {}       // NOLINT(google-explicit-constructor): so does an error
  bool has_value() const { return v_.index() == 0; }  // NOLINT(readability-identifier-naming): std::expected's name
  explicit operator bool() const { return has_value(); }
  T& operator*() { return std::get<0>(v_); }
  const T& operator*() const { return std::get<0>(v_); }
  T* operator->() { return &std::get<0>(v_); }
  const T* operator->() const { return &std::get<0>(v_); }
  const Error& error() const { return std::get<1>(v_); }

 private:
  std::variant<T, Error> v_;
};

enum class Direction : uint8_t { kSendRecv, kSendOnly, kRecvOnly, kInactive };
enum class Setup : uint8_t { kActPass, kActive, kPassive, kHoldConn };

std::string_view toString(Direction d);
std::string_view toString(Setup s);
// The direction the other side takes for this one: sendonly <-> recvonly; sendrecv and inactive stay.
Direction reverse(Direction d);

// A line this model has no field for: `type` is its letter (a line "b=AS:30" is {'b', "AS:30"}).
struct Line {
  char type = 0;
  std::string value;
  bool operator==(const Line&) const = default;
};

// An attribute this model has no field for: "a=name:value", or "a=name" (no value).
struct Attribute {
  std::string name;
  std::optional<std::string> value;
  bool operator==(const Attribute&) const = default;
};

// o=<username> <sess-id> <sess-version> <nettype> <addrtype> <unicast-address>; the numbers are kept as text.
struct Origin {
  std::string username = "-";
  std::string sessionId = "0";
  std::string sessionVersion = "0";
  std::string netType = "IN";
  std::string addrType = "IP4";
  std::string address = "0.0.0.0";
  bool operator==(const Origin&) const = default;
};

// c=<nettype> <addrtype> <connection-address>
struct Connection {
  std::string netType = "IN";
  std::string addrType = "IP4";
  std::string address = "0.0.0.0";
  bool operator==(const Connection&) const = default;
};

// a=group:<semantics> <mid>...
struct Group {
  std::string semantics;
  std::vector<std::string> mids;
  bool operator==(const Group&) const = default;
};

// a=fingerprint:<hash-func> <fingerprint> (RFC 8122)
struct Fingerprint {
  std::string algorithm;
  std::string value;
  bool operator==(const Fingerprint&) const = default;
};

// a=msid-semantic:<semantic> <id>... (Chromium writes a space after the colon; it is not kept.)
struct MsidSemantic {
  std::string semantic;
  std::vector<std::string> ids;
  bool operator==(const MsidSemantic&) const = default;
};

// a=extmap:<id>[/<direction>] <uri> [<extension attributes>] (RFC 8285)
struct Extmap {
  uint16_t id = 0;
  std::optional<Direction> direction;
  std::string uri;
  std::string attributes;  // the rest of the line after the URI, as given (empty if none)
  bool operator==(const Extmap&) const = default;
};

// a=rtcp-fb:<pt> <type> [<parameter>] (RFC 4585); `parameter` is the rest of the line ("pli" of "nack pli").
struct RtcpFeedback {
  std::string type;
  std::string parameter;
  bool operator==(const RtcpFeedback&) const = default;
};

// One payload type of an RTP m-line: its rtpmap, fmtp and rtcp-fb lines.
struct Codec {
  uint8_t payloadType = 0;
  // a=rtpmap:<pt> <name>/<clock rate>[/<channels>]; absent for a static payload type given without rtpmap.
  bool hasRtpmap = false;
  std::string name;
  uint32_t clockRate = 0;
  std::optional<uint32_t> channels;
  // a=fmtp:<pt> <parameters>, as given.
  std::optional<std::string> fmtp;
  std::vector<RtcpFeedback> feedback;

  bool operator==(const Codec&) const = default;
  // The value of `key` in fmtp's "k=v;k=v" list (keys compared without case), if present.
  std::optional<std::string_view> fmtpParameter(std::string_view key) const;
};

// a=ssrc:<ssrc> <attribute>[:<value>] (RFC 5576), one line each, in order.
struct SsrcAttribute {
  uint32_t ssrc = 0;
  std::string attribute;
  std::optional<std::string> value;
  bool operator==(const SsrcAttribute&) const = default;
};

// a=ssrc-group:<semantics> <ssrc>... (FID for RTX, SIM for simulcast)
struct SsrcGroup {
  std::string semantics;
  std::vector<uint32_t> ssrcs;
  bool operator==(const SsrcGroup&) const = default;
};

// a=msid:<stream id> [<track id>] (RFC 8830)
struct Msid {
  std::string stream;
  std::optional<std::string> track;
  bool operator==(const Msid&) const = default;
};

enum class RidDirection : uint8_t { kSend, kRecv };

// a=rid:<id> send|recv [<restrictions>] (RFC 8851); restrictions as given ("pt=96;max-width=1280").
struct Rid {
  std::string id;
  RidDirection direction = RidDirection::kSend;
  std::string restrictions;
  bool operator==(const Rid&) const = default;
};

// One entry of a simulcast stream list; "~" marks it paused.
struct SimulcastRid {
  std::string id;
  bool paused = false;
  bool operator==(const SimulcastRid&) const = default;
};

// a=simulcast:[send <list>] [recv <list>] (RFC 8853): streams separated by ';', alternatives of a stream by ','.
struct Simulcast {
  std::vector<std::vector<SimulcastRid>> send;
  std::vector<std::vector<SimulcastRid>> recv;
  bool operator==(const Simulcast&) const = default;
};

// a=candidate (RFC 8839): <foundation> <component> <transport> <priority> <address> <port> typ <type>
// [raddr <address>] [rport <port>] [tcptype <type>] (<name> <value>)*
struct Candidate {
  std::string foundation;
  uint32_t component = 1;
  std::string transport;  // as written: "udp", "UDP", "tcp"
  uint32_t priority = 0;
  std::string address;
  uint16_t port = 0;
  std::string type;  // host, srflx, prflx, relay
  std::optional<std::string> relatedAddress;
  std::optional<uint16_t> relatedPort;
  std::optional<std::string> tcpType;                           // active, passive, so (RFC 6544)
  std::vector<std::pair<std::string, std::string>> extensions;  // generation 0, network-id 1, ufrag …
  bool operator==(const Candidate&) const = default;
};

// What session and media level share: ICE, DTLS, direction and header extensions may be given at either.
struct CommonAttributes {
  std::optional<std::string> iceUfrag;
  std::optional<std::string> icePwd;
  std::vector<std::string> iceOptions;  // a=ice-options:trickle renomination → {"trickle", "renomination"}
  std::vector<Fingerprint> fingerprints;
  std::optional<Setup> setup;
  std::optional<Direction> direction;
  bool extmapAllowMixed = false;
  std::vector<Extmap> extmaps;
  bool endOfCandidates = false;
  bool operator==(const CommonAttributes&) const = default;
};

// m=<media> <port>[/<count>] <proto> <fmt>... and what follows it up to the next m= line.
struct Media : CommonAttributes {
  std::string kind;  // audio, video, application, or whatever the offer named
  uint16_t port = 0;
  std::optional<uint16_t> portCount;
  std::string proto;
  std::vector<std::string> formats;
  std::vector<Line> lines;  // i=, b=, k=
  std::optional<Connection> connection;
  std::optional<std::string> rtcp;  // a=rtcp:<port> [<address>], as given
  std::optional<std::string> mid;
  std::vector<Msid> msids;
  bool rtcpMux = false;
  bool rtcpMuxOnly = false;
  bool rtcpRsize = false;
  std::vector<Codec> codecs;
  std::vector<RtcpFeedback> feedbackAll;  // a=rtcp-fb:* …
  std::vector<SsrcGroup> ssrcGroups;
  std::vector<SsrcAttribute> ssrcs;
  std::vector<Rid> rids;
  std::optional<Simulcast> simulcast;
  std::vector<Candidate> candidates;
  std::optional<uint16_t> sctpPort;
  std::optional<uint64_t> maxMessageSize;
  std::vector<Attribute> others;

  bool operator==(const Media&) const = default;
  bool isRtp() const;  // proto has RTP in it (RTP/AVP, UDP/TLS/RTP/SAVPF …)
  bool isRejected() const { return port == 0 && !bundleOnly(); }
  bool bundleOnly() const;  // a=bundle-only
  const Codec* codec(uint8_t payloadType) const;
  // The cname of the first a=ssrc line that has one.
  std::optional<std::string_view> cname() const;
};

struct Description : CommonAttributes {
  Origin origin;
  std::string sessionName = "-";
  std::vector<Line> lines;  // i=, u=, e=, p=, b= (written before c= and t=)
  std::optional<Connection> connection;
  std::string timing = "0 0";   // the first t= line
  std::vector<Line> timeLines;  // further t=, r=, z=, k= (written after the first t=)
  bool iceLite = false;
  std::vector<Group> groups;
  std::optional<MsidSemantic> msidSemantic;
  std::vector<Attribute> others;
  std::vector<Media> media;

  bool operator==(const Description&) const = default;
  // The first a=group:BUNDLE, if any.
  const Group* bundle() const;
  // The media section with that mid.
  const Media* findMid(std::string_view mid) const;
};

// Bounds on what parse() accepts; the defaults hold what Chromium and Firefox offer with many tracks.
struct Limits {
  size_t maxBytes = 64 * 1024;
  size_t maxLines = 4096;
  size_t maxMedia = 64;
  size_t maxAttributesPerSection = 1024;  // a= lines in the session part or in one media section
};

// Parses a description; lines end in CRLF or LF (the last may have no end). The first problem is the Error.
Result<Description> parse(std::string_view text, const Limits& limits = {});

// Writes a description: CRLF line ends, one fixed order of lines.
std::string write(const Description& d);

// The value of an a=candidate line (after "candidate:"), as write() gives it.
std::string writeCandidate(const Candidate& c);

}  // namespace kaiwa::sdp

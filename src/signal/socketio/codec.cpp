#include "signal/socketio/codec.hpp"

#include <openssl/rand.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <stdexcept>

#include <boost/json.hpp>
#include <boost/json/basic_parser_impl.hpp>

#include "common/base64.hpp"
#include "common/json.hpp"
#include "common/json_text.hpp"
#include "signal/names.hpp"

namespace kaiwa::signal::socketio {
namespace json = boost::json;
namespace {

constexpr char kRecordSeparator = '\x1e';
constexpr uint64_t kMaxAckId = (uint64_t{1} << 53) - 1;  // Number.MAX_SAFE_INTEGER

bool isDigit(char c) { return c >= '0' && c <= '9'; }

std::optional<EioType> eioType(char c) {
  if (c < '0' || c > '6') return std::nullopt;
  return static_cast<EioType>(c - '0');
}

char digitOf(EioType t) { return static_cast<char>('0' + static_cast<int>(t)); }

void appendNumber(std::string& out, uint64_t n) {
  std::array<char, 24> buf{};
  auto r = std::to_chars(buf.data(), buf.data() + buf.size(), n);
  out.append(buf.data(), r.ptr);
}

// Standard base64 (RFC 4648 section 4, '+' and '/', padding optional) through the base64url decoder.
std::optional<std::string> base64Decode(std::string_view text) {
  std::string url(text);
  for (char& c : url) {
    if (c == '-' || c == '_') return std::nullopt;
    if (c == '+') c = '-';
    if (c == '/') c = '_';
  }
  return common::base64UrlDecode(url);
}

// One polling part or one text frame: "<digit><data>".
std::optional<EioPacket> decodeText(std::string_view text) {
  if (text.empty()) return std::nullopt;
  auto type = eioType(text[0]);
  if (!type) return std::nullopt;
  EioPacket p;
  p.type = *type;
  p.data.assign(text.substr(1));
  return p;
}

bool isBinary(SioType t) { return t == SioType::kBinaryEvent || t == SioType::kBinaryAck; }

bool validData(SioType type, const std::optional<json::value>& data) {
  switch (type) {
    case SioType::kConnect:
      return !data || data->is_object();
    case SioType::kDisconnect:
      return !data;
    case SioType::kEvent:
    case SioType::kBinaryEvent:
      return data && data->is_array() && !data->get_array().empty() && data->get_array()[0].is_string();
    case SioType::kAck:
    case SioType::kBinaryAck:
      return data && data->is_array();
    case SioType::kConnectError:
      return data && (data->is_object() || data->is_string());
  }
  return false;
}

}  // namespace

// ---------------------------------------------------------------------------------------------------- Engine.IO

std::optional<EioPacket> decodeFrame(std::string_view frame, bool binaryFrame) {
  if (binaryFrame) {
    EioPacket p;
    p.type = EioType::kMessage;
    p.binary = true;
    p.data.assign(frame);
    return p;
  }
  return decodeText(frame);
}

std::string encodeFrame(const EioPacket& p) {
  if (p.binary) return p.data;
  std::string out;
  out.reserve(1 + p.data.size());
  out.push_back(digitOf(p.type));
  out += p.data;
  return out;
}

std::optional<std::vector<EioPacket>> decodePayload(std::string_view body, std::size_t maxPackets) {
  std::vector<EioPacket> packets;
  while (true) {
    if (packets.size() >= maxPackets) return std::nullopt;
    std::size_t end = body.find(kRecordSeparator);
    std::string_view part = body.substr(0, end);
    if (!part.empty() && part[0] == 'b') {
      auto bytes = base64Decode(part.substr(1));
      if (!bytes) return std::nullopt;
      EioPacket p;
      p.type = EioType::kMessage;
      p.binary = true;
      p.data = std::move(*bytes);
      packets.push_back(std::move(p));
    } else {
      auto p = decodeText(part);
      if (!p) return std::nullopt;
      packets.push_back(std::move(*p));
    }
    if (end == std::string_view::npos) break;
    body.remove_prefix(end + 1);
  }
  return packets;
}

void appendToPayload(std::string& body, const EioPacket& p) {
  if (!body.empty()) body.push_back(kRecordSeparator);
  if (p.binary) {
    body.push_back('b');
    body += common::base64Encode({reinterpret_cast<const uint8_t*>(p.data.data()), p.data.size()});
  } else {
    body.push_back(digitOf(p.type));
    body += p.data;
  }
}

std::string encodeOpenData(std::string_view sid, bool offerWebSocketUpgrade, int64_t pingIntervalMs,
                           int64_t pingTimeoutMs, std::size_t maxPayload) {
  std::string out;
  out.reserve(112 + sid.size());
  out += R"({"sid":)";
  common::appendJsonString(out, sid);
  out += offerWebSocketUpgrade ? R"(,"upgrades":["websocket"])" : R"(,"upgrades":[])";
  out += R"(,"pingInterval":)";
  out += std::to_string(pingIntervalMs);
  out += R"(,"pingTimeout":)";
  out += std::to_string(pingTimeoutMs);
  out += R"(,"maxPayload":)";
  appendNumber(out, maxPayload);
  out += '}';
  return out;
}

std::string encodeError(EioError code) {
  switch (code) {
    case EioError::kUnknownTransport:
      return R"({"code":0,"message":"Transport unknown"})";
    case EioError::kUnknownSid:
      return R"({"code":1,"message":"Session ID unknown"})";
    case EioError::kBadHandshakeMethod:
      return R"({"code":2,"message":"Bad handshake method"})";
    case EioError::kBadRequest:
      return R"({"code":3,"message":"Bad request"})";
    case EioError::kForbidden:
      return R"({"code":4,"message":"Forbidden"})";
    case EioError::kUnsupportedProtocolVersion:
      return R"({"code":5,"message":"Unsupported protocol version"})";
  }
  return R"({"code":3,"message":"Bad request"})";
}

// ---------------------------------------------------------------------------------------------------- Socket.IO

// <type>[<attachments>-][<namespace>,][<ack id>][<JSON>]
std::optional<SioPacket> decodePacket(std::string_view text, const SioLimits& limits) {
  if (text.empty() || text[0] < '0' || text[0] > '6') return std::nullopt;
  SioPacket p;
  p.type = static_cast<SioType>(text[0] - '0');
  std::size_t i = 1;
  const std::size_t n = text.size();

  if (isBinary(p.type)) {
    std::size_t start = i;
    std::size_t count = 0;
    for (; i < n && isDigit(text[i]); ++i) {
      if (count > (SIZE_MAX - 9) / 10) return std::nullopt;
      count = count * 10 + static_cast<std::size_t>(text[i] - '0');
      if (count > limits.maxAttachments) return std::nullopt;  // also keeps `count` far from overflow
    }
    if (i == start || i == n || text[i] != '-' || count == 0) return std::nullopt;
    ++i;
    p.attachments = count;
  }

  // The namespace ends at ',' or, as socket-io-parser reads it, at the end of the packet ("40/admin" is a CONNECT
  // to /admin).
  if (i < n && text[i] == '/') {
    std::size_t comma = std::min(text.find(',', i), n);
    p.nsp.assign(text.substr(i, comma - i));
    i = comma == n ? n : comma + 1;
  }

  if (i < n && isDigit(text[i])) {
    uint64_t id = 0;
    for (; i < n && isDigit(text[i]); ++i) {
      id = id * 10 + static_cast<uint64_t>(text[i] - '0');
      if (id > kMaxAckId) return std::nullopt;
    }
    p.ackId = id;
  }

  if (i < n) {
    json::parse_options opts;
    opts.max_depth = limits.maxJsonDepth;
    std::error_code ec;
    std::string_view rest = text.substr(i);
    // json::parse refuses anything after the value (whitespace aside): trailing garbage is an error here.
    json::value v = json::parse(json::string_view(rest.data(), rest.size()), ec, {}, opts);
    if (ec || !common::finiteNumbers(v)) return std::nullopt;
    p.data = std::move(v);
  }
  if (!validData(p.type, p.data)) return std::nullopt;
  return p;
}

std::string encodePacket(const SioPacket& p) {
  std::string out;
  out.push_back(static_cast<char>('0' + static_cast<int>(p.type)));
  if (isBinary(p.type)) {
    appendNumber(out, p.buffers.size());
    out.push_back('-');
  }
  if (!p.nsp.empty() && p.nsp != "/") {
    out += p.nsp;
    out.push_back(',');
  }
  if (p.ackId) appendNumber(out, *p.ackId);
  if (p.data) out += json::serialize(*p.data);
  return out;
}

std::string encodeEvent(std::string_view event, std::string_view argsJson, std::optional<uint64_t> ackId) {
  std::string out;
  out.reserve(event.size() + argsJson.size() + 28);
  out.push_back('2');
  if (ackId) appendNumber(out, *ackId);
  out.push_back('[');
  common::appendJsonString(out, event);
  if (!argsJson.empty()) {
    out.push_back(',');
    out += argsJson;
  }
  out.push_back(']');
  return out;
}

std::string encodeAck(uint64_t ackId, std::string_view argsJson) {
  std::string out;
  out.reserve(argsJson.size() + 24);
  out.push_back('3');
  appendNumber(out, ackId);
  out.push_back('[');
  out += argsJson;
  out.push_back(']');
  return out;
}

// ------------------------------------------------------------------------------------------ relayed events

EventRule ruleOf(std::string_view event, bool relayUnknown) {
  if (event == "offer" || event == "answer" || event == "ice-candidate") return {EventRoute::kDirected, event};
  if (event == "call-user") return {EventRoute::kBroadcast, "call-made"};
  if (event == "answer-call") return {EventRoute::kBroadcast, "call-answered"};
  if (event == "signal") return {EventRoute::kBroadcast, "signal"};
  if (event == "join-room" || event == "leave-room" || event == "toggle-audio" || event == "toggle-video") return {};
  if (relayUnknown) return {EventRoute::kBroadcast, event};
  return {};
}

namespace {

// The basic_parser handler of decodeRelayEvent: checks the packet's JSON as the DOM parse would, and writes the
// receivers' array while it reads it. Element 0 of the root array is the event name; element 1, when an object, is
// the event's body, whose members `to` (directed) and `from` are taken out. Anything the fast path does not take
// stops the parse (abandon), and the caller falls back to decodePacket().
class RelayScanner {
 public:
  static constexpr std::size_t max_object_size = std::size_t(-1);
  static constexpr std::size_t max_array_size = std::size_t(-1);
  static constexpr std::size_t max_key_size = std::size_t(-1);
  static constexpr std::size_t max_string_size = std::size_t(-1);

  RelayScanner(std::string_view input, RelayEvent& ev, std::string_view from, bool relayUnknown)
      : ev_(ev), echo_(input, ev.frame), from_(from), relayUnknown_(relayUnknown) {}

  bool on_document_begin(json::error_code&) { return true; }
  bool on_document_end(json::error_code&) { return true; }
  bool on_comment_part(json::string_view, json::error_code&) { return true; }
  bool on_comment(json::string_view, json::error_code&) { return true; }

  bool on_object_begin(json::error_code& ec) {
    if (!begin(Kind::kObject, ec)) return false;
    const bool body = depth_ == 1 && index_ == 1;
    if (echoing()) echo_.open('{');
    if (body) {
      inBody_ = true;
      if (ev_.route == EventRoute::kDirected) injectFrom();
    }
    ++depth_;
    return true;
  }
  bool on_object_end(std::size_t, json::error_code&) {
    --depth_;
    if (depth_ == 1 && inBody_) {
      inBody_ = false;
      member_ = Member::kEcho;
      if (ev_.route == EventRoute::kBroadcast) injectFrom();
    }
    if (echoing()) echo_.close('}');
    end();
    return true;
  }
  bool on_array_begin(json::error_code& ec) {
    if (!begin(Kind::kArray, ec)) return false;
    if (echoing()) echo_.open('[');
    ++depth_;
    return true;
  }
  bool on_array_end(std::size_t, json::error_code&) {
    --depth_;
    if (echoing()) echo_.close(']');
    end();
    return true;
  }

  bool on_key_part(json::string_view s, std::size_t, json::error_code&) {
    key(s);
    return true;
  }
  bool on_key(json::string_view s, std::size_t, json::error_code& ec) {
    if (!bodyMember()) {
      key(s);
      if (echoing()) echo_.keyEnd();
      return true;
    }
    // A member of the body: the whole key is known only now. Most keys come in one piece, a view of the input.
    std::string_view whole(s.data(), s.size());
    if (!key_.empty()) {
      key_.append(whole);
      whole = key_;
    }
    const bool directed = ev_.route == EventRoute::kDirected;
    if (whole == "from") {
      member_ = Member::kSkip;
    } else if (whole == "to" && directed) {
      member_ = Member::kTo;
    } else if (whole == "_placeholder" && !directed) {
      return abandon(ec);  // a Buffer's stand-in gets no `from` (onBroadcast decides with the DOM)
    } else {
      member_ = Member::kEcho;
      echo_.keyPart(whole);
      echo_.keyEnd();
    }
    key_.clear();
    return true;
  }

  bool on_string_part(json::string_view s, std::size_t, json::error_code& ec) { return string(s, ec); }
  bool on_string(json::string_view s, std::size_t, json::error_code& ec) {
    if (!string(s, ec)) return false;
    inValue_ = false;
    if (depth_ == 1 && index_ == 0) {
      EventRule rule = ruleOf(ev_.event, relayUnknown_);
      if (rule.route == EventRoute::kOther) return abandon(ec);
      ev_.route = rule.route;
      ev_.relayedAs = rule.relayedAs;
      echo_.string(ev_.relayedAs);
    } else if (bodyMember() && member_ == Member::kTo) {
      sawTo_ = true;
    } else if (echoing()) {
      echo_.stringEnd();
    }
    end();
    return true;
  }

  bool on_number_part(json::string_view s, json::error_code& ec) { return number(s, ec); }
  bool on_int64(int64_t, json::string_view s, json::error_code& ec) { return numberEnd(s, ec); }
  bool on_uint64(uint64_t, json::string_view s, json::error_code& ec) { return numberEnd(s, ec); }
  bool on_double(double d, json::string_view s, json::error_code& ec) {
    if (!std::isfinite(d)) return abandon(ec);  // 1e400: no JSON text for it (decodePacket refuses the packet)
    return numberEnd(s, ec);
  }
  bool on_bool(bool b, json::error_code& ec) { return literal(b ? "true" : "false", ec); }
  bool on_null(json::error_code& ec) { return literal("null", ec); }

  bool complete() const {
    if (index_ < 1) return false;  // no event name
    if (ev_.route == EventRoute::kDirected) return sawTo_;
    return true;
  }

 private:
  enum class Kind : uint8_t { kString, kNumber, kLiteral, kObject, kArray };
  enum class Member : uint8_t { kEcho, kSkip, kTo };

  bool abandon(json::error_code& ec) {
    ec = json::error::syntax;  // any error stops the parser; the caller treats them all alike
    return false;
  }

  // A value starts: checks that its kind is what the fast path takes in its place.
  bool begin(Kind k, json::error_code& ec) {
    if (depth_ == 0) return k == Kind::kArray || abandon(ec);
    if (depth_ == 1 && index_ == 0) return k == Kind::kString || abandon(ec);
    if (depth_ == 1 && index_ == 1 && ev_.route == EventRoute::kDirected) return k == Kind::kObject || abandon(ec);
    if (bodyMember() && member_ == Member::kTo) {
      if (k != Kind::kString) return abandon(ec);
      ev_.target.clear();  // the last `to` counts
    }
    return true;
  }
  // A value ended at the current depth.
  void end() {
    if (depth_ == 1) ++index_;
  }

  // In the body, at the level of its members (not inside one of their values).
  bool bodyMember() const { return inBody_ && depth_ == 2; }
  // Whether what is read now is written: not the event name, not a member taken out of the body.
  bool echoing() const {
    if (depth_ == 1 && index_ == 0) return false;
    return !(inBody_ && depth_ >= 2 && member_ != Member::kEcho);
  }

  void injectFrom() { echo_.member("from", from_); }

  void key(json::string_view s) {
    if (bodyMember()) {
      key_.append(s.data(), s.size());  // decided on at on_key
    } else if (echoing()) {
      echo_.keyPart(std::string_view(s.data(), s.size()));
    }
  }

  bool string(json::string_view s, json::error_code& ec) {
    if (!inValue_) {
      if (!begin(Kind::kString, ec)) return false;
      inValue_ = true;
    }
    if (depth_ == 1 && index_ == 0) {
      ev_.event.append(s.data(), s.size());
    } else if (bodyMember() && member_ == Member::kTo) {
      ev_.target.append(s.data(), s.size());
    } else if (echoing()) {
      echo_.stringPart(std::string_view(s.data(), s.size()));
    }
    return true;
  }

  bool number(json::string_view s, json::error_code& ec) {
    if (!inValue_) {
      if (!begin(Kind::kNumber, ec)) return false;
      inValue_ = true;
    }
    if (echoing()) echo_.numberPart(std::string_view(s.data(), s.size()));
    return true;
  }
  bool numberEnd(json::string_view s, json::error_code& ec) {
    if (!number(s, ec)) return false;
    inValue_ = false;
    if (echoing()) echo_.numberEnd();
    end();
    return true;
  }

  bool literal(std::string_view text, json::error_code& ec) {
    if (!begin(Kind::kLiteral, ec)) return false;
    if (echoing()) echo_.literal(text);
    end();
    return true;
  }

  RelayEvent& ev_;
  common::JsonEcho echo_;
  std::string_view from_;
  std::string key_;  // a key of the body that came in pieces, until its end
  std::size_t depth_ = 0;
  std::size_t index_ = 0;  // of the current element of the root array
  Member member_ = Member::kEcho;
  bool relayUnknown_;
  bool inBody_ = false;
  bool inValue_ = false;  // a string or number that arrives in pieces
  bool sawTo_ = false;
};

}  // namespace

std::optional<RelayEvent> decodeRelayEvent(std::string_view text, std::string_view from, bool relayUnknown,
                                           const SioLimits& limits) {
  // 2[<ack id>]<JSON>: no namespace (a packet with one goes the long way), no attachments.
  if (text.size() < 2 || text[0] != '2') return std::nullopt;
  RelayEvent ev;
  std::size_t i = 1;
  if (isDigit(text[i])) {
    uint64_t id = 0;
    for (; i < text.size() && isDigit(text[i]); ++i) {
      id = id * 10 + static_cast<uint64_t>(text[i] - '0');
      if (id > kMaxAckId) return std::nullopt;
    }
    ev.ackId = id;
  }
  if (i >= text.size() || text[i] != '[') return std::nullopt;
  std::string_view body = text.substr(i);
  ev.frame.reserve(body.size() + from.size() + 16);
  ev.frame = "42";
  json::parse_options opts;
  opts.max_depth = limits.maxJsonDepth;
  json::basic_parser<RelayScanner> parser(opts, body, ev, from, relayUnknown);
  json::error_code ec;
  std::size_t used = parser.write_some(false, body.data(), body.size(), ec);
  if (ec || used < body.size() || !parser.handler().complete()) return std::nullopt;
  return ev;
}

// ------------------------------------------------------------------------------------------ BinaryAssembler

std::optional<SioPacket> BinaryAssembler::start(SioPacket p) {
  reset();  // a packet still waiting is dropped (the reference decoder refuses this; the session decides)
  p.buffers.clear();
  if (p.attachments == 0) return p;
  p.buffers.reserve(std::min<std::size_t>(p.attachments, 64));
  pending_ = std::move(p);
  return std::nullopt;
}

BinaryAssembler::Result BinaryAssembler::add(std::string bytes, SioPacket& completed) {
  if (!pending_) return Result::kError;
  if (bytes.size() > maxBytes_ - bytes_) {
    reset();
    return Result::kError;
  }
  bytes_ += bytes.size();
  pending_->buffers.push_back(std::move(bytes));
  if (pending_->buffers.size() < pending_->attachments) return Result::kNeedMore;
  completed = std::move(*pending_);
  reset();
  return Result::kComplete;
}

std::string randomSocketId() {
  std::array<uint8_t, 15> bytes{};  // 15 bytes: exactly 20 base64url characters, no padding
  if (RAND_bytes(bytes.data(), static_cast<int>(bytes.size())) != 1) {
    throw std::runtime_error("RAND_bytes failed");
  }
  return common::base64UrlEncode(bytes);
}

}  // namespace kaiwa::signal::socketio

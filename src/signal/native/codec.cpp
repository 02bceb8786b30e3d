#include "signal/native/codec.hpp"

#include <fmt/format.h>
#include <boost/json/basic_parser_impl.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "common/json_text.hpp"
#include "signal/names.hpp"

namespace kaiwa::signal::native {
namespace json = boost::json;
using common::appendJsonString;
using namespace std::string_view_literals;
namespace {

constexpr std::size_t kMaxChatChars = 4096;

// Counts UTF-8 code points (Boost.JSON has already checked the encoding of parsed strings).
std::size_t codePoints(std::string_view s) {
  std::size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

// key == literal, with a compare of constant size the compiler inlines.
template <std::size_t N>
bool is(std::string_view key, const char (&literal)[N]) {
  return key.size() == N - 1 && std::memcmp(key.data(), literal, N - 1) == 0;
}

// The fields of a request as one pass of Boost.JSON's validating parser saw them, without a DOM. A field that
// appears twice counts with its last value, as it would in a parsed object. `data` is written out as JSON text while
// it is parsed; everything else in the message is validated and skipped.
class Scanner {
 public:
  // What a top-level field held, the last time it appeared.
  enum class Kind : uint8_t { kAbsent, kString, kInt64, kUint64, kDouble, kBool, kNull, kObject, kArray };
  enum class Field : uint8_t {
    kOther,
    kId,
    kV,
    kType,
    kRoom,
    kName,
    kToken,
    kPeer,
    kResume,
    kTo,
    kText,
    kState,
    kData,
    kMedia
  };
  enum class Flag : uint8_t { kNone, kAudioMuted, kVideoOff, kScreenSharing };
  static constexpr std::size_t kFields = 14;
  static constexpr std::size_t kFlags = 4;

  // The basic_parser's handler interface.
  static constexpr std::size_t max_object_size = std::size_t(-1);
  static constexpr std::size_t max_array_size = std::size_t(-1);
  static constexpr std::size_t max_key_size = std::size_t(-1);
  static constexpr std::size_t max_string_size = std::size_t(-1);

  // `input`: the whole text being parsed; `data` receives the text of `data`.
  Scanner(std::string_view input, std::string& data) : input_(input), data_(data), echo_(input, data) {}

  bool on_document_begin(json::error_code&) { return true; }
  bool on_document_end(json::error_code&) { return true; }
  bool on_object_begin(json::error_code&) {
    if (depth_ == 0) rootObject_ = true;
    open(Kind::kObject, '{');
    return true;
  }
  bool on_object_end(std::size_t, json::error_code&) {
    close('}');
    return true;
  }
  bool on_array_begin(json::error_code&) {
    open(Kind::kArray, '[');
    return true;
  }
  bool on_array_end(std::size_t, json::error_code&) {
    close(']');
    return true;
  }
  bool on_key_part(json::string_view s, std::size_t, json::error_code&) {
    keyPart(s);
    return true;
  }
  bool on_key(json::string_view s, std::size_t, json::error_code&) {
    keyPart(s);
    keyEnd();
    return true;
  }
  bool on_string_part(json::string_view s, std::size_t, json::error_code&) {
    stringPart(s);
    return true;
  }
  bool on_string(json::string_view s, std::size_t, json::error_code&) {
    stringPart(s);
    inString_ = false;
    if (emitting()) echo_.stringEnd();
    return true;
  }
  bool on_number_part(json::string_view s, json::error_code&) {
    numberPart(s);
    return true;
  }
  bool on_int64(int64_t i, json::string_view s, json::error_code&) {
    numberPart(s);
    numberEnd(Kind::kInt64);
    if (depth_ == 1) ints_[index()] = i;
    return true;
  }
  bool on_uint64(uint64_t u, json::string_view s, json::error_code&) {
    numberPart(s);
    numberEnd(Kind::kUint64);
    if (depth_ == 1) uints_[index()] = u;
    return true;
  }
  bool on_double(double d, json::string_view s, json::error_code&) {
    numberPart(s);
    numberEnd(Kind::kDouble);
    // 1e400 parses as infinity, which has no JSON text: refuse rather than relay something invalid.
    if (emitting() && !std::isfinite(d)) dataOutOfRange_ = true;
    return true;
  }
  bool on_bool(bool b, json::error_code&) {
    value(Kind::kBool);
    if (depth_ == 2 && field_ == Field::kState) flags_[static_cast<std::size_t>(flag_)] = b;
    if (emitting()) echo_.literal(b ? "true"sv : "false"sv);
    return true;
  }
  bool on_null(json::error_code&) {
    value(Kind::kNull);
    if (emitting()) echo_.literal("null"sv);
    return true;
  }
  bool on_comment_part(json::string_view, json::error_code&) { return true; }
  bool on_comment(json::string_view, json::error_code&) { return true; }

  // Results, once the parse succeeded.
  bool rootObject() const { return rootObject_; }
  Kind kind(Field f) const { return kinds_[static_cast<std::size_t>(f)]; }
  int64_t int64(Field f) const { return ints_[static_cast<std::size_t>(f)]; }
  uint64_t uint64(Field f) const { return uints_[static_cast<std::size_t>(f)]; }
  // The text of a string field (valid while kind(f) is kString).
  std::string& text(Field f) { return strings_[static_cast<std::size_t>(f)]; }
  Kind flagKind(Flag f) const { return flagKinds_[static_cast<std::size_t>(f)]; }
  bool flag(Flag f) const { return flags_[static_cast<std::size_t>(f)]; }
  bool dataOutOfRange() const { return dataOutOfRange_; }

 private:
  std::size_t index() const { return static_cast<std::size_t>(field_); }
  // Inside the value of the top-level `data`: its JSON text is being written to data_.
  bool emitting() const { return field_ == Field::kData && depth_ >= 1; }

  // Bookkeeping for a value that starts now: a top-level field's kind, or the kind of a state flag.
  void value(Kind k) {
    if (depth_ == 1 && rootObject_) {
      kinds_[index()] = k;
    } else if (depth_ == 2 && field_ == Field::kState) {
      flagKinds_[static_cast<std::size_t>(flag_)] = k;
    }
  }

  void open(Kind k, char bracket) {
    value(k);
    if (depth_ == 1 && field_ == Field::kState && k == Kind::kObject) {
      flagKinds_ = {};  // a later "state" replaces an earlier one
    }
    if (emitting()) echo_.open(bracket);
    ++depth_;
  }

  void close(char bracket) {
    --depth_;
    if (emitting()) echo_.close(bracket);
  }

  void keyPart(json::string_view s) {
    if (depth_ == 1 || (depth_ == 2 && field_ == Field::kState)) {
      if (keyLength_ + s.size() > sizeof(key_)) {
        keyLength_ = sizeof(key_) + 1;  // longer than any name we look for
      } else {
        std::memcpy(key_ + keyLength_, s.data(), s.size());
        keyLength_ += s.size();
      }
    } else if (emitting()) {
      echo_.keyPart(std::string_view(s.data(), s.size()));
    }
  }

  void keyEnd() {
    if (depth_ == 1 || (depth_ == 2 && field_ == Field::kState)) {
      std::string_view key = keyLength_ <= sizeof(key_) ? std::string_view(key_, keyLength_) : std::string_view();
      keyLength_ = 0;
      if (depth_ == 1) {
        if (!rootObject_) return;
        field_ = fieldOf(key);
        if (field_ == Field::kData) {  // a later "data" replaces an earlier one
          data_.clear();
          echo_.restart();
          data_.reserve(input_.size());  // most often enough: only \b and \f grow when written out again
          dataOutOfRange_ = false;
        }
      } else {
        flag_ = flagOf(key);
      }
    } else if (emitting()) {
      echo_.keyEnd();
    }
  }

  void stringPart(json::string_view s) {
    if (emitting()) {
      if (!inString_) {
        inString_ = true;
        value(Kind::kString);
      }
      echo_.stringPart(std::string_view(s.data(), s.size()));
      return;
    }
    const bool field = depth_ == 1 && rootObject_ && field_ != Field::kOther;
    if (!inString_) {
      inString_ = true;
      value(Kind::kString);
      if (field) strings_[index()].clear();
    }
    if (field) strings_[index()].append(s.data(), s.size());
  }

  void numberPart(json::string_view s) {
    if (emitting()) echo_.numberPart(std::string_view(s.data(), s.size()));
  }

  void numberEnd(Kind k) {
    if (emitting()) echo_.numberEnd();
    value(k);
  }

  static Field fieldOf(std::string_view key) {
    switch (key.size()) {
      case 1:
        return is(key, "v") ? Field::kV : Field::kOther;
      case 2:
        return is(key, "id") ? Field::kId : is(key, "to") ? Field::kTo : Field::kOther;
      case 4:
        if (is(key, "type")) return Field::kType;
        if (is(key, "data")) return Field::kData;
        if (is(key, "room")) return Field::kRoom;
        if (is(key, "name")) return Field::kName;
        if (is(key, "peer")) return Field::kPeer;
        if (is(key, "text")) return Field::kText;
        return Field::kOther;
      case 5:
        if (is(key, "token")) return Field::kToken;
        if (is(key, "state")) return Field::kState;
        if (is(key, "media")) return Field::kMedia;
        return Field::kOther;
      case 6:
        return is(key, "resume") ? Field::kResume : Field::kOther;
      default:
        return Field::kOther;
    }
  }

  static Flag flagOf(std::string_view key) {
    if (is(key, "audioMuted")) return Flag::kAudioMuted;
    if (is(key, "videoOff")) return Flag::kVideoOff;
    if (is(key, "screenSharing")) return Flag::kScreenSharing;
    return Flag::kNone;
  }

  std::string_view input_;
  std::string& data_;
  common::JsonEcho echo_;  // writes `data` to data_
  std::array<Kind, kFields> kinds_{};
  std::array<int64_t, kFields> ints_{};
  std::array<uint64_t, kFields> uints_{};
  std::array<std::string, kFields> strings_;
  std::array<Kind, kFlags> flagKinds_{};
  std::array<bool, kFlags> flags_{};
  std::size_t depth_ = 0;  // containers open around the current event
  std::size_t keyLength_ = 0;
  char key_[16];                 // the top-level or state key being read
  Field field_ = Field::kOther;  // the top-level field whose value is being read
  Flag flag_ = Flag::kNone;      // the state flag whose value is being read
  bool rootObject_ = false;
  bool inString_ = false;
  bool dataOutOfRange_ = false;
};

std::optional<RequestType> typeOf(std::string_view t) {
  if (is(t, "message")) return RequestType::kMessage;
  if (is(t, "signal")) return RequestType::kSignal;
  if (is(t, "ping")) return RequestType::kPing;
  if (is(t, "state")) return RequestType::kState;
  if (is(t, "chat")) return RequestType::kChat;
  if (is(t, "join")) return RequestType::kJoin;
  if (is(t, "resume")) return RequestType::kResume;
  if (is(t, "leave")) return RequestType::kLeave;
  if (is(t, "publish")) return RequestType::kPublish;
  if (is(t, "subscribe-answer")) return RequestType::kSubscribeAnswer;
  if (is(t, "unpublish")) return RequestType::kUnpublish;
  if (is(t, "subscribe-restart")) return RequestType::kSubscribeRestart;
  if (is(t, "record-start")) return RequestType::kRecordStart;
  if (is(t, "record-stop")) return RequestType::kRecordStop;
  if (is(t, "tile-size")) return RequestType::kTileSize;
  return std::nullopt;
}

bool validSource(std::string_view s) {
  return s == "camera" || s == "microphone" || s == "screen" || s == "screen-audio";
}

// The SFU's requests are rare (a few per member and call) and carry an SDP and a list: they are read from a parsed
// object, not by the scanner. Sets `message` and returns false when a field is missing or of the wrong type.
bool decodeSfu(std::string_view text, Request& req, std::string& message) {
  json::parse_options opts;
  opts.max_depth = 32;
  json::error_code ec;
  json::value doc = json::parse(text, ec, {}, opts);
  const json::object* o = ec ? nullptr : doc.if_object();
  if (o == nullptr) {
    message = "a message must be a JSON object";
    return false;
  }
  auto sdp = [&] {
    const json::value* v = o->if_contains("sdp");
    if (v == nullptr || !v->is_string()) {
      message = v ? "field 'sdp' must be a string" : "missing field 'sdp'";
      return false;
    }
    req.sdp = std::string(v->get_string());
    return true;
  };
  switch (req.type) {
    case RequestType::kPublish: {
      if (!sdp()) return false;
      const json::value* v = o->if_contains("tracks");
      if (v == nullptr || !v->is_array()) {
        message = v ? "field 'tracks' must be an array" : "missing field 'tracks'";
        return false;
      }
      constexpr std::size_t kMaxListed = 64;  // the publisher limit is checked later, with its own error code
      if (v->get_array().size() > kMaxListed) {
        message = "too many entries in 'tracks'";
        return false;
      }
      for (const json::value& t : v->get_array()) {
        const json::object* to = t.if_object();
        const json::value* mid = to ? to->if_contains("mid") : nullptr;
        const json::value* source = to ? to->if_contains("source") : nullptr;
        if (mid == nullptr || !mid->is_string() || source == nullptr || !source->is_string() ||
            !validSource(source->get_string())) {
          message = "each track must be {mid, source} with source camera, microphone, screen or screen-audio";
          return false;
        }
        req.tracks.push_back({std::string(mid->get_string()), std::string(source->get_string())});
      }
      return true;
    }
    case RequestType::kSubscribeAnswer: {
      if (!sdp()) return false;
      const json::value* v = o->if_contains("version");
      if (v == nullptr || !(v->is_int64() || v->is_uint64()) || (v->is_int64() && v->get_int64() < 0)) {
        message = "field 'version' must be a non-negative integer";
        return false;
      }
      req.version = v->is_int64() ? uint64_t(v->get_int64()) : v->get_uint64();
      return true;
    }
    case RequestType::kTileSize: {
      const json::value* v = o->if_contains("tiles");
      if (v == nullptr || !v->is_array()) {
        message = v ? "field 'tiles' must be an array" : "missing field 'tiles'";
        return false;
      }
      if (v->get_array().size() > kMaxTileSizes) {
        message = "too many entries in 'tiles'";
        return false;
      }
      auto dimension = [](const json::value* d) -> std::optional<uint16_t> {
        if (d == nullptr) return std::nullopt;
        if (d->is_int64() && d->get_int64() >= 0 && d->get_int64() <= 65535) return uint16_t(d->get_int64());
        if (d->is_uint64() && d->get_uint64() <= 65535) return uint16_t(d->get_uint64());
        return std::nullopt;
      };
      for (const json::value& t : v->get_array()) {
        const json::object* to = t.if_object();
        const json::value* mid = to ? to->if_contains("mid") : nullptr;
        const auto width = dimension(to ? to->if_contains("width") : nullptr);
        const auto height = dimension(to ? to->if_contains("height") : nullptr);
        if (mid == nullptr || !mid->is_string() || mid->get_string().empty() || mid->get_string().size() > 32 ||
            !width || !height) {
          message = "each tile must be {mid, width, height}: a mid of 1-32 characters, sizes 0-65535";
          return false;
        }
        req.tiles.push_back({std::string(mid->get_string()), *width, *height});
      }
      return true;
    }
    default:
      return true;
  }
}

}  // namespace

DecodeResult decode(std::string_view text) {
  using Field = Scanner::Field;
  using Kind = Scanner::Kind;
  using Flag = Scanner::Flag;
  DecodeError err;
  Request req;
  json::parse_options opts;
  opts.max_depth = 32;
  json::basic_parser<Scanner> parser(opts, text, req.data);
  json::error_code ec;
  std::size_t used = parser.write_some(false, text.data(), text.size(), ec);
  if (!ec && used < text.size()) ec = json::error::extra_data;
  if (ec) {
    err.message = "not valid JSON: " + ec.message();
    return err;
  }
  Scanner& s = parser.handler();
  if (!s.rootObject()) {
    err.message = "a message must be a JSON object";
    return err;
  }
  if (Kind id = s.kind(Field::kId); id != Kind::kAbsent) {
    if (id == Kind::kInt64) {
      err.id = s.int64(Field::kId);
    } else if (id == Kind::kUint64 && s.uint64(Field::kId) <= static_cast<uint64_t>(INT64_MAX)) {
      err.id = static_cast<int64_t>(s.uint64(Field::kId));
    } else {
      err.message = "field 'id' must be an integer";
      return err;
    }
    if (err.id < 0) {
      err.id = kNoRequest;
      err.message = "field 'id' must not be negative";
      return err;
    }
  }
  if (s.kind(Field::kV) != Kind::kInt64 || s.int64(Field::kV) != kProtocolVersion) {
    err.message = fmt::format("field 'v' must be {}", kProtocolVersion);
    return err;
  }
  if (s.kind(Field::kType) != Kind::kString) {
    err.message = "missing field 'type'";
    return err;
  }
  auto rt = typeOf(s.text(Field::kType));
  if (!rt) {
    err.message = fmt::format("unknown type '{}'", s.text(Field::kType));
    return err;
  }
  req.type = *rt;
  req.id = err.id;

  // A string field; `required` fails when absent. Sets err and returns false on a type error.
  auto str = [&](Field f, std::string_view key, std::string& into, bool required) {
    if (s.kind(f) == Kind::kAbsent) {
      if (required) err.message = fmt::format("missing field '{}'", key);
      return !required;
    }
    if (s.kind(f) != Kind::kString) {
      err.message = fmt::format("field '{}' must be a string", key);
      return false;
    }
    into = std::move(s.text(f));
    return true;
  };
  auto state = [&](MediaStatePatch& into) {
    if (s.kind(Field::kState) == Kind::kAbsent) return true;
    if (s.kind(Field::kState) != Kind::kObject) {
      err.message = "field 'state' must be an object";
      return false;
    }
    auto flag = [&](Flag f, std::string_view name, std::optional<bool>& out) {
      if (s.flagKind(f) == Kind::kAbsent) return true;
      if (s.flagKind(f) != Kind::kBool) {
        err.message = fmt::format("state.{} must be a boolean", name);
        return false;
      }
      out = s.flag(f);
      return true;
    };
    return flag(Flag::kAudioMuted, "audioMuted", into.audioMuted) && flag(Flag::kVideoOff, "videoOff", into.videoOff) &&
           flag(Flag::kScreenSharing, "screenSharing", into.screenSharing);
  };
  auto data = [&] {
    if (s.kind(Field::kData) == Kind::kAbsent) {
      err.message = "missing field 'data'";
      return false;
    }
    if (s.dataOutOfRange()) {
      err.message = "a number in 'data' is out of range";
      return false;
    }
    return true;  // req.data holds its text already
  };

  bool ok = true;
  switch (req.type) {
    case RequestType::kJoin:
      ok = str(Field::kRoom, "room", req.room, true) && str(Field::kName, "name", req.name, false) &&
           str(Field::kToken, "token", req.token, false) && state(req.state) &&
           str(Field::kMedia, "media", req.media, false);
      if (ok && !req.media.empty() && !parseMediaPolicy(req.media)) {
        err.message = "media must be auto, sfu or mesh";
        ok = false;
      }
      if (ok && !validRoomName(req.room)) {
        err.message = "room must be 1-64 characters of A-Z a-z 0-9 _ . -";
        ok = false;
      }
      if (ok && !req.name.empty() && !validDisplayName(req.name)) {
        err.message = "name must be 1-64 characters without control characters";
        ok = false;
      }
      break;
    case RequestType::kResume:
      ok = str(Field::kRoom, "room", req.room, true) && str(Field::kPeer, "peer", req.peer, true) &&
           str(Field::kResume, "resume", req.resume, true);
      break;
    case RequestType::kSignal:
      ok = str(Field::kTo, "to", req.to, true) && data();
      break;
    case RequestType::kMessage:
      ok = str(Field::kTo, "to", req.to, false) && data();
      break;
    case RequestType::kChat:
      ok = str(Field::kText, "text", req.text, true);
      if (ok && (req.text.empty() || codePoints(req.text) > kMaxChatChars)) {
        err.message = "text must be 1-4096 characters";
        ok = false;
      }
      break;
    case RequestType::kState:
      if (s.kind(Field::kState) == Kind::kAbsent) {
        err.message = "missing field 'state'";
        ok = false;
      } else {
        ok = state(req.state);
      }
      break;
    case RequestType::kLeave:
    case RequestType::kPing:
    case RequestType::kUnpublish:
    case RequestType::kSubscribeRestart:
    case RequestType::kRecordStart:
    case RequestType::kRecordStop:
      break;
    case RequestType::kPublish:
    case RequestType::kSubscribeAnswer:
    case RequestType::kTileSize:
      ok = decodeSfu(text, req, err.message);
      break;
  }
  if (!ok) return err;
  if (req.type != RequestType::kSignal && req.type != RequestType::kMessage) req.data.clear();
  return req;
}

namespace {

void appendState(std::string& out, const MediaState& s) {
  fmt::format_to(std::back_inserter(out), R"({{"audioMuted":{},"videoOff":{},"screenSharing":{}}})", s.audioMuted,
                 s.videoOff, s.screenSharing);
}

void appendPeer(std::string& out, const PeerInfo& p) {
  out += R"({"id":)"sv;
  appendJsonString(out, p.id);
  out += R"(,"name":)"sv;
  appendJsonString(out, p.name);
  if (!p.user.empty()) {
    out += R"(,"user":)"sv;
    appendJsonString(out, p.user);
  }
  out += R"(,"state":)"sv;
  appendState(out, p.state);
  out += '}';
}

void appendRe(std::string& out, int64_t re) {
  if (re != kNoRequest) fmt::format_to(std::back_inserter(out), R"(,"re":{})", re);
}

}  // namespace

void encode(const Event& event, std::string& out) {
  out += R"({"v":1,"type":)"sv;
  std::visit(
      [&out](const auto& e) {
        using T = std::decay_t<decltype(e)>;
        if constexpr (std::is_same_v<T, ev::Joined>) {
          out += R"("ok")"sv;
          appendRe(out, e.re);
          out += R"(,"room":)"sv;
          appendJsonString(out, e.room);
          out += R"(,"peer":)"sv;
          appendJsonString(out, e.peer);
          out += R"(,"resume":)"sv;
          appendJsonString(out, e.resume);
          out += R"(,"resumed":)"sv;
          out += e.resumed ? "true"sv : "false"sv;
          out += R"(,"peers":[)"sv;
          for (std::size_t i = 0; i < e.peers.size(); ++i) {
            if (i) out += ',';
            appendPeer(out, e.peers[i]);
          }
          out += ']';
          if (e.mediaPolicy != MediaPolicy::kNone) {
            out += R"(,"media":")"sv;
            out += toString(e.media);
            out += R"(","mediaPolicy":")"sv;
            out += toString(e.mediaPolicy);
            out += '"';
          }
        } else if constexpr (std::is_same_v<T, ev::Ok>) {
          out += R"("ok")"sv;
          appendRe(out, e.re);
          if (e.ts) fmt::format_to(std::back_inserter(out), R"(,"ts":{})", e.ts);
          if (!e.sdp.empty()) {
            out += R"(,"sdp":)"sv;
            appendJsonString(out, e.sdp);
          }
        } else if constexpr (std::is_same_v<T, ev::MediaModeChanged>) {
          out += R"("media-mode","mode":")"sv;
          out += toString(e.mode);
          out += '"';
        } else if constexpr (std::is_same_v<T, ev::Recording>) {
          out += R"("recording","active":)"sv;
          out += e.active ? "true"sv : "false"sv;
          if (!e.by.empty()) {
            out += R"(,"by":)"sv;
            appendJsonString(out, e.by);
            out += R"(,"name":)"sv;
            appendJsonString(out, e.name);
          }
          if (e.active) {
            fmt::format_to(std::back_inserter(out), R"(,"since":{})", e.since);
          } else {
            out += R"(,"reason":)"sv;
            appendJsonString(out, e.reason);
          }
        } else if constexpr (std::is_same_v<T, ev::ActiveSpeaker>) {
          out += R"("active-speaker","peer":)"sv;
          appendJsonString(out, e.peer);
        } else if constexpr (std::is_same_v<T, ev::SubscribeOffer>) {
          out += R"("subscribe-offer","sdp":)"sv;
          appendJsonString(out, e.sdp);
          fmt::format_to(std::back_inserter(out), R"(,"version":{},"tracks":)", e.version);
          out += e.tracks;
        } else if constexpr (std::is_same_v<T, ev::Error>) {
          out += R"("error")"sv;
          appendRe(out, e.re);
          out += R"(,"code":")"sv;
          out += toString(e.code);
          out += R"(","message":)"sv;
          appendJsonString(out, e.message);
        } else if constexpr (std::is_same_v<T, ev::PeerJoined>) {
          out += R"("peer-joined","peer":)"sv;
          appendPeer(out, e.peer);
        } else if constexpr (std::is_same_v<T, ev::PeerLeft>) {
          out += R"("peer-left","peer":)"sv;
          appendJsonString(out, e.peer);
          out += R"(,"reason":")"sv;
          out += toString(e.reason);
          out += '"';
        } else if constexpr (std::is_same_v<T, ev::PeerState>) {
          out += R"("peer-state","peer":)"sv;
          appendJsonString(out, e.peer);
          out += R"(,"state":)"sv;
          appendState(out, e.state);
        } else if constexpr (std::is_same_v<T, ev::Signal>) {
          out += R"("signal","from":)"sv;
          appendJsonString(out, e.from);
          out += R"(,"data":)"sv;
          out += e.data;
        } else if constexpr (std::is_same_v<T, ev::Message>) {
          out += R"("message","from":)"sv;
          appendJsonString(out, e.from);
          out += R"(,"broadcast":)"sv;
          out += e.broadcast ? "true"sv : "false"sv;
          out += R"(,"data":)"sv;
          out += e.data;
        } else if constexpr (std::is_same_v<T, ev::Chat>) {
          out += R"("chat","from":)"sv;
          appendJsonString(out, e.from);
          out += R"(,"name":)"sv;
          appendJsonString(out, e.name);
          out += R"(,"text":)"sv;
          appendJsonString(out, e.text);
          fmt::format_to(std::back_inserter(out), R"(,"ts":{})", e.ts);
        } else if constexpr (std::is_same_v<T, ev::Bye>) {
          out += R"("bye","reason":)"sv;
          appendJsonString(out, toString(e.reason));
        } else if constexpr (std::is_same_v<T, ev::Expired>) {
          // Native rooms never hold messages (RoomPolicy::holdForAbsent), so this is never sent; valid JSON anyway.
          out += R"("error","code":"unknown-peer","message":"messages to this peer expired undelivered")"sv;
        }
      },
      event);
  out += '}';
}

std::string encode(const Event& event) {
  std::string out;
  out.reserve(approximateSize(event) + 32);
  encode(event, out);
  return out;
}

std::string encodeHello(const Limits& limits, Millis heartbeat, std::string_view version) {
  return fmt::format(
      R"({{"v":1,"type":"hello","server":"kaiwa","version":"{}","heartbeat":{},"limits":{{"maxMessageBytes":{},)"
      R"("messagesPerSecond":{},"peersPerRoom":{},"resumeGraceMs":{}}}}})",
      version, heartbeat.count(), limits.maxMessageBytes, limits.messagesPerSecond, limits.peersPerRoom,
      limits.resumeGrace.count());
}

std::string encodePong() { return R"({"v":1,"type":"pong"})"; }

}  // namespace kaiwa::signal::native

#include "signal/native/codec.hpp"

#include <boost/json.hpp>
#include <fmt/format.h>

#include "common/json.hpp"

namespace kaiwa::signal::native {
namespace json = boost::json;
namespace {

constexpr std::size_t kMaxNameChars = 64;
constexpr std::size_t kMaxChatChars = 4096;

// Counts UTF-8 code points (Boost.JSON has already checked the encoding of parsed strings).
std::size_t codePoints(std::string_view s) {
  std::size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

bool hasControl(std::string_view s) {
  for (unsigned char c : s) {
    if (c < 0x20 || c == 0x7F) return true;
  }
  return false;
}

struct Fields {
  const json::object& obj;
  DecodeError& err;

  // A string field; `required` fails when absent. Sets err and returns false on a type error.
  bool str(std::string_view key, std::string& into, bool required) {
    const json::value* v = obj.if_contains(key);
    if (!v) {
      if (required) err.message = fmt::format("missing field '{}'", key);
      return !required;
    }
    if (!v->is_string()) {
      err.message = fmt::format("field '{}' must be a string", key);
      return false;
    }
    into.assign(v->get_string().data(), v->get_string().size());
    return true;
  }

  bool state(std::string_view key, MediaStatePatch& into) {
    const json::value* v = obj.if_contains(key);
    if (!v) return true;
    if (!v->is_object()) {
      err.message = fmt::format("field '{}' must be an object", key);
      return false;
    }
    const json::object& s = v->get_object();
    auto flag = [&](std::string_view name, std::optional<bool>& out) {
      const json::value* f = s.if_contains(name);
      if (!f) return true;
      if (!f->is_bool()) {
        err.message = fmt::format("state.{} must be a boolean", name);
        return false;
      }
      out = f->get_bool();
      return true;
    };
    return flag("audioMuted", into.audioMuted) && flag("videoOff", into.videoOff) &&
           flag("screenSharing", into.screenSharing);
  }

  bool data(std::string& into) {
    const json::value* v = obj.if_contains("data");
    if (!v) {
      err.message = "missing field 'data'";
      return false;
    }
    if (!common::finiteNumbers(*v)) {
      // 1e400 parses as infinity, which has no JSON text: refuse rather than relay something invalid.
      err.message = "a number in 'data' is out of range";
      return false;
    }
    into = json::serialize(*v);
    return true;
  }
};

std::optional<RequestType> typeOf(std::string_view t) {
  if (t == "signal") return RequestType::kSignal;
  if (t == "message") return RequestType::kMessage;
  if (t == "ping") return RequestType::kPing;
  if (t == "state") return RequestType::kState;
  if (t == "chat") return RequestType::kChat;
  if (t == "join") return RequestType::kJoin;
  if (t == "resume") return RequestType::kResume;
  if (t == "leave") return RequestType::kLeave;
  return std::nullopt;
}

}  // namespace

bool validRoomName(std::string_view room) {
  if (room.empty() || room.size() > 64) return false;
  for (char c : room) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
              c == '.';
    if (!ok) return false;
  }
  return true;
}

bool validDisplayName(std::string_view name) {
  std::size_t n = codePoints(name);
  return n >= 1 && n <= kMaxNameChars && !hasControl(name);
}

DecodeResult decode(std::string_view text) {
  DecodeError err;
  json::parse_options opts;
  opts.max_depth = 32;
  std::error_code ec;
  json::monotonic_resource mr;
  json::value root = json::parse(json::string_view(text.data(), text.size()), ec, &mr, opts);
  if (ec) {
    err.message = "not valid JSON: " + ec.message();
    return err;
  }
  if (!root.is_object()) {
    err.message = "a message must be a JSON object";
    return err;
  }
  const json::object& obj = root.get_object();
  if (const json::value* id = obj.if_contains("id")) {
    if (id->is_int64()) {
      err.id = id->get_int64();
    } else if (id->is_uint64() && id->get_uint64() <= static_cast<uint64_t>(INT64_MAX)) {
      err.id = static_cast<int64_t>(id->get_uint64());
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
  const json::value* v = obj.if_contains("v");
  if (!v || !v->is_int64() || v->get_int64() != kProtocolVersion) {
    err.message = fmt::format("field 'v' must be {}", kProtocolVersion);
    return err;
  }
  const json::value* type = obj.if_contains("type");
  if (!type || !type->is_string()) {
    err.message = "missing field 'type'";
    return err;
  }
  auto rt = typeOf(std::string_view(type->get_string().data(), type->get_string().size()));
  if (!rt) {
    err.message = fmt::format("unknown type '{}'", std::string_view(type->get_string()));
    return err;
  }
  Request req;
  req.type = *rt;
  req.id = err.id;
  Fields f{obj, err};
  bool ok = true;
  switch (req.type) {
    case RequestType::kJoin:
      ok = f.str("room", req.room, true) && f.str("name", req.name, false) && f.str("token", req.token, false) &&
           f.state("state", req.state);
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
      ok = f.str("room", req.room, true) && f.str("peer", req.peer, true) && f.str("resume", req.resume, true);
      break;
    case RequestType::kSignal:
      ok = f.str("to", req.to, true) && f.data(req.data);
      break;
    case RequestType::kMessage:
      ok = f.str("to", req.to, false) && f.data(req.data);
      break;
    case RequestType::kChat:
      ok = f.str("text", req.text, true);
      if (ok && (req.text.empty() || codePoints(req.text) > kMaxChatChars)) {
        err.message = "text must be 1-4096 characters";
        ok = false;
      }
      break;
    case RequestType::kState:
      if (!obj.contains("state")) {
        err.message = "missing field 'state'";
        ok = false;
      } else {
        ok = f.state("state", req.state);
      }
      break;
    case RequestType::kLeave:
    case RequestType::kPing:
      break;
  }
  if (!ok) return err;
  return req;
}

void appendJsonString(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  out.push_back('"');
  std::size_t run = 0;  // start of the pending run of plain bytes
  for (std::size_t i = 0; i < s.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    out.append(s.data() + run, i - run);
    run = i + 1;
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        out += "\\u00";
        out.push_back(kHex[c >> 4]);
        out.push_back(kHex[c & 15]);
    }
  }
  out.append(s.data() + run, s.size() - run);
  out.push_back('"');
}

namespace {

void appendState(std::string& out, const MediaState& s) {
  fmt::format_to(std::back_inserter(out), R"({{"audioMuted":{},"videoOff":{},"screenSharing":{}}})", s.audioMuted,
                 s.videoOff, s.screenSharing);
}

void appendPeer(std::string& out, const PeerInfo& p) {
  out += R"({"id":)";
  appendJsonString(out, p.id);
  out += R"(,"name":)";
  appendJsonString(out, p.name);
  out += R"(,"state":)";
  appendState(out, p.state);
  out += '}';
}

void appendRe(std::string& out, int64_t re) {
  if (re != kNoRequest) fmt::format_to(std::back_inserter(out), R"(,"re":{})", re);
}

}  // namespace

void encode(const Event& event, std::string& out) {
  out += R"({"v":1,"type":)";
  std::visit(
      [&out](const auto& e) {
        using T = std::decay_t<decltype(e)>;
        if constexpr (std::is_same_v<T, ev::Joined>) {
          out += R"("ok")";
          appendRe(out, e.re);
          out += R"(,"room":)";
          appendJsonString(out, e.room);
          out += R"(,"peer":)";
          appendJsonString(out, e.peer);
          out += R"(,"resume":)";
          appendJsonString(out, e.resume);
          out += R"(,"resumed":)";
          out += e.resumed ? "true" : "false";
          out += R"(,"peers":[)";
          for (std::size_t i = 0; i < e.peers.size(); ++i) {
            if (i) out += ',';
            appendPeer(out, e.peers[i]);
          }
          out += ']';
        } else if constexpr (std::is_same_v<T, ev::Ok>) {
          out += R"("ok")";
          appendRe(out, e.re);
          if (e.ts) fmt::format_to(std::back_inserter(out), R"(,"ts":{})", e.ts);
        } else if constexpr (std::is_same_v<T, ev::Error>) {
          out += R"("error")";
          appendRe(out, e.re);
          out += R"(,"code":")";
          out += toString(e.code);
          out += R"(","message":)";
          appendJsonString(out, e.message);
        } else if constexpr (std::is_same_v<T, ev::PeerJoined>) {
          out += R"("peer-joined","peer":)";
          appendPeer(out, e.peer);
        } else if constexpr (std::is_same_v<T, ev::PeerLeft>) {
          out += R"("peer-left","peer":)";
          appendJsonString(out, e.peer);
          out += R"(,"reason":")";
          out += toString(e.reason);
          out += '"';
        } else if constexpr (std::is_same_v<T, ev::PeerState>) {
          out += R"("peer-state","peer":)";
          appendJsonString(out, e.peer);
          out += R"(,"state":)";
          appendState(out, e.state);
        } else if constexpr (std::is_same_v<T, ev::Signal>) {
          out += R"("signal","from":)";
          appendJsonString(out, e.from);
          out += R"(,"data":)";
          out += e.data;
        } else if constexpr (std::is_same_v<T, ev::Message>) {
          out += R"("message","from":)";
          appendJsonString(out, e.from);
          out += R"(,"broadcast":)";
          out += e.broadcast ? "true" : "false";
          out += R"(,"data":)";
          out += e.data;
        } else if constexpr (std::is_same_v<T, ev::Chat>) {
          out += R"("chat","from":)";
          appendJsonString(out, e.from);
          out += R"(,"name":)";
          appendJsonString(out, e.name);
          out += R"(,"text":)";
          appendJsonString(out, e.text);
          fmt::format_to(std::back_inserter(out), R"(,"ts":{})", e.ts);
        } else if constexpr (std::is_same_v<T, ev::Bye>) {
          out += R"("bye","reason":)";
          appendJsonString(out, e.reason);
        } else if constexpr (std::is_same_v<T, ev::Expired>) {
          // Native rooms never hold messages (RoomPolicy::holdForAbsent), so this is never sent; valid JSON anyway.
          out += R"("error","code":"unknown-peer","message":"messages to this peer expired undelivered")";
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

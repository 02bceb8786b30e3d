// fuzz_native_codec: signal::native::decode() on arbitrary bytes, then encode() of events built from what it decoded.
// Invariants: decode never crashes; what it accepts satisfies the protocol's field rules; every encoded event is valid
// JSON with "v":1 whose string fields round-trip exactly; a decoded request re-serialized decodes to the same request.
#include <boost/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <iterator>
#include <string>
#include <string_view>

#include "common/json_text.hpp"
#include "fuzz_util.hpp"
#include "signal/names.hpp"
#include "signal/native/codec.hpp"

namespace json = boost::json;
using namespace kaiwa;
using namespace kaiwa::signal;
using namespace kaiwa::signal::native;
using kaiwa::fuzz::parseJson;
using kaiwa::fuzz::str;
using kaiwa::fuzz::validUtf8;

namespace {

bool referenceRoomName(std::string_view s) {
  if (s.empty() || s.size() > 64) return false;
  for (unsigned char c : s) {
    if (!(std::isalnum(c) && c < 0x80) && c != '_' && c != '-' && c != '.') return false;
  }
  return true;
}

// Encodes `e`, checks it is a JSON object with v:1 and the given type, and returns the object.
json::object encoded(const Event& e, std::string_view type) {
  std::string text = encode(e);
  auto v = parseJson(text);
  FUZZ_CHECK(v.has_value(), text);
  FUZZ_CHECK(v->is_object(), text);
  json::object& o = v->as_object();
  const json::value* ver = o.if_contains("v");
  FUZZ_CHECK(ver && ver->is_int64() && ver->as_int64() == 1, text);
  const json::value* t = o.if_contains("type");
  FUZZ_CHECK(t && t->is_string() && str(*t) == type, text);
  // The appending overload must produce the same text after a prefix.
  std::string appended = "prefix";
  encode(e, appended);
  FUZZ_CHECK(appended == "prefix" + text, text);
  (void)approximateSize(e);
  return std::move(o);
}

void checkString(const json::object& o, std::string_view key, std::string_view expected) {
  const json::value* v = o.if_contains(key);
  FUZZ_CHECK(v && v->is_string(), key);
  FUZZ_CHECK(str(*v) == expected, key);
}

void checkRe(const json::object& o, int64_t re) {
  const json::value* v = o.if_contains("re");
  if (re == kNoRequest) {
    FUZZ_CHECK(v == nullptr, "re present for kNoRequest");
  } else {
    FUZZ_CHECK(v && v->is_int64() && v->as_int64() == re, "re");
  }
}

void checkState(const json::value* v, const MediaState& s) {
  FUZZ_CHECK(v && v->is_object(), "state");
  const json::object& o = v->as_object();
  FUZZ_CHECK(o.size() == 3, "state fields");
  FUZZ_CHECK(o.at("audioMuted").as_bool() == s.audioMuted, "audioMuted");
  FUZZ_CHECK(o.at("videoOff").as_bool() == s.videoOff, "videoOff");
  FUZZ_CHECK(o.at("screenSharing").as_bool() == s.screenSharing, "screenSharing");
}

void checkPeer(const json::value* v, const PeerInfo& p) {
  FUZZ_CHECK(v && v->is_object(), "peer");
  const json::object& o = v->as_object();
  checkString(o, "id", p.id);
  checkString(o, "name", p.name);
  checkState(o.if_contains("state"), p.state);
}

// The client-side JSON for `req`, as an SDK would send it.
std::string reserialize(const Request& req) {
  static constexpr const char* kTypes[] = {
      "join",         "resume",      "leave",    "signal",           "message",   "chat",
      "state",        "ping",        "publish",  "subscribe-answer", "unpublish", "subscribe-restart",
      "record-start", "record-stop", "tile-size"};
  static_assert(std::size(kTypes) == static_cast<size_t>(RequestType::kTileSize) + 1);
  json::object o;
  o["v"] = 1;
  o["type"] = kTypes[static_cast<int>(req.type)];
  if (req.id != kNoRequest) o["id"] = req.id;
  auto stateObject = [&] {
    json::object s;
    if (req.state.audioMuted) s["audioMuted"] = *req.state.audioMuted;
    if (req.state.videoOff) s["videoOff"] = *req.state.videoOff;
    if (req.state.screenSharing) s["screenSharing"] = *req.state.screenSharing;
    return s;
  };
  switch (req.type) {
    case RequestType::kJoin:
      o["room"] = req.room;
      if (!req.name.empty()) o["name"] = req.name;
      if (!req.token.empty()) o["token"] = req.token;
      if (req.state.audioMuted || req.state.videoOff || req.state.screenSharing) o["state"] = stateObject();
      if (!req.media.empty()) o["media"] = req.media;
      break;
    case RequestType::kResume:
      o["room"] = req.room;
      o["peer"] = req.peer;
      o["resume"] = req.resume;
      break;
    case RequestType::kSignal:
    case RequestType::kMessage:
      if (req.type == RequestType::kSignal || !req.to.empty()) o["to"] = req.to;
      o["data"] = json::parse(req.data);
      break;
    case RequestType::kChat:
      o["text"] = req.text;
      break;
    case RequestType::kState:
      o["state"] = stateObject();
      break;
    case RequestType::kPublish: {
      o["sdp"] = req.sdp;
      json::array tracks;
      for (const auto& t : req.tracks) tracks.push_back(json::object{{"mid", t.mid}, {"source", t.source}});
      o["tracks"] = std::move(tracks);
      break;
    }
    case RequestType::kSubscribeAnswer:
      o["sdp"] = req.sdp;
      o["version"] = req.version;
      break;
    case RequestType::kTileSize: {
      json::array tiles;
      for (const auto& t : req.tiles) {
        tiles.push_back(json::object{{"mid", t.mid}, {"width", t.width}, {"height", t.height}});
      }
      o["tiles"] = std::move(tiles);
      break;
    }
    case RequestType::kLeave:
    case RequestType::kPing:
    case RequestType::kUnpublish:
    case RequestType::kSubscribeRestart:
    case RequestType::kRecordStart:
    case RequestType::kRecordStop:
      break;
  }
  return json::serialize(o);
}

// JSON equality where numbers may differ in the last bits: Boost.JSON's parser is not correctly rounded, so a
// number that went through serialize/parse may move by an ulp or so. Structure, strings, booleans are exact.
bool closeJson(const json::value& a, const json::value& b) {
  auto num = [](const json::value& v, double& out) {
    if (v.is_double())
      out = v.get_double();
    else if (v.is_int64())
      out = static_cast<double>(v.get_int64());
    else if (v.is_uint64())
      out = static_cast<double>(v.get_uint64());
    else
      return false;
    return true;
  };
  double x, y;
  if (num(a, x) && num(b, y)) return x == y || std::fabs(x - y) <= 1e-12 * std::max(std::fabs(x), std::fabs(y));
  if (a.kind() != b.kind()) return false;
  if (a.is_array()) {
    const auto &p = a.get_array(), &q = b.get_array();
    if (p.size() != q.size()) return false;
    for (std::size_t i = 0; i < p.size(); ++i) {
      if (!closeJson(p[i], q[i])) return false;
    }
    return true;
  }
  if (a.is_object()) {
    const auto &p = a.get_object(), &q = b.get_object();
    if (p.size() != q.size()) return false;
    for (const auto& kv : p) {
      const json::value* other = q.if_contains(kv.key());
      if (!other || !closeJson(kv.value(), *other)) return false;
    }
    return true;
  }
  return a == b;
}

bool sameData(const std::string& a, const std::string& b) {
  if (a == b) return true;
  auto x = parseJson(a), y = parseJson(b);
  return x && y && closeJson(*x, *y);
}

bool sameRequest(const Request& a, const Request& b) {
  return a.type == b.type && a.id == b.id && a.room == b.room && a.name == b.name && a.token == b.token &&
         a.peer == b.peer && a.resume == b.resume && a.to == b.to && sameData(a.data, b.data) && a.text == b.text &&
         a.state.audioMuted == b.state.audioMuted && a.state.videoOff == b.state.videoOff &&
         a.state.screenSharing == b.state.screenSharing && a.media == b.media && a.sdp == b.sdp &&
         a.version == b.version && a.tracks.size() == b.tracks.size() &&
         std::equal(a.tracks.begin(), a.tracks.end(), b.tracks.begin(),
                    [](const auto& x, const auto& y) { return x.mid == y.mid && x.source == y.source; });
}

void checkRequest(const Request& req) {
  FUZZ_CHECK(req.id >= kNoRequest, "id");
  for (const std::string* s : {&req.room, &req.name, &req.token, &req.peer, &req.resume, &req.to, &req.text}) {
    FUZZ_CHECK(validUtf8(*s), *s);
  }
  switch (req.type) {
    case RequestType::kJoin:
      FUZZ_CHECK(validRoomName(req.room), req.room);
      FUZZ_CHECK(referenceRoomName(req.room), req.room);
      FUZZ_CHECK(req.name.empty() || validDisplayName(req.name), req.name);
      break;
    case RequestType::kChat:
      FUZZ_CHECK(!req.text.empty(), "empty chat accepted");
      break;
    case RequestType::kSignal:
    case RequestType::kMessage: {
      auto data = parseJson(req.data);
      FUZZ_CHECK(data.has_value(), req.data);
      // Not checked: serialize(parse(data)) == data. Boost.JSON parses numbers through double (not precisely), so
      // e.g. 666...62.5 re-serializes as 6.666666666666668E65 whose next round trip may differ in the last digit.
      break;
    }
    default:
      break;
  }

  // decode(reserialize(req)) == req.
  std::string again = reserialize(req);
  DecodeResult second = decode(again);
  const Request* r2 = std::get_if<Request>(&second);
  FUZZ_CHECK(r2 != nullptr, again);
  FUZZ_CHECK(sameRequest(req, *r2), again);

  // Events built from the request's fields.
  const int64_t re = req.id;
  MediaState state;
  req.state.applyTo(state);
  PeerInfo info{req.peer, req.name, state};
  {
    json::object o = encoded(ev::Chat{req.to, req.name, req.text, re}, "chat");
    checkString(o, "from", req.to);
    checkString(o, "name", req.name);
    checkString(o, "text", req.text);
    FUZZ_CHECK(o.at("ts").as_int64() == re, "ts");
  }
  {
    json::object o = encoded(ev::PeerJoined{info}, "peer-joined");
    checkPeer(o.if_contains("peer"), info);
  }
  {
    json::object o = encoded(ev::Joined{re, req.room, req.peer, req.resume, {info, info}, re % 2 == 0}, "ok");
    checkRe(o, re);
    checkString(o, "room", req.room);
    checkString(o, "peer", req.peer);
    checkString(o, "resume", req.resume);
    FUZZ_CHECK(o.at("resumed").as_bool() == (re % 2 == 0), "resumed");
    const json::array& peers = o.at("peers").as_array();
    FUZZ_CHECK(peers.size() == 2, "peers");
    checkPeer(&peers[0], info);
    checkPeer(&peers[1], info);
  }
  {
    json::object o = encoded(ev::PeerState{req.peer, state}, "peer-state");
    checkString(o, "peer", req.peer);
    checkState(o.if_contains("state"), state);
  }
  {
    json::object o = encoded(ev::PeerLeft{req.token, static_cast<LeaveReason>(req.text.size() % 4)}, "peer-left");
    checkString(o, "peer", req.token);
    checkString(o, "reason", toString(static_cast<LeaveReason>(req.text.size() % 4)));
  }
  {
    auto code = static_cast<ErrorCode>(req.name.size() % 11);
    json::object o = encoded(ev::Error{re, code, req.text}, "error");
    checkRe(o, re);
    checkString(o, "code", toString(code));
    checkString(o, "message", req.text);
  }
  {
    json::object o = encoded(ev::Ok{re, re}, "ok");
    checkRe(o, re);
  }
  {
    auto reason = static_cast<ByeReason>(req.resume.size() % 3);
    checkString(encoded(ev::Bye{reason}, "bye"), "reason", toString(reason));
  }
  if (req.type == RequestType::kSignal || req.type == RequestType::kMessage) {
    json::value data = json::parse(req.data);
    {
      json::object o = encoded(ev::Signal{req.to, req.data}, "signal");
      checkString(o, "from", req.to);
      FUZZ_CHECK(o.at("data") == data, req.data);
      // What a receiving client would send back (e.g. an answer) decodes too.
      std::string back = R"({"v":1,"type":"signal","to":"x","data":)" + req.data + "}";
      DecodeResult d = decode(back);
      const Request* r = std::get_if<Request>(&d);
      FUZZ_CHECK(r && r->type == RequestType::kSignal, back);
    }
    {
      json::object o = encoded(ev::Message{req.to, req.data, req.to.empty()}, "message");
      checkString(o, "from", req.to);
      FUZZ_CHECK(o.at("data") == data, req.data);
      FUZZ_CHECK(o.at("broadcast").as_bool() == req.to.empty(), "broadcast");
    }
  }
}

void checkDecodeError(const DecodeError& err) {
  FUZZ_CHECK(err.id >= kNoRequest, "error id");
  FUZZ_CHECK(!err.message.empty(), "empty error message");
  json::object o = encoded(ev::Error{err.id, err.code, err.message}, "error");
  checkRe(o, err.id);
  checkString(o, "message", err.message);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);

  FUZZ_CHECK(validRoomName(in) == referenceRoomName(in), in);
  bool displayName = validDisplayName(in);
  if (displayName && validUtf8(in)) {
    PeerInfo p{"id", std::string(in), {}};
    json::object o = encoded(ev::PeerJoined{p}, "peer-joined");
    checkPeer(o.if_contains("peer"), p);
  }

  // appendJsonString on arbitrary bytes: the literal parses back to the same bytes (when they are UTF-8).
  {
    std::string lit;
    kaiwa::common::appendJsonString(lit, in);
    if (validUtf8(in)) {
      auto v = parseJson(lit);
      FUZZ_CHECK(v && v->is_string() && str(*v) == in, lit);
    }
  }

  DecodeResult r = decode(in);
  if (auto* err = std::get_if<DecodeError>(&r)) {
    checkDecodeError(*err);
  } else {
    checkRequest(std::get<Request>(r));
  }
  return 0;
}

#include "signal/names.hpp"
#include "signal/native/codec.hpp"

#include <gtest/gtest.h>
#include <boost/json.hpp>

namespace kaiwa::signal::native {
namespace {

namespace json = boost::json;

Request ok(std::string_view text) {
  auto r = decode(text);
  if (auto* e = std::get_if<DecodeError>(&r)) {
    ADD_FAILURE() << "decode failed: " << e->message << " for " << text;
    return {};
  }
  return std::get<Request>(r);
}

DecodeError bad(std::string_view text) {
  auto r = decode(text);
  if (!std::holds_alternative<DecodeError>(r)) {
    ADD_FAILURE() << "decode accepted " << text;
    return {};
  }
  return std::get<DecodeError>(r);
}

TEST(NativeDecode, Join) {
  Request r = ok(R"({"v":1,"type":"join","id":3,"room":"demo-1.x","name":"Alice","token":"t",
                    "state":{"audioMuted":true}})");
  EXPECT_EQ(r.type, RequestType::kJoin);
  EXPECT_EQ(r.id, 3);
  EXPECT_EQ(r.room, "demo-1.x");
  EXPECT_EQ(r.name, "Alice");
  EXPECT_EQ(r.token, "t");
  EXPECT_EQ(r.state.audioMuted, std::optional<bool>(true));
  EXPECT_FALSE(r.state.videoOff.has_value());
}

TEST(NativeDecode, SignalKeepsDataAsJson) {
  Request r = ok(R"({"v":1,"type":"signal","to":"p1","data":{"description":{"type":"offer","sdp":"v=0\r\n"}}})");
  EXPECT_EQ(r.type, RequestType::kSignal);
  EXPECT_EQ(r.id, kNoRequest);
  EXPECT_EQ(r.to, "p1");
  EXPECT_EQ(json::parse(r.data), json::parse(R"({"description":{"type":"offer","sdp":"v=0\r\n"}})"));
}

TEST(NativeDecode, MessageWithoutToIsABroadcast) {
  Request r = ok(R"({"v":1,"type":"message","data":[1,2,3]})");
  EXPECT_EQ(r.type, RequestType::kMessage);
  EXPECT_TRUE(r.to.empty());
  EXPECT_EQ(r.data, "[1,2,3]");
}

TEST(NativeDecode, OtherTypes) {
  EXPECT_EQ(ok(R"({"v":1,"type":"ping"})").type, RequestType::kPing);
  EXPECT_EQ(ok(R"({"v":1,"type":"leave","id":9})").id, 9);
  EXPECT_EQ(ok(R"({"v":1,"type":"chat","text":"こんにちは"})").text, "こんにちは");
  EXPECT_EQ(ok(R"({"v":1,"type":"state","state":{"screenSharing":true}})").state.screenSharing,
            std::optional<bool>(true));
  Request res = ok(R"({"v":1,"type":"resume","room":"r","peer":"p","resume":"k"})");
  EXPECT_EQ(res.type, RequestType::kResume);
  EXPECT_EQ(res.resume, "k");
}

TEST(NativeDecode, SfuRequestsWithoutFields) {
  EXPECT_EQ(ok(R"({"v":1,"type":"unpublish","id":3})").type, RequestType::kUnpublish);
  Request restart = ok(R"({"v":1,"type":"subscribe-restart","id":4})");
  EXPECT_EQ(restart.type, RequestType::kSubscribeRestart);
  EXPECT_EQ(restart.id, 4);
}

TEST(NativeDecode, TileSizesAreCheckedAndBounded) {
  Request r = ok(R"({"v":1,"type":"tile-size","id":6,"tiles":[{"mid":"1","width":640,"height":360},)"
                 R"({"mid":"3","width":0,"height":0}]})");
  EXPECT_EQ(r.type, RequestType::kTileSize);
  ASSERT_EQ(r.tiles.size(), 2u);
  EXPECT_EQ(r.tiles[0].mid, "1");
  EXPECT_EQ(r.tiles[0].width, 640);
  EXPECT_EQ(r.tiles[0].height, 360);
  EXPECT_EQ(r.tiles[1].width, 0);
  EXPECT_TRUE(ok(R"({"v":1,"type":"tile-size","tiles":[]})").tiles.empty());
  EXPECT_NE(bad(R"({"v":1,"type":"tile-size"})").message.find("'tiles'"), std::string::npos);
  EXPECT_NE(bad(R"({"v":1,"type":"tile-size","tiles":{}})").message.find("array"), std::string::npos);
  const char* refused[] = {
      R"({"v":1,"type":"tile-size","tiles":[{"mid":"1","width":-1,"height":2}]})",
      R"({"v":1,"type":"tile-size","tiles":[{"mid":"1","width":65536,"height":2}]})",
      R"({"v":1,"type":"tile-size","tiles":[{"mid":"1","width":1.5,"height":2}]})",
      R"({"v":1,"type":"tile-size","tiles":[{"mid":"","width":1,"height":2}]})",
      R"({"v":1,"type":"tile-size","tiles":[{"mid":1,"width":1,"height":2}]})",
      R"({"v":1,"type":"tile-size","tiles":[{"width":1,"height":2}]})",
      R"({"v":1,"type":"tile-size","tiles":[7]})",
  };
  for (const char* text : refused) EXPECT_NE(bad(text).message.find("each tile"), std::string::npos) << text;
  std::string many = R"({"v":1,"type":"tile-size","tiles":[)";
  for (int i = 0; i <= 64; ++i) many += std::string(i ? "," : "") + R"({"mid":"1","width":1,"height":1})";
  EXPECT_NE(bad(many + "]}").message.find("too many"), std::string::npos);
}

TEST(NativeDecode, RecordRequestsWithoutFields) {
  Request start = ok(R"({"v":1,"type":"record-start","id":5})");
  EXPECT_EQ(start.type, RequestType::kRecordStart);
  EXPECT_EQ(start.id, 5);
  EXPECT_EQ(ok(R"({"v":1,"type":"record-stop"})").type, RequestType::kRecordStop);
}

TEST(NativeEncode, RecordingSaysWhoAndSinceOrWhy) {
  EXPECT_EQ(encode(Event{ev::Recording{true, "p1", "Al \"x\"", 1700000000123, {}}}),
            R"({"v":1,"type":"recording","active":true,"by":"p1","name":"Al \"x\"","since":1700000000123})");
  EXPECT_EQ(encode(Event{ev::Recording{false, "p2", "Bo", 0, "stopped"}}),
            R"({"v":1,"type":"recording","active":false,"by":"p2","name":"Bo","reason":"stopped"})");
  EXPECT_EQ(encode(Event{ev::Recording{false, {}, {}, 0, "disk-full"}}),
            R"({"v":1,"type":"recording","active":false,"reason":"disk-full"})");
}

TEST(NativeDecode, BadMessagesSayWhy) {
  EXPECT_NE(bad("not json").message.find("JSON"), std::string::npos);
  EXPECT_NE(bad("[1]").message.find("object"), std::string::npos);
  EXPECT_NE(bad(R"({"type":"ping"})").message.find("'v'"), std::string::npos);
  EXPECT_NE(bad(R"({"v":2,"type":"ping"})").message.find("'v'"), std::string::npos);
  EXPECT_NE(bad(R"({"v":1})").message.find("type"), std::string::npos);
  EXPECT_NE(bad(R"({"v":1,"type":"dance"})").message.find("unknown"), std::string::npos);
  EXPECT_NE(bad(R"({"v":1,"type":"signal","data":{}})").message.find("'to'"), std::string::npos);
  EXPECT_NE(bad(R"({"v":1,"type":"signal","to":"x"})").message.find("'data'"), std::string::npos);
  EXPECT_NE(bad(R"({"v":1,"type":"join","room":5,"name":"a"})").message.find("string"), std::string::npos);
  EXPECT_NE(bad(R"({"v":1,"type":"state","state":{"audioMuted":"yes"}})").message.find("boolean"), std::string::npos);
  EXPECT_EQ(bad(R"({"v":1,"type":"join","room":"has space","name":"a"})").code, ErrorCode::kBadMessage);
  EXPECT_EQ(bad(R"({"v":1,"type":"chat","text":""})").code, ErrorCode::kBadMessage);
  EXPECT_EQ(bad(R"({"v":1,"type":"chat","text":")" + std::string(4097, 'x') + "\"}").code, ErrorCode::kBadMessage);
  EXPECT_EQ(bad("{\"v\":1,\"type\":\"chat\",\"text\":\"\xff\"}").code, ErrorCode::kBadMessage);  // not UTF-8
}

TEST(NativeDecode, RequestIdIsKeptInErrors) {
  EXPECT_EQ(bad(R"({"v":1,"type":"dance","id":42})").id, 42);
  EXPECT_EQ(bad(R"({"v":1,"type":"ping","id":"x"})").id, kNoRequest);
  EXPECT_EQ(bad(R"({"v":1,"type":"ping","id":-1})").id, kNoRequest);
}

TEST(NativeDecode, DeepNestingIsRefused) {
  std::string deep = R"({"v":1,"type":"message","data":)" + std::string(100, '[') + std::string(100, ']') + "}";
  EXPECT_EQ(bad(deep).code, ErrorCode::kBadMessage);
}

TEST(NativeNames, RoomAndDisplayNames) {
  EXPECT_TRUE(validRoomName("a"));
  EXPECT_TRUE(validRoomName(std::string(64, 'a')));
  EXPECT_FALSE(validRoomName(std::string(65, 'a')));
  EXPECT_FALSE(validRoomName(""));
  EXPECT_FALSE(validRoomName("a/b"));
  EXPECT_TRUE(validDisplayName("山田 太郎"));
  EXPECT_TRUE(validDisplayName("😀"));
  EXPECT_FALSE(validDisplayName(""));
  EXPECT_FALSE(validDisplayName("a\nb"));
  std::string longName;
  for (int i = 0; i < 65; ++i) longName += "字";
  EXPECT_FALSE(validDisplayName(longName));
}

TEST(NativeNames, ADisplayNameShowsSomethingAndCannotReorderText) {
  EXPECT_TRUE(validDisplayName("Ann-Marie"));
  EXPECT_TRUE(validDisplayName(" Bo "));                      // spaces around something visible
  EXPECT_TRUE(validDisplayName("e\u0301"));                   // a combining mark after a letter
  EXPECT_TRUE(validDisplayName("\u05e9\u05dc\u05d5\u05dd"));  // right-to-left letters are letters
  EXPECT_FALSE(validDisplayName(" "));
  EXPECT_FALSE(validDisplayName("   "));
  EXPECT_FALSE(validDisplayName("\u200b"));              // zero-width space
  EXPECT_FALSE(validDisplayName("\u3000\u00a0\ufeff"));  // ideographic space, no-break space, BOM
  EXPECT_FALSE(validDisplayName("\u0301"));              // a combining mark alone
  EXPECT_FALSE(validDisplayName("\u3164"));              // Hangul filler
  EXPECT_FALSE(validDisplayName("\u202e"));              // an RTL override alone...
  EXPECT_FALSE(validDisplayName("alice\u202etxt.exe"));  // ...or spoofing what follows
  EXPECT_FALSE(validDisplayName("a\u2066b\u2069"));      // isolates
  EXPECT_FALSE(validDisplayName("a\u2028b"));            // line separator
  EXPECT_FALSE(validDisplayName("a\u0085b"));            // C1 control (NEL)
}

json::object parsed(const Event& e) { return json::parse(encode(e)).as_object(); }

TEST(NativeEncode, APeerWithATokenCarriesItsUser) {
  auto withUser = parsed(ev::PeerJoined{PeerInfo{"p1", "Bobby", {}, "bob"}});
  EXPECT_EQ(withUser.at("peer").at("user").as_string(), "bob");
  EXPECT_EQ(withUser.at("peer").at("name").as_string(), "Bobby");
  auto without = parsed(ev::PeerJoined{PeerInfo{"p1", "Bobby", {}}});
  EXPECT_FALSE(without.at("peer").as_object().contains("user"));
}

TEST(NativeEncode, EventsAreValidJsonWithTheDocumentedFields) {
  auto j = parsed(ev::Joined{4, "demo", "p1", "tok", {{"p2", "Bob \"B\"", {true, false, true}}}, false});
  EXPECT_EQ(j.at("v"), 1);
  EXPECT_EQ(j.at("type"), "ok");
  EXPECT_EQ(j.at("re"), 4);
  EXPECT_EQ(j.at("peer"), "p1");
  EXPECT_EQ(j.at("resume"), "tok");
  auto peers = j.at("peers").as_array();
  ASSERT_EQ(peers.size(), 1u);
  EXPECT_EQ(peers[0].at("name"), "Bob \"B\"");
  EXPECT_EQ(peers[0].at("state").at("audioMuted"), true);
  EXPECT_EQ(peers[0].at("state").at("screenSharing"), true);

  auto s = parsed(ev::Signal{"p1", R"({"candidate":{"candidate":"a"}})"});
  EXPECT_EQ(s.at("type"), "signal");
  EXPECT_EQ(s.at("from"), "p1");
  EXPECT_EQ(s.at("data").at("candidate").at("candidate"), "a");

  auto c = parsed(ev::Chat{"p1", "Al\tice", "line1\nline2 \x01", 99});
  EXPECT_EQ(c.at("text"), "line1\nline2 \x01");
  EXPECT_EQ(c.at("name"), "Al\tice");
  EXPECT_EQ(c.at("ts"), 99);

  auto e = parsed(ev::Error{kNoRequest, ErrorCode::kRoomFull, "full"});
  EXPECT_EQ(e.at("code"), "room-full");
  EXPECT_FALSE(e.contains("re"));

  auto l = parsed(ev::PeerLeft{"p2", LeaveReason::kDisconnected});
  EXPECT_EQ(l.at("type"), "peer-left");
  EXPECT_EQ(l.at("reason"), "disconnected");

  auto m = parsed(ev::Message{"p1", "[1]", true});
  EXPECT_EQ(m.at("broadcast"), true);
  EXPECT_EQ(parsed(ev::Bye{ByeReason::kShutdown}).at("reason"), "shutdown");
  EXPECT_EQ(parsed(ev::Bye{ByeReason::kTimeout}).at("reason"), "timeout");
  EXPECT_EQ(parsed(ev::Bye{ByeReason::kReplaced}).at("reason"), "replaced");
  EXPECT_EQ(parsed(ev::PeerState{"p", {false, true, false}}).at("state").at("videoOff"), true);

  auto speaker = parsed(ev::ActiveSpeaker{"p\"2"});
  EXPECT_EQ(speaker.at("type"), "active-speaker");
  EXPECT_EQ(speaker.at("peer"), "p\"2");
}

TEST(NativeEncode, HelloCarriesTheLimits) {
  Limits limits;
  limits.maxMessageBytes = 1000;
  auto h = json::parse(encodeHello(limits, Millis(5000), "1.2.3")).as_object();
  EXPECT_EQ(h.at("type"), "hello");
  EXPECT_EQ(h.at("heartbeat"), 5000);
  EXPECT_EQ(h.at("version"), "1.2.3");
  EXPECT_EQ(h.at("limits").at("maxMessageBytes"), 1000);
}

TEST(NativeEncode, DecodedDataRoundTripsThroughTheRelay) {
  Request r = ok(R"({"v":1,"type":"signal","to":"b","data":{"sdp":"a\u0000b","n":[1.5,null,true]}})");
  auto out = parsed(ev::Signal{"a", r.data});
  EXPECT_EQ(out.at("data"), json::parse(R"({"sdp":"a\u0000b","n":[1.5,null,true]})"));
}

}  // namespace
}  // namespace kaiwa::signal::native

namespace kaiwa::signal::native {
namespace {

TEST(NativeDecode, NumbersWithoutJsonTextAreRefused) {
  auto r = decode(R"({"v":1,"type":"message","data":{"x":[1,1e400]}})");
  ASSERT_TRUE(std::holds_alternative<DecodeError>(r));
  EXPECT_NE(std::get<DecodeError>(r).message.find("out of range"), std::string::npos);
  EXPECT_TRUE(std::holds_alternative<Request>(decode(R"({"v":1,"type":"message","data":1e300})")));
}

}  // namespace
}  // namespace kaiwa::signal::native

// decode() reads a message in one pass of Boost.JSON's validating parser, without a DOM, and writes `data` out as it
// goes. These tests hold it to what a parsed document would give.
namespace kaiwa::signal::native {
namespace {

std::string messageWith(std::string_view data) {
  return R"({"v":1,"type":"message","to":"p","data":)" + std::string(data) + "}";
}

// The relayed text of `data`: valid JSON, equal in value to what was sent.
std::string relayed(std::string_view data) {
  Request r = ok(messageWith(data));
  json::error_code ec;
  json::value back = json::parse(r.data, ec);
  EXPECT_FALSE(ec) << r.data << " is not valid JSON";
  EXPECT_EQ(back, json::parse(data)) << "sent " << data << ", relayed " << r.data;
  return r.data;
}

TEST(NativeDecodeData, TextWithoutEscapesIsRelayedAsSent) {
  // Numbers keep their own text (a DOM would have written 1.5E0, 0, 1E2).
  EXPECT_EQ(relayed(R"({"sdp":"v=0","n":[1.50,-0,1E+2,12345678901234567890123,-9223372036854775808]})"),
            R"({"sdp":"v=0","n":[1.50,-0,1E+2,12345678901234567890123,-9223372036854775808]})");
  EXPECT_EQ(relayed(R"("x")"), R"("x")");
  EXPECT_EQ(relayed("true"), "true");
  EXPECT_EQ(relayed("null"), "null");
  EXPECT_EQ(relayed("-12.5e-3"), "-12.5e-3");
  EXPECT_EQ(relayed("{}"), "{}");
  EXPECT_EQ(relayed("[[],{},[{}]]"), "[[],{},[{}]]");
  EXPECT_EQ(relayed(R"({"data":{"data":1}})"), R"({"data":{"data":1}})");
  EXPECT_EQ(relayed(" \t\r\n{ \"a\" : [ 1 , 2 ] , \"b\" : { } } "), R"({"a":[1,2],"b":{}})");
}

TEST(NativeDecodeData, EscapesAndUnicodeRoundTrip) {
  relayed(R"("a\"b\\c\/d\b\f\n\r\t\u0000\u001f\u007f")");
  relayed(R"("\u00e9\u4e2d\ud83d\ude00 \u2028\u2029")");
  relayed("\"é中😀\"");
  relayed(R"({"k\u0065y":1,"\"":2,"":3,"\\":{"\n":[]}})");
  EXPECT_EQ(relayed(R"("\u0041\/")"), R"("A/")");
  EXPECT_EQ(relayed(R"("\u0001")"), R"("\u0001")");
  // Longer than the parser's buffer for unescaped text, escapes throughout.
  std::string big = "\"";
  for (int i = 0; i < 3000; ++i) big += i % 7 ? "ab\\u00e9" : "\\r\\n\\\"";
  big += "\"";
  relayed(big);
  std::string keys = "{";
  for (int i = 0; i < 200; ++i) {
    keys.append(i ? ",\"" : "\"").append(50, 'k').append("\\t").append(std::to_string(i)).append("\":");
    keys.append(std::to_string(i));
  }
  keys += "}";
  relayed(keys);
}

TEST(NativeDecodeData, InvalidJsonIsRefused) {
  for (std::string data :
       {"[1,}",     "[1,]",    "{\"a\":1,}",  "01",           "NaN",       "Infinity", "-",        "1.",
        ".5",       "\"\\x\"", "\"\\ud800\"", "\"\\udc00x\"", "\"a\xff\"", "\"\xc3\"", "\"\x01\"", "'x'",
        "[1]/*c*/", "{\"a\"}", "tru",         "nul",          "[",         "\"abc"}) {
    DecodeError e = bad(messageWith(data));
    EXPECT_EQ(e.code, ErrorCode::kBadMessage) << data;
    EXPECT_NE(e.message.find("not valid JSON"), std::string::npos) << data << ": " << e.message;
  }
  EXPECT_NE(bad(R"({"v":1,"type":"ping"} {})").message.find("not valid JSON"), std::string::npos);
  EXPECT_NE(bad(R"({"v":1,"type":"ping"}x)").message.find("not valid JSON"), std::string::npos);
  EXPECT_NE(bad("").message.find("not valid JSON"), std::string::npos);
  EXPECT_NE(bad(R"({"v":1,"type":"ping")").message.find("not valid JSON"), std::string::npos);
  EXPECT_TRUE(std::holds_alternative<Request>(decode(" {\"v\":1,\"type\":\"ping\"}\n")));
}

TEST(NativeDecodeData, NumbersOutOfRangeAreRefusedWherePresent) {
  std::string huge(401, '0');
  huge[0] = '1';
  for (std::string data : {std::string("1e400"), std::string("-1e400"), std::string(R"([1,{"a":[2e999]}])"),
                           std::string(R"({"x":1E309})"), huge}) {
    DecodeError e = bad(messageWith(data));
    EXPECT_EQ(e.code, ErrorCode::kBadMessage) << data;
    EXPECT_NE(e.message.find("out of range"), std::string::npos) << data << ": " << e.message;
  }
  relayed("1e-400");  // underflows to 0: a number with JSON text
  relayed("1.7976931348623157e308");
  // The last "data" counts, as in a parsed object.
  EXPECT_EQ(ok(R"({"v":1,"type":"message","data":1e400,"data":[1]})").data, "[1]");
  EXPECT_EQ(bad(R"({"v":1,"type":"message","data":[1],"data":{"a":1e400}})").code, ErrorCode::kBadMessage);
  // Outside data nothing is relayed: the field rules apply as before.
  EXPECT_TRUE(std::holds_alternative<Request>(decode(R"({"v":1,"type":"ping","extra":1e400})")));
  EXPECT_NE(bad(R"({"v":1,"type":"ping","id":1e400})").message.find("'id'"), std::string::npos);
  // Earlier faults are reported first.
  EXPECT_NE(bad(R"({"v":2,"type":"message","data":1e400})").message.find("'v'"), std::string::npos);
}

TEST(NativeDecodeData, NestingIsLimitedTo32Levels) {
  // The message object is one level, so `data` may nest 31 deep.
  auto nested = [](int n) { return std::string(n, '[') + std::string(n, ']'); };
  relayed(nested(31));
  EXPECT_NE(bad(messageWith(nested(32))).message.find("not valid JSON"), std::string::npos);
  std::string objects;
  for (int i = 0; i < 31; ++i) objects += R"({"a":)";
  objects += "1" + std::string(31, '}');
  relayed(objects);
  EXPECT_EQ(bad(messageWith(R"({"a":)" + objects + "}")).code, ErrorCode::kBadMessage);
}

TEST(NativeDecodeFields, WrongTypesAreNamed) {
  EXPECT_NE(bad(R"({"v":"1","type":"ping"})").message.find("'v'"), std::string::npos);
  EXPECT_NE(bad(R"({"v":1.0,"type":"ping"})").message.find("'v'"), std::string::npos);
  EXPECT_NE(bad(R"({"v":1,"type":5})").message.find("'type'"), std::string::npos);
  EXPECT_NE(bad(R"({"v":1,"type":"signal","to":5,"data":1})").message.find("'to' must be a string"), std::string::npos);
  EXPECT_NE(bad(R"({"v":1,"type":"message","to":null,"data":1})").message.find("'to' must be a string"),
            std::string::npos);
  EXPECT_NE(bad(R"({"v":1,"type":"join","room":null,"name":"a"})").message.find("'room' must be a string"),
            std::string::npos);
  EXPECT_NE(bad(R"({"v":1,"type":"chat","text":["x"]})").message.find("'text' must be a string"), std::string::npos);
  EXPECT_NE(bad(R"({"v":1,"type":"resume","room":"r","peer":"p"})").message.find("'resume'"), std::string::npos);
  EXPECT_NE(bad(R"({"v":1,"type":"state","state":5})").message.find("must be an object"), std::string::npos);
  EXPECT_NE(bad(R"({"v":1,"type":"state","state":[{"audioMuted":true}]})").message.find("must be an object"),
            std::string::npos);
  EXPECT_NE(bad(R"({"v":1,"type":"state","state":{"videoOff":{}}})").message.find("state.videoOff"), std::string::npos);
  EXPECT_NE(bad(R"({"v":1,"type":"join","room":"r","name":"a","state":{"screenSharing":1}})")
                .message.find("state.screenSharing"),
            std::string::npos);
  EXPECT_NE(bad(R"({"v":1,"type":"state"})").message.find("missing field 'state'"), std::string::npos);
  EXPECT_NE(bad(R"({"v":1,"type":"ping","id":1.5})").message.find("'id'"), std::string::npos);
  EXPECT_NE(bad(R"({"v":1,"type":"ping","id":9223372036854775808})").message.find("'id'"), std::string::npos);
  EXPECT_EQ(ok(R"({"v":1,"type":"ping","id":9223372036854775807})").id, INT64_MAX);
  for (std::string root : {"\"x\"", "[]", "1", "null", "[{\"v\":1,\"type\":\"ping\"}]"}) {
    EXPECT_NE(bad(root).message.find("object"), std::string::npos) << root;
  }
}

TEST(NativeDecodeFields, RepeatedFieldsCountWithTheirLastValue) {
  Request r = ok(R"({"v":2,"v":1,"type":"ping","type":"message","to":"a","to":"b","data":1,"data":{"x":2},)"
                 R"("id":1,"id":8})");
  EXPECT_EQ(r.type, RequestType::kMessage);
  EXPECT_EQ(r.to, "b");
  EXPECT_EQ(r.data, R"({"x":2})");
  EXPECT_EQ(r.id, 8);
  Request s = ok(R"({"v":1,"type":"state","state":{"audioMuted":true},"state":{"videoOff":true,"videoOff":false}})");
  EXPECT_FALSE(s.state.audioMuted.has_value());
  EXPECT_EQ(s.state.videoOff, std::optional<bool>(false));
  EXPECT_EQ(bad(R"({"v":1,"type":"signal","to":"a","to":7,"data":1})").code, ErrorCode::kBadMessage);
  EXPECT_EQ(ok(R"({"v":1,"type":"signal","to":7,"to":"a","data":1})").to, "a");
}

TEST(NativeDecodeFields, NamesAreReadAfterTheirEscapes) {
  EXPECT_EQ(ok(R"({"v":1,"typ\u0065":"ping"})").type, RequestType::kPing);
  EXPECT_EQ(ok(R"({"v":1,"type":"message","d\u0061ta":"x"})").data, R"("x")");
  EXPECT_EQ(ok(R"({"v":1,"type":"chat","text":"a\u0000b\nc"})").text, std::string("a\0b\nc", 5));
  EXPECT_EQ(ok(R"({"v":1,"type":"state","state":{"audio\u004duted":true}})").state.audioMuted,
            std::optional<bool>(true));
  // Nested or longer names are not fields.
  EXPECT_NE(bad(R"({"v":1,"type":"message","x":{"data":1}})").message.find("'data'"), std::string::npos);
  EXPECT_NE(bad(R"({"v":1,"type":"message","datadatadatadatadata":1})").message.find("'data'"), std::string::npos);
  EXPECT_FALSE(ok(R"({"v":1,"type":"state","state":{"x":{"audioMuted":"no"}}})").state.audioMuted.has_value());
}

TEST(NativeDecodeFields, OnlyTheFieldsOfTheTypeAreKept) {
  Request j = ok(R"({"v":1,"type":"join","room":"r","name":"a","to":"x","data":[1],"text":"t","peer":"p"})");
  EXPECT_TRUE(j.to.empty());
  EXPECT_TRUE(j.data.empty());
  EXPECT_TRUE(j.text.empty());
  EXPECT_TRUE(j.peer.empty());
  Request m = ok(R"({"v":1,"type":"message","room":"r","data":2,"state":{"audioMuted":true}})");
  EXPECT_TRUE(m.room.empty());
  EXPECT_FALSE(m.state.audioMuted.has_value());
  EXPECT_EQ(m.data, "2");
}

}  // namespace
}  // namespace kaiwa::signal::native

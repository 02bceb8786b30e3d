#include "signal/native/codec.hpp"

#include <boost/json.hpp>
#include <gtest/gtest.h>

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
  EXPECT_NE(bad(R"({"v":1,"type":"state","state":{"audioMuted":"yes"}})").message.find("boolean"),
            std::string::npos);
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

json::object parsed(const Event& e) { return json::parse(encode(e)).as_object(); }

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
  EXPECT_EQ(parsed(ev::Bye{"shutdown"}).at("reason"), "shutdown");
  EXPECT_EQ(parsed(ev::PeerState{"p", {false, true, false}}).at("state").at("videoOff"), true);
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

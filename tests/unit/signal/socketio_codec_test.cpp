// Engine.IO v4 and Socket.IO v5 wire formats (shared docs/protocols.md; socketio/engine.io-protocol,
// socketio/socket.io-protocol).
#include "signal/socketio/codec.hpp"

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <regex>
#include <set>

namespace kaiwa::signal::socketio {
namespace {

namespace json = boost::json;
using namespace std::literals;

// ---------------------------------------------------------------------------------------------------- Engine.IO

TEST(EngineIoFrame, DecodesEveryTextTypeWithItsData) {
  for (int t = 0; t <= 6; ++t) {
    std::string frame = std::to_string(t) + "data " + std::to_string(t);
    auto p = decodeFrame(frame, false);
    ASSERT_TRUE(p) << frame;
    EXPECT_EQ(static_cast<int>(p->type), t);
    EXPECT_EQ(p->data, "data " + std::to_string(t));
    EXPECT_FALSE(p->binary);
    EXPECT_EQ(encodeFrame(*p), frame);
  }
  auto probe = decodeFrame("2probe", false);
  ASSERT_TRUE(probe);
  EXPECT_EQ(probe->type, EioType::kPing);
  EXPECT_EQ(probe->data, "probe");
  auto pong = decodeFrame("3", false);
  ASSERT_TRUE(pong);
  EXPECT_EQ(pong->type, EioType::kPong);
  EXPECT_EQ(pong->data, "");
  auto msg = decodeFrame(R"(42["event",1])", false);
  ASSERT_TRUE(msg);
  EXPECT_EQ(msg->type, EioType::kMessage);
  EXPECT_EQ(msg->data, R"(2["event",1])");
}

TEST(EngineIoFrame, RejectsEmptyAndUnknownTypes) {
  for (std::string_view frame : {""sv, "7"sv, "9x"sv, "a"sv, "b4"sv, "/"sv, " 4"sv, "\x00"sv, "\xff"sv}) {
    EXPECT_FALSE(decodeFrame(frame, false)) << frame;
  }
}

TEST(EngineIoFrame, BinaryFrameIsARawBinaryMessage) {
  std::string bytes = "\x00\x01\xff\x1e"s + "4text";
  auto p = decodeFrame(bytes, true);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->type, EioType::kMessage);
  EXPECT_TRUE(p->binary);
  EXPECT_EQ(p->data, bytes);
  EXPECT_EQ(encodeFrame(*p), bytes);  // no type digit over WebSocket
  auto empty = decodeFrame("", true);
  ASSERT_TRUE(empty);
  EXPECT_TRUE(empty->binary);
  EXPECT_EQ(empty->data, "");
}

TEST(EngineIoPayload, SplitsOnRecordSeparator) {
  auto ps = decodePayload(
      "4hello\x1e"
      "2\x1e"
      "1\x1e"
      "42[\"a\"]\x1e"
      "6");
  ASSERT_TRUE(ps);
  ASSERT_EQ(ps->size(), 5u);
  EXPECT_EQ((*ps)[0].type, EioType::kMessage);
  EXPECT_EQ((*ps)[0].data, "hello");
  EXPECT_EQ((*ps)[1].type, EioType::kPing);
  EXPECT_EQ((*ps)[1].data, "");
  EXPECT_EQ((*ps)[2].type, EioType::kClose);
  EXPECT_EQ((*ps)[3].data, "2[\"a\"]");
  EXPECT_EQ((*ps)[4].type, EioType::kNoop);
  for (const auto& p : *ps) EXPECT_FALSE(p.binary);

  auto one = decodePayload("40");
  ASSERT_TRUE(one);
  ASSERT_EQ(one->size(), 1u);
  EXPECT_EQ((*one)[0].type, EioType::kMessage);
  EXPECT_EQ((*one)[0].data, "0");
}

TEST(EngineIoPayload, BinaryPartsAreBase64) {
  // The spec's example: 4hello \x1e b<base64 of 01 02 03 04>.
  auto ps = decodePayload(
      "4hello\x1e"
      "bAQIDBA==");
  ASSERT_TRUE(ps);
  ASSERT_EQ(ps->size(), 2u);
  EXPECT_FALSE((*ps)[0].binary);
  EXPECT_TRUE((*ps)[1].binary);
  EXPECT_EQ((*ps)[1].type, EioType::kMessage);
  EXPECT_EQ((*ps)[1].data, "\x01\x02\x03\x04");

  auto all = decodePayload(
      "b+/+/\x1e"
      "b");
  ASSERT_TRUE(all);
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[0].data, "\xfb\xff\xbf");  // '+' and '/' of the standard alphabet
  EXPECT_TRUE((*all)[1].binary);
  EXPECT_EQ((*all)[1].data, "");

  auto unpadded = decodePayload("bAQIDBA");
  ASSERT_TRUE(unpadded);
  EXPECT_EQ((*unpadded)[0].data, "\x01\x02\x03\x04");
}

TEST(EngineIoPayload, RejectsMalformedParts) {
  for (std::string_view body : {
           ""sv,        // nothing at all is an empty packet
           "4a\x1e"sv,  // trailing separator: empty last part
           "\x1e"
           "4a"sv,  // empty first part
           "4a\x1e\x1e"
           "4b"sv,  // empty middle part
           "7x"sv,  // unknown type
           "4a\x1e"
           "x"sv,      // garbage part
           "bAQ-D"sv,  // base64url characters are not base64
           "bAQ_D"sv,
           "bA"sv,   // impossible length
           "bAB"sv,  // non-canonical trailing bits ... 'B' leaves bits set
           "b!!!!"sv,
           "b AQID"sv,
       }) {
    EXPECT_FALSE(decodePayload(body)) << body;
  }
}

TEST(EngineIoPayload, LimitsThePacketCount) {
  std::string body;
  EioPacket ping{EioType::kPing, "", false};
  for (int i = 0; i < 5; ++i) appendToPayload(body, ping);
  EXPECT_EQ(body,
            "2\x1e"
            "2\x1e"
            "2\x1e"
            "2\x1e"
            "2");
  EXPECT_TRUE(decodePayload(body, 5));
  EXPECT_FALSE(decodePayload(body, 4));
  EXPECT_FALSE(decodePayload("2", 0));
}

TEST(EngineIoPayload, AppendBuildsWhatDecodeReads) {
  std::vector<EioPacket> packets = {
      {EioType::kOpen, R"({"sid":"x"})", false},
      {EioType::kMessage, "2[\"ev\"]", false},
      {EioType::kMessage, "\x00\x01\xfe\xff"s, true},
      {EioType::kNoop, "", false},
      {EioType::kMessage, "", true},
      {EioType::kMessage, "abcde", true},
  };
  std::string body;
  for (const auto& p : packets) appendToPayload(body, p);
  EXPECT_EQ(body,
            "0{\"sid\":\"x\"}\x1e"
            "42[\"ev\"]\x1e"
            "bAAH+/w==\x1e"
            "6\x1e"
            "b\x1e"
            "bYWJjZGU=");
  auto back = decodePayload(body);
  ASSERT_TRUE(back);
  ASSERT_EQ(back->size(), packets.size());
  for (std::size_t i = 0; i < packets.size(); ++i) {
    EXPECT_EQ((*back)[i].type, packets[i].type) << i;
    EXPECT_EQ((*back)[i].data, packets[i].data) << i;
    EXPECT_EQ((*back)[i].binary, packets[i].binary) << i;
  }
}

TEST(EngineIoOpen, HandshakeDataInTheReferenceKeyOrder) {
  EXPECT_EQ(encodeOpenData("lv_VI97HAXpY6yYWAAAC", true, 25000, 20000, 1000000),
            R"({"sid":"lv_VI97HAXpY6yYWAAAC","upgrades":["websocket"],"pingInterval":25000,)"
            R"("pingTimeout":20000,"maxPayload":1000000})");
  EXPECT_EQ(encodeOpenData("abc", false, 1, 2, 3),
            R"({"sid":"abc","upgrades":[],"pingInterval":1,"pingTimeout":2,"maxPayload":3})");
  // Whatever the sid, the result is JSON that gives it back.
  std::string odd = "a\"b\\c\n";
  auto v = json::parse(encodeOpenData(odd, true, 25000, 20000, 1000000));
  EXPECT_EQ(v.at("sid").as_string(), odd);
  EXPECT_EQ(v.at("upgrades").as_array().size(), 1u);
}

TEST(EngineIoError, BodiesAsEngineIoSendsThem) {
  EXPECT_EQ(encodeError(EioError::kUnknownTransport), R"({"code":0,"message":"Transport unknown"})");
  EXPECT_EQ(encodeError(EioError::kUnknownSid), R"({"code":1,"message":"Session ID unknown"})");
  EXPECT_EQ(encodeError(EioError::kBadHandshakeMethod), R"({"code":2,"message":"Bad handshake method"})");
  EXPECT_EQ(encodeError(EioError::kBadRequest), R"({"code":3,"message":"Bad request"})");
  EXPECT_EQ(encodeError(EioError::kForbidden), R"({"code":4,"message":"Forbidden"})");
  EXPECT_EQ(encodeError(EioError::kUnsupportedProtocolVersion),
            R"({"code":5,"message":"Unsupported protocol version"})");
}

// ---------------------------------------------------------------------------------------------------- Socket.IO

void expectSame(const SioPacket& a, const SioPacket& b, std::string_view what) {
  EXPECT_EQ(a.type, b.type) << what;
  EXPECT_EQ(a.nsp, b.nsp) << what;
  EXPECT_EQ(a.ackId, b.ackId) << what;
  EXPECT_EQ(a.attachments, b.attachments) << what;
  EXPECT_EQ(a.data.has_value(), b.data.has_value()) << what;
  if (a.data && b.data) {
    EXPECT_EQ(*a.data, *b.data) << what;
  }
  EXPECT_EQ(a.buffers, b.buffers) << what;
}

TEST(SocketIoDecode, ConnectDefaultAndNamedNamespace) {
  auto c = decodePacket("0");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->type, SioType::kConnect);
  EXPECT_EQ(c->nsp, "/");
  EXPECT_FALSE(c->data);
  EXPECT_FALSE(c->ackId);

  auto auth = decodePacket(R"(0{"token":"abc"})");
  ASSERT_TRUE(auth);
  EXPECT_EQ(auth->nsp, "/");
  ASSERT_TRUE(auth->data);
  EXPECT_EQ(auth->data->at("token").as_string(), "abc");

  auto admin = decodePacket(R"(0/admin,{"token":"t"})");
  ASSERT_TRUE(admin);
  EXPECT_EQ(admin->nsp, "/admin");
  EXPECT_EQ(admin->data->at("token").as_string(), "t");

  auto bare = decodePacket("0/admin,");
  ASSERT_TRUE(bare);
  EXPECT_EQ(bare->nsp, "/admin");
  EXPECT_FALSE(bare->data);

  // Without the ',' the namespace ends with the packet, as socket.io-parser reads it (the server then refuses an
  // unknown namespace with CONNECT_ERROR instead of dropping the connection).
  auto noComma = decodePacket("0/random");
  ASSERT_TRUE(noComma);
  EXPECT_EQ(noComma->type, SioType::kConnect);
  EXPECT_EQ(noComma->nsp, "/random");
  EXPECT_FALSE(noComma->data);
  EXPECT_FALSE(noComma->ackId);
  EXPECT_EQ(encodePacket(*noComma), "0/random,");
  auto disconnect = decodePacket("1/random");
  ASSERT_TRUE(disconnect);
  EXPECT_EQ(disconnect->nsp, "/random");
}

TEST(SocketIoDecode, EventWithAndWithoutAckId) {
  auto e = decodePacket(R"(2["event",{"a":1},"x"])");
  ASSERT_TRUE(e);
  EXPECT_EQ(e->type, SioType::kEvent);
  EXPECT_FALSE(e->ackId);
  ASSERT_TRUE(e->data);
  EXPECT_EQ(e->data->as_array().size(), 3u);
  EXPECT_EQ(e->data->as_array()[0].as_string(), "event");

  // protocols.md: 4213["event",…] is an Engine.IO message carrying 213["event",…]: EVENT with ack id 13.
  auto eio = decodeFrame(R"(4213["event","arg"])", false);
  ASSERT_TRUE(eio);
  ASSERT_EQ(eio->type, EioType::kMessage);
  auto acked = decodePacket(eio->data);
  ASSERT_TRUE(acked);
  EXPECT_EQ(acked->type, SioType::kEvent);
  EXPECT_EQ(acked->ackId, 13u);
  EXPECT_EQ(acked->nsp, "/");
  EXPECT_EQ(acked->data->as_array()[1].as_string(), "arg");

  auto nsp = decodePacket(R"(2/chat,7["msg"])");
  ASSERT_TRUE(nsp);
  EXPECT_EQ(nsp->nsp, "/chat");
  EXPECT_EQ(nsp->ackId, 7u);
}

TEST(SocketIoDecode, AckIdsUpToMaxSafeInteger) {
  auto max = decodePacket(R"(29007199254740991["e"])");
  ASSERT_TRUE(max);
  EXPECT_EQ(max->ackId, 9007199254740991u);
  EXPECT_FALSE(decodePacket(R"(29007199254740992["e"])"));
  EXPECT_FALSE(decodePacket(R"(2123456789012345678901234567890["e"])"));
  auto zero = decodePacket("30[]");
  ASSERT_TRUE(zero);
  EXPECT_EQ(zero->ackId, 0u);
  auto leading = decodePacket(R"(2007["e"])");
  ASSERT_TRUE(leading);
  EXPECT_EQ(leading->ackId, 7u);
}

TEST(SocketIoDecode, AckDisconnectConnectError) {
  auto ack = decodePacket(R"(313["ok",{"n":1}])");
  ASSERT_TRUE(ack);
  EXPECT_EQ(ack->type, SioType::kAck);
  EXPECT_EQ(ack->ackId, 13u);
  EXPECT_EQ(ack->data->as_array().size(), 2u);
  auto emptyAck = decodePacket("35[]");
  ASSERT_TRUE(emptyAck);
  EXPECT_TRUE(emptyAck->data->as_array().empty());

  auto d = decodePacket("1");
  ASSERT_TRUE(d);
  EXPECT_EQ(d->type, SioType::kDisconnect);
  EXPECT_FALSE(d->data);
  auto dn = decodePacket("1/admin,");
  ASSERT_TRUE(dn);
  EXPECT_EQ(dn->nsp, "/admin");

  auto err = decodePacket(R"(4{"message":"Not authorized"})");
  ASSERT_TRUE(err);
  EXPECT_EQ(err->type, SioType::kConnectError);
  EXPECT_EQ(err->data->at("message").as_string(), "Not authorized");
  auto errText = decodePacket(R"(4/admin,"refused")");
  ASSERT_TRUE(errText);
  EXPECT_EQ(errText->nsp, "/admin");
  EXPECT_EQ(errText->data->as_string(), "refused");
}

TEST(SocketIoDecode, BinaryEventWithPlaceholder) {
  auto eio = decodeFrame(R"(451-["event",{"_placeholder":true,"num":0}])", false);
  ASSERT_TRUE(eio);
  auto p = decodePacket(eio->data);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->type, SioType::kBinaryEvent);
  EXPECT_EQ(p->attachments, 1u);
  EXPECT_EQ(p->nsp, "/");
  EXPECT_FALSE(p->ackId);
  const auto& ph = p->data->as_array()[1].as_object();
  EXPECT_TRUE(ph.at("_placeholder").as_bool());
  EXPECT_EQ(ph.at("num").as_int64(), 0);
  EXPECT_TRUE(p->buffers.empty());

  auto full = decodePacket(R"(52-/up,9["file",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}])");
  ASSERT_TRUE(full);
  EXPECT_EQ(full->attachments, 2u);
  EXPECT_EQ(full->nsp, "/up");
  EXPECT_EQ(full->ackId, 9u);

  auto back = decodePacket(R"(61-3[{"_placeholder":true,"num":0}])");
  ASSERT_TRUE(back);
  EXPECT_EQ(back->type, SioType::kBinaryAck);
  EXPECT_EQ(back->attachments, 1u);
  EXPECT_EQ(back->ackId, 3u);
}

TEST(SocketIoDecode, RejectsEveryRuleOfTheHeader) {
  SioLimits limits;
  std::string deep = "2[\"e\"," + std::string(40, '[') + std::string(40, ']') + "]";
  for (std::string_view text : {
           // unknown or missing type
           ""sv,
           "7"sv,
           "9[]"sv,
           "x"sv,
           "/"sv,
           // binary types need "<n>-" with 1 <= n <= maxAttachments
           R"(5["e"])"sv,
           R"(5-["e"])"sv,
           R"(50-["e"])"sv,
           R"(51["e"])"sv,
           "61"sv,
           R"(517-["e"])"sv,
           R"(5x-["e"])"sv,
           R"(699999999999999999999999-[])"sv,
           // a namespace runs to ',' or to the end: here it swallows the event's data, which EVENT needs
           R"(2/admin["e"])"sv,
           "2/admin"sv,
           // CONNECT data: absent or an object
           "0[]"sv,
           R"(0"x")"sv,
           "0/a,1[]"sv,
           // DISCONNECT: no data
           "1{}"sv,
           "1[]"sv,
           // EVENT / BINARY_EVENT: a non-empty array whose first element is a string
           "2"sv,
           "2[]"sv,
           "2[1]"sv,
           "2[null]"sv,
           R"(2{"e":1})"sv,
           R"(2"e")"sv,
           "27"sv,
           R"(51-[{"_placeholder":true,"num":0}])"sv,
           R"(51-[])"sv,
           // ACK / BINARY_ACK: an array
           "3"sv,
           "31"sv,
           R"(31{})"sv,
           R"(31"x")"sv,
           R"(61-1{})"sv,
           // CONNECT_ERROR: an object or a string
           "4"sv,
           "4[]"sv,
           "4true"sv,
           // JSON: valid, no non-finite numbers, nothing after it
           R"(2["e",1e400])"sv,
           R"(2["e",-1e999])"sv,
           R"(3[{"a":[1e309]}])"sv,
           R"(2["e"]x)"sv,
           R"(2["e"]])"sv,
           R"(2["e"]["f"])"sv,
           R"(2["e")"sv,
           R"(2['e'])"sv,
           R"(2["e",])"sv,
           "2[\"\xff\"]"sv,
           R"(2["e",NaN])"sv,
           R"(0{"a":1}{})"sv,
       }) {
    EXPECT_FALSE(decodePacket(text, limits)) << text;
  }
  EXPECT_FALSE(decodePacket(deep, limits));
  SioLimits deeper;
  deeper.maxJsonDepth = 64;
  EXPECT_TRUE(decodePacket(deep, deeper));
}

TEST(SocketIoDecode, AttachmentLimitIsConfigurable) {
  std::string sixteen = R"(516-["e"])";
  std::string seventeen = R"(517-["e"])";
  EXPECT_TRUE(decodePacket(sixteen));
  EXPECT_FALSE(decodePacket(seventeen));
  SioLimits two;
  two.maxAttachments = 2;
  EXPECT_TRUE(decodePacket(R"(52-["e"])", two));
  EXPECT_FALSE(decodePacket(R"(53-["e"])", two));
}

TEST(SocketIoEncode, HotPathEncoders) {
  EXPECT_EQ(encodeEvent("user-joined", R"("abc")"), R"(2["user-joined","abc"])");
  EXPECT_EQ(encodeEvent("offer", R"({"from":"x"})", 7), R"(27["offer",{"from":"x"}])");
  EXPECT_EQ(encodeEvent("ping", ""), R"(2["ping"])");
  EXPECT_EQ(encodeEvent("two", R"(1,"b")", 9007199254740991), R"(29007199254740991["two",1,"b"])");
  EXPECT_EQ(encodeEvent("we\"ird\\\n\x01", ""), R"(2["we\"ird\\\n\u0001"])");
  EXPECT_EQ(encodeAck(13, R"("ok")"), R"(313["ok"])");
  EXPECT_EQ(encodeAck(0, ""), "30[]");
  // What the server sends decodes as the client would read it.
  auto e = decodePacket(encodeEvent("a\"b", R"({"x":[1,2]},null)", 42));
  ASSERT_TRUE(e);
  EXPECT_EQ(e->ackId, 42u);
  EXPECT_EQ(e->data->as_array()[0].as_string(), "a\"b");
  EXPECT_TRUE(e->data->as_array()[2].is_null());
}

TEST(SocketIoEncode, PacketsAsTheReferenceEncoderWritesThem) {
  SioPacket c;
  c.type = SioType::kConnect;
  c.data = json::object{{"sid", "abc"}};
  EXPECT_EQ(encodePacket(c), R"(0{"sid":"abc"})");
  c.nsp = "/admin";
  EXPECT_EQ(encodePacket(c), R"(0/admin,{"sid":"abc"})");
  c.data.reset();
  EXPECT_EQ(encodePacket(c), "0/admin,");

  SioPacket err;
  err.type = SioType::kConnectError;
  err.data = json::object{{"message", "Not authorized"}};
  EXPECT_EQ(encodePacket(err), R"(4{"message":"Not authorized"})");

  SioPacket d;
  d.type = SioType::kDisconnect;
  EXPECT_EQ(encodePacket(d), "1");

  SioPacket ack;
  ack.type = SioType::kAck;
  ack.ackId = 13;
  ack.data = json::array{"ok"};
  EXPECT_EQ(encodePacket(ack), R"(313["ok"])");

  SioPacket bin;
  bin.type = SioType::kBinaryEvent;
  bin.data = json::parse(R"(["event",{"_placeholder":true,"num":0}])");
  bin.buffers = {"\x01\x02"};
  bin.attachments = 5;  // what is written is buffers.size()
  EXPECT_EQ(encodePacket(bin), R"(51-["event",{"_placeholder":true,"num":0}])");
  bin.nsp = "/up";
  bin.ackId = 4;
  EXPECT_EQ(encodePacket(bin), R"(51-/up,4["event",{"_placeholder":true,"num":0}])");
}

TEST(SocketIoRoundTrip, EveryTypeDecodesToTheSamePacket) {
  for (std::string_view text : {
           "0"sv,
           R"(0{"token":"t"})"sv,
           R"(0/admin,{"sid":"x"})"sv,
           "0/admin,"sv,
           "1"sv,
           "1/a,"sv,
           R"(2["e"])"sv,
           R"(2/chat,12["e",{"a":[1,-2,"s",true,null]}])"sv,
           R"(25["e"])"sv,
           R"(3[])"sv,
           R"(37["r",1])"sv,
           R"(3/x,0[])"sv,
           R"(4{"message":"no"})"sv,
           R"(4"no")"sv,
           R"(4/n,{"message":"m","data":{}})"sv,
           R"(51-["e",{"_placeholder":true,"num":0}])"sv,
           R"(52-/b,3["e",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}])"sv,
           R"(61-7[{"_placeholder":true,"num":0}])"sv,
       }) {
    auto p = decodePacket(text);
    ASSERT_TRUE(p) << text;
    // Binary packets encode their count from the buffers: give them what the assembler would.
    for (std::size_t i = 0; i < p->attachments; ++i) p->buffers.push_back("buf" + std::to_string(i));
    std::string encoded = encodePacket(*p);
    EXPECT_EQ(encoded, text);
    auto again = decodePacket(encoded);
    ASSERT_TRUE(again) << encoded;
    again->buffers = p->buffers;
    expectSame(*p, *again, text);
  }
  // Non-canonical spellings decode to packets that encode canonically.
  auto lead = decodePacket(R"(2/,007 ["e"] )");
  ASSERT_TRUE(lead);
  EXPECT_EQ(encodePacket(*lead), R"(27["e"])");
}

// ------------------------------------------------------------------------------------------ BinaryAssembler

SioPacket binaryHeader(std::string_view text) {
  auto p = decodePacket(text);
  EXPECT_TRUE(p) << text;
  return p ? *p : SioPacket{};
}

TEST(SocketIoBinaryAssembler, CompletesInOrder) {
  BinaryAssembler a(1000);
  EXPECT_FALSE(a.waiting());
  EXPECT_FALSE(a.start(binaryHeader(R"(52-9["file",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}])")));
  EXPECT_TRUE(a.waiting());
  SioPacket done;
  EXPECT_EQ(a.add("first", done), BinaryAssembler::Result::kNeedMore);
  EXPECT_TRUE(a.waiting());
  EXPECT_EQ(a.add("\x00second"s, done), BinaryAssembler::Result::kComplete);
  EXPECT_FALSE(a.waiting());
  EXPECT_EQ(done.type, SioType::kBinaryEvent);
  EXPECT_EQ(done.ackId, 9u);
  ASSERT_EQ(done.buffers.size(), 2u);
  EXPECT_EQ(done.buffers[0], "first");
  EXPECT_EQ(done.buffers[1], "\x00second"s);
  EXPECT_EQ(encodePacket(done), R"(52-9["file",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}])");

  // The assembler is reusable, and its byte budget is per packet.
  EXPECT_FALSE(a.start(binaryHeader(R"(61-2[{"_placeholder":true,"num":0}])")));
  EXPECT_EQ(a.add(std::string(1000, 'x'), done), BinaryAssembler::Result::kComplete);
  EXPECT_EQ(done.type, SioType::kBinaryAck);
  EXPECT_EQ(done.buffers[0].size(), 1000u);
}

TEST(SocketIoBinaryAssembler, PacketWithoutAttachmentsReturnsAtOnce) {
  BinaryAssembler a(10);
  auto p = a.start(binaryHeader(R"(2["plain"])"));
  ASSERT_TRUE(p);
  EXPECT_EQ(p->type, SioType::kEvent);
  EXPECT_FALSE(a.waiting());
}

TEST(SocketIoBinaryAssembler, TooManyBytesIsAnError) {
  BinaryAssembler a(10);
  EXPECT_FALSE(a.start(binaryHeader(R"(52-["e",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}])")));
  SioPacket done;
  EXPECT_EQ(a.add("123456", done), BinaryAssembler::Result::kNeedMore);
  EXPECT_EQ(a.add("12345", done), BinaryAssembler::Result::kError);  // 11 > 10
  EXPECT_FALSE(a.waiting());
  EXPECT_EQ(a.add("1", done), BinaryAssembler::Result::kError);  // nothing waiting any more

  BinaryAssembler one(4);
  EXPECT_FALSE(one.start(binaryHeader(R"(51-["e",{"_placeholder":true,"num":0}])")));
  EXPECT_EQ(one.add("12345", done), BinaryAssembler::Result::kError);
  EXPECT_FALSE(one.start(binaryHeader(R"(51-["e",{"_placeholder":true,"num":0}])")));
  EXPECT_EQ(one.add("1234", done), BinaryAssembler::Result::kComplete);  // exactly maxBytes is fine
}

TEST(SocketIoBinaryAssembler, AttachmentWithNothingWaitingIsAnError) {
  BinaryAssembler a(100);
  SioPacket done;
  EXPECT_EQ(a.add("stray", done), BinaryAssembler::Result::kError);
  EXPECT_FALSE(a.start(binaryHeader(R"(51-["e",{"_placeholder":true,"num":0}])")));
  a.reset();
  EXPECT_FALSE(a.waiting());
  EXPECT_EQ(a.add("late", done), BinaryAssembler::Result::kError);
}

// ------------------------------------------------------------------------------------------ relayed events

constexpr std::string_view kFrom = "FROMFROMFROMFROMFROM";

TEST(SocketIoRelay, RulesForTheGuidesEvents) {
  EXPECT_EQ(ruleOf("offer", false).route, EventRoute::kDirected);
  EXPECT_EQ(ruleOf("answer", false).route, EventRoute::kDirected);
  EXPECT_EQ(ruleOf("ice-candidate", false).route, EventRoute::kDirected);
  EXPECT_EQ(ruleOf("call-user", false).relayedAs, "call-made");
  EXPECT_EQ(ruleOf("answer-call", false).relayedAs, "call-answered");
  EXPECT_EQ(ruleOf("signal", false).route, EventRoute::kBroadcast);
  for (auto e : {"join-room", "leave-room", "toggle-audio", "toggle-video"}) {
    EXPECT_EQ(ruleOf(e, false).route, EventRoute::kOther) << e;
    EXPECT_EQ(ruleOf(e, true).route, EventRoute::kOther) << e;
  }
  EXPECT_EQ(ruleOf("chat", false).route, EventRoute::kOther);
  EXPECT_EQ(ruleOf("chat", true).route, EventRoute::kBroadcast);
  EXPECT_EQ(ruleOf("chat", true).relayedAs, "chat");
}

TEST(SocketIoRelay, DirectedEventGetsFromLosesToAndAckId) {
  auto r = decodeRelayEvent(
      R"(27[ "offer" , {"to":"BBBBBBBBBBBBBBBBBBBB", "offer":{"type":"offer","sdp":"v=0\r\no=- 1 2 IN IP4 0.0.0.0"}, "n": 1.50e0 } ])",
      kFrom, false);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->route, EventRoute::kDirected);
  EXPECT_EQ(r->event, "offer");
  EXPECT_EQ(r->ackId, 7u);
  EXPECT_EQ(r->target, "BBBBBBBBBBBBBBBBBBBB");
  // Whitespace gone; escapes and the number's text as sent.
  EXPECT_EQ(
      r->frame,
      R"(42["offer",{"from":"FROMFROMFROMFROMFROM","offer":{"type":"offer","sdp":"v=0\r\no=- 1 2 IN IP4 0.0.0.0"},"n":1.50e0}])");
}

TEST(SocketIoRelay, DirectedEventDropsASpoofedFromAndKeepsNestedOnes) {
  auto r = decodeRelayEvent(
      R"(2["ice-candidate",{"from":"evil","candidate":{"to":"x","from":"y"},"to":"AAAAAAAAAAAAAAAAAAAA"},[1,{"to":2}],null])",
      kFrom, false);
  ASSERT_TRUE(r);
  EXPECT_FALSE(r->ackId);
  EXPECT_EQ(r->target, "AAAAAAAAAAAAAAAAAAAA");
  EXPECT_EQ(
      r->frame,
      R"(42["ice-candidate",{"from":"FROMFROMFROMFROMFROM","candidate":{"to":"x","from":"y"}},[1,{"to":2}],null])");
}

TEST(SocketIoRelay, LastToCountsAndOtherDuplicatesPassAsSent) {
  auto r = decodeRelayEvent(R"(2["answer",{"to":"first","a":1,"to":"second","a":2}])", kFrom, false);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->target, "second");
  EXPECT_EQ(r->frame, R"(42["answer",{"from":"FROMFROMFROMFROMFROM","a":1,"a":2}])");
}

TEST(SocketIoRelay, EscapesDecodedByTheParserAreWrittenAgain) {
  auto r = decodeRelayEvent(R"(2["offer",{"t\u006f":"B","k\"ey":"\u00e9\u0001\"\\\/"}])", kFrom, false);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->target, "B");  // "t\u006f" is "to"
  EXPECT_EQ(r->frame, "42[\"offer\",{\"from\":\"FROMFROMFROMFROMFROM\",\"k\\\"ey\":\"\xC3\xA9\\u0001\\\"\\\\/\"}]");
  auto back = decodePacket(std::string_view(r->frame).substr(1));
  ASSERT_TRUE(back);
  EXPECT_EQ(back->data->as_array()[1].as_object().at("k\"ey").as_string(), "\xC3\xA9\x01\"\\/");
}

TEST(SocketIoRelay, BroadcastRenamesAndPutsFromLast) {
  auto r = decodeRelayEvent(R"(2["call-user",{"from":"spoof","offer":{"sdp":"x"},"to":"kept"}])", kFrom, false);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->route, EventRoute::kBroadcast);
  EXPECT_EQ(r->event, "call-user");
  EXPECT_EQ(r->relayedAs, "call-made");
  EXPECT_EQ(r->frame, R"(42["call-made",{"offer":{"sdp":"x"},"to":"kept","from":"FROMFROMFROMFROMFROM"}])");

  auto plain = decodeRelayEvent(R"(25["signal","text",3,{"from":1}])", kFrom, false);
  ASSERT_TRUE(plain);
  EXPECT_EQ(plain->ackId, 5u);
  EXPECT_EQ(plain->frame, R"(42["signal","text",3,{"from":1}])");  // `from` only in an object second argument

  auto bare = decodeRelayEvent(R"(2["answer-call"])", kFrom, false);
  ASSERT_TRUE(bare);
  EXPECT_EQ(bare->frame, R"(42["call-answered"])");

  EXPECT_FALSE(decodeRelayEvent(R"(2["chat",{"text":"hi"}])", kFrom, false));
  auto unknown = decodeRelayEvent(R"(2["chat",{"text":"hi"}])", kFrom, true);
  ASSERT_TRUE(unknown);
  EXPECT_EQ(unknown->relayedAs, "chat");
  EXPECT_EQ(unknown->frame, R"(42["chat",{"text":"hi","from":"FROMFROMFROMFROMFROM"}])");
}

TEST(SocketIoRelay, LeavesEverythingElseToDecodePacket) {
  // Not for the fast path, but valid: decodePacket takes them.
  for (std::string_view text : {
           R"(2["join-room","r1"])", R"(2["toggle-audio",{"roomId":"r1","isMuted":true}])", R"(2["unknown",{}])",
           R"(2["offer",{"offer":{}}])",             // no `to`
           R"(2["offer",{"to":7}])",                 // `to` not a string
           R"(2["offer",{"to":"a","to":{"x":1}}])",  // the last `to` is not a string
           R"(2["offer","BBBB"])",                   // no object
           R"(2["offer"])", R"(2["signal",{"_placeholder":true,"num":0}])",
           R"(2/chat,["offer",{"to":"B"}])",  // a namespace
           R"(2/,["offer",{"to":"B"}])",
           R"(2 ["offer",{"to":"B"}])",  // whitespace before the JSON
       }) {
    EXPECT_FALSE(decodeRelayEvent(text, kFrom, false)) << text;
    EXPECT_TRUE(decodePacket(text)) << text;
  }
  // Malformed, or refused by decodePacket too.
  for (std::string_view text : {
           R"(2["offer",{"to":"B"})",
           R"(2["offer",{"to":"B"}]x)",
           R"(2["offer",{"to":"B","n":1e400}])",
           R"(2["offer",{"to":"B",}])",
           "2[\"offer\",{\"to\":\"B\",\"s\":\"\xC3\"}]",  // not UTF-8
           R"(29007199254740992["offer",{"to":"B"}])",    // ack id past 2^53 - 1
           R"(2{"offer":1})",
           R"(2[1,{"to":"B"}])",
           R"(51-["offer",{"to":"B","b":{"_placeholder":true,"num":0}}])",
           R"(4["offer",{"to":"B"}])",
           "2",
           "",
       }) {
    EXPECT_FALSE(decodeRelayEvent(text, kFrom, false)) << text;
  }
  std::string deep = R"(2["offer",{"to":"B","d":)" + std::string(40, '[') + std::string(40, ']') + "}]";
  EXPECT_FALSE(decodeRelayEvent(deep, kFrom, false));
  EXPECT_FALSE(decodePacket(deep));
}

TEST(SocketIoId, TwentyBase64UrlCharacters) {
  std::set<std::string> seen;
  std::regex shape("[A-Za-z0-9_-]{20}");
  for (int i = 0; i < 200; ++i) {
    std::string id = randomSocketId();
    EXPECT_TRUE(std::regex_match(id, shape)) << id;
    seen.insert(id);
  }
  EXPECT_EQ(seen.size(), 200u);
}

}  // namespace
}  // namespace kaiwa::signal::socketio

// The PeerJS wire format (PeerServer 1.0.2, docs/peerjs.md).
#include "signal/peerjs/codec.hpp"

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <regex>
#include <set>

namespace kaiwa::signal::peerjs {
namespace {

TEST(PeerJsCodec, DecodesRelayedTypesWithDstAndPayload) {
  auto m = decode(
      R"({"type":"OFFER","payload":{"sdp":{"type":"offer","sdp":"v=0\r\n"},"connectionId":"dc_1"},"dst":"bob"})");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->type, MessageType::kOffer);
  EXPECT_EQ(m->typeName, "OFFER");
  ASSERT_TRUE(m->dst);
  EXPECT_EQ(*m->dst, "bob");
  EXPECT_EQ(boost::json::parse(m->payload).at("connectionId").as_string(), "dc_1");
  for (auto [text, type] : {std::pair{"ANSWER", MessageType::kAnswer},
                            {"CANDIDATE", MessageType::kCandidate},
                            {"LEAVE", MessageType::kLeave},
                            {"EXPIRE", MessageType::kExpire},
                            {"HEARTBEAT", MessageType::kHeartbeat},
                            {"OPEN", MessageType::kUnknown},
                            {"offer", MessageType::kUnknown}}) {
    auto d = decode(std::string(R"({"type":")") + text + R"("})");
    ASSERT_TRUE(d) << text;
    EXPECT_EQ(d->type, type) << text;
    EXPECT_FALSE(d->dst);
    EXPECT_TRUE(d->payload.empty());
  }
}

TEST(PeerJsCodec, IgnoresWhatPeerServerIgnores) {
  for (const char* text : {"", "not json", "[]", "42", R"({"payload":{}})", R"({"type":7})", R"({"type":null})",
                           R"({"type":"OFFER","dst":"b","payload":1e400})", "{\"type\":\"OFFER\"", "\xff\xfe"}) {
    EXPECT_FALSE(decode(text)) << text;
  }
  auto m = decode(R"({"type":"CANDIDATE","dst":42})");  // a dst that is not a string is no dst
  ASSERT_TRUE(m);
  EXPECT_FALSE(m->dst);
  std::string deep(100, '[');
  EXPECT_FALSE(decode(R"({"type":"OFFER","payload":)" + deep + "}"));
}

TEST(PeerJsCodec, EncodesServerMessagesExactlyLikePeerServer) {
  EXPECT_EQ(encodeOpen(), R"({"type":"OPEN"})");
  EXPECT_EQ(encodeIdTaken(), R"({"type":"ID-TAKEN","payload":{"msg":"ID is taken"}})");
  EXPECT_EQ(encodeError(kNoParams),
            R"({"type":"ERROR","payload":{"msg":"No id, token, or key supplied to websocket server"}})");
  EXPECT_EQ(encodeError(kInvalidKey), R"({"type":"ERROR","payload":{"msg":"Invalid key provided"}})");
  EXPECT_EQ(encodeError(kLimitReached),
            R"({"type":"ERROR","payload":{"msg":"Server has reached its concurrent user limit"}})");
}

TEST(PeerJsCodec, EncodesRelaysWithSrcAndDst) {
  EXPECT_EQ(encodeRelay("OFFER", "alice", "bob", R"({"sdp":"x"})"),
            R"({"type":"OFFER","src":"alice","dst":"bob","payload":{"sdp":"x"}})");
  EXPECT_EQ(encodeRelay("EXPIRE", "bob", "alice", ""), R"({"type":"EXPIRE","src":"bob","dst":"alice"})");
  auto v = boost::json::parse(encodeRelay("CANDIDATE", "a\"b", "c\\d", "[1,2]"));
  EXPECT_EQ(v.at("src").as_string(), "a\"b");
  EXPECT_EQ(v.at("dst").as_string(), "c\\d");
}

TEST(PeerJsCodec, RoundTripKeepsThePayload) {
  std::string payload =
      R"({"candidate":{"candidate":"candidate:1 1 udp 2122260223 192.0.2.1 54400 typ host","sdpMid":"0"},"type":"data","connectionId":"dc_x"})";
  auto m = decode(R"({"type":"CANDIDATE","payload":)" + payload + R"(,"dst":"b"})");
  ASSERT_TRUE(m);
  auto relayed = decode(encodeRelay(toString(m->type), "a", *m->dst, m->payload));
  ASSERT_TRUE(relayed);
  EXPECT_EQ(boost::json::parse(relayed->payload), boost::json::parse(payload));
}

TEST(PeerJsCodec, ValidIds) {
  EXPECT_TRUE(validId("a"));
  EXPECT_TRUE(validId("my-peer_1 x"));
  EXPECT_TRUE(validId("3f2b8c1e-0d6a-4c1b-9a8e-2b3c4d5e6f70"));
  EXPECT_FALSE(validId(""));
  EXPECT_FALSE(validId(std::string(257, 'a')));
  EXPECT_TRUE(validId(std::string(256, 'a')));
  EXPECT_FALSE(validId("a\nb"));
  EXPECT_FALSE(validId("a\"b"));
  EXPECT_FALSE(validId("caf\xc3\xa9"));
}

TEST(PeerJsCodec, RandomIdsAreUuidV4) {
  std::regex uuid("^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$");
  std::set<std::string> seen;
  for (int i = 0; i < 200; ++i) {
    std::string id = randomId();
    EXPECT_TRUE(std::regex_match(id, uuid)) << id;
    seen.insert(id);
  }
  EXPECT_EQ(seen.size(), 200u);
}

// A link's first message, from the client's node to the key's owner node (docs/cluster.md, "PeerJS").
TEST(PeerJsCodec, LinkHello) {
  auto open = decodeLinkHello("open key=peerjs&id=alice&token=t%20k+x&version=1.5.5");
  ASSERT_TRUE(open);
  EXPECT_FALSE(open->peers);
  EXPECT_EQ(open->key, "peerjs");
  EXPECT_EQ(open->id, "alice");
  EXPECT_EQ(open->token, "t k x");
  auto missing = decodeLinkHello("open key=peerjs&id=%zz");
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->key, "peerjs");
  EXPECT_FALSE(missing->id);  // a bad escape: as absent, refused like a missing id
  EXPECT_FALSE(missing->token);
  auto peers = decodeLinkHello("peers");
  ASSERT_TRUE(peers);
  EXPECT_TRUE(peers->peers);
  EXPECT_FALSE(decodeLinkHello(""));
  EXPECT_FALSE(decodeLinkHello("peers2"));
  EXPECT_FALSE(decodeLinkHello("open"));
  EXPECT_FALSE(decodeLinkHello("{\"type\":\"OFFER\"}"));
}

}  // namespace
}  // namespace kaiwa::signal::peerjs

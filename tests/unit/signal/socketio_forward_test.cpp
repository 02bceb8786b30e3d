// What a node forwards to the node holding a Socket.IO session, and the answers (docs/socketio.md, "Across nodes").
#include "signal/socketio/forward.hpp"

#include <gtest/gtest.h>

namespace kaiwa::signal::socketio {
namespace {

using namespace std::literals;

TEST(SocketIoForward, AnHttpRequestGoesAndComesBackWhole) {
  std::string body =
      "40{\"token\":\"t\"}\x1e"
      "42[\"join-room\",\"r\"]\n2nd line";
  std::string frame = encodeHttpForward("POST", "EIO=4&transport=polling&sid=n1~0.x", body);
  auto f = decodeForward(frame);  // views into `frame`
  ASSERT_TRUE(f);
  EXPECT_EQ(f->kind, ForwardedRequest::Kind::kHttp);
  EXPECT_EQ(f->method, "POST");
  EXPECT_EQ(f->query, "EIO=4&transport=polling&sid=n1~0.x");
  EXPECT_EQ(f->body, body);  // newlines in the body are the body's
}

TEST(SocketIoForward, AWebSocketCarriesItsQuery) {
  std::string frame = encodeWsForward("EIO=4&transport=websocket&sid=n2~1.y");
  auto f = decodeForward(frame);
  ASSERT_TRUE(f);
  EXPECT_EQ(f->kind, ForwardedRequest::Kind::kWebSocket);
  EXPECT_EQ(f->query, "EIO=4&transport=websocket&sid=n2~1.y");
}

TEST(SocketIoForward, RefusesWhatIsNoForwardedRequest) {
  for (auto bad : {""sv, "X"sv, "HGET"sv, "HGET\nquery-without-end"sv, "H\nq\n"sv, "HG T\nq\n"sv, "Wq\nmore"sv}) {
    EXPECT_FALSE(decodeForward(bad)) << bad;
  }
}

TEST(SocketIoForward, AResponseKeepsStatusTypeHeadersAndBody) {
  http::Response r = http::Response::text(200, "0{\"sid\":\"n1~0.x\"}\nline");
  r.contentType = "text/plain; charset=UTF-8";
  r.headers.emplace_back("Cache-Control", "no-store");
  auto back = decodeForwardedResponse(encodeForwardedResponse(r));
  ASSERT_TRUE(back);
  EXPECT_EQ(back->status, 200u);
  EXPECT_EQ(back->contentType, r.contentType);
  EXPECT_EQ(back->headers, r.headers);
  EXPECT_EQ(back->body, r.body);
}

TEST(SocketIoForward, RefusesAResponseThatDoesNotParse) {
  for (auto bad : {""sv, "200"sv, "200 text/plain"sv, "99 x\n\n"sv, "abc x\n\n"sv, "200 x\nNoColon\n\n"sv,
                   "200 x\nA: b\n"sv, "600 x\n\n"sv}) {
    EXPECT_FALSE(decodeForwardedResponse(bad)) << bad;
  }
}

TEST(SocketIoForward, WebSocketFramesSayTextOrBinary) {
  std::string text = wrapWsFrame("2probe", false);
  auto t = unwrapWsFrame(text);
  ASSERT_TRUE(t);
  EXPECT_FALSE(t->binary);
  EXPECT_EQ(t->data, "2probe");
  std::string binary = wrapWsFrame("\x01\x02"sv, true);
  auto b = unwrapWsFrame(binary);
  ASSERT_TRUE(b);
  EXPECT_TRUE(b->binary);
  EXPECT_EQ(b->data, "\x01\x02"sv);
  EXPECT_FALSE(unwrapWsFrame(""));
  EXPECT_FALSE(unwrapWsFrame("X2probe"));
}

}  // namespace
}  // namespace kaiwa::signal::socketio

#include "ws/frame.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace kaiwa::ws {
namespace {

// A client frame as browsers send it: masked with `key`.
std::string clientFrame(uint8_t firstByte, std::string_view payload, uint32_t key = 0x37fa213d) {
  std::string f(1, static_cast<char>(firstByte));
  std::size_t n = payload.size();
  if (n < 126) {
    f.push_back(static_cast<char>(0x80 | n));
  } else if (n <= 0xFFFF) {
    f.push_back(static_cast<char>(0x80 | 126));
    f.push_back(static_cast<char>(n >> 8));
    f.push_back(static_cast<char>(n & 0xFF));
  } else {
    f.push_back(static_cast<char>(0x80 | 127));
    for (int i = 7; i >= 0; --i) f.push_back(static_cast<char>((uint64_t(n) >> (8 * i)) & 0xFF));
  }
  uint8_t k[4] = {uint8_t(key >> 24), uint8_t(key >> 16), uint8_t(key >> 8), uint8_t(key)};
  f.append(reinterpret_cast<const char*>(k), 4);
  for (std::size_t i = 0; i < n; ++i) f.push_back(static_cast<char>(payload[i] ^ k[i & 3]));
  return f;
}

struct Recorder : FrameSink {
  struct Event {
    std::string kind;
    std::string payload;
    uint16_t code = 0;
  };
  std::vector<Event> events;
  bool stopAfterMessage = false;

  bool onMessage(std::string_view payload, bool binary) override {
    events.push_back({binary ? "binary" : "text", std::string(payload)});
    return !stopAfterMessage;
  }
  void onPing(std::string_view payload) override { events.push_back({"ping", std::string(payload)}); }
  void onPong(std::string_view payload) override { events.push_back({"pong", std::string(payload)}); }
  void onClose(uint16_t code, std::string_view reason) override {
    events.push_back({"close", std::string(reason), code});
  }
};

std::size_t readAll(FrameReader& reader, std::string& bytes, Recorder& sink) {
  return reader.read(bytes.data(), bytes.size(), sink);
}

TEST(WsFrame, AcceptKeyIsTheRfcExample) {
  // RFC 6455 section 1.3.
  EXPECT_EQ(acceptKey("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  EXPECT_TRUE(validClientKey("dGhlIHNhbXBsZSBub25jZQ=="));
  EXPECT_FALSE(validClientKey("dGhlIHNhbXBsZSBub25jZQ="));
  EXPECT_FALSE(validClientKey("dGhlIHNhbXBsZSBub25jZQ!="));
  EXPECT_FALSE(validClientKey(""));
}

TEST(WsFrame, HeadersUseTheShortestLength) {
  uint8_t h[kMaxHeaderBytes];
  ASSERT_EQ(writeHeader(h, Opcode::kText, 125), 2u);
  EXPECT_EQ(h[0], 0x81);
  EXPECT_EQ(h[1], 125);
  ASSERT_EQ(writeHeader(h, Opcode::kBinary, 126), 4u);
  EXPECT_EQ(h[0], 0x82);
  EXPECT_EQ(h[1], 126);
  EXPECT_EQ(h[2], 0);
  EXPECT_EQ(h[3], 126);
  ASSERT_EQ(writeHeader(h, Opcode::kText, 65536), 10u);
  EXPECT_EQ(h[1], 127);
  EXPECT_EQ(h[7], 1);  // 0x0000000000010000
  EXPECT_EQ(h[9], 0);
}

TEST(WsFrame, CloseFrameCarriesCodeAndACutReason) {
  std::string f = closeFrame(1009, "too big");
  ASSERT_EQ(f.size(), 2u + 2 + 7);
  EXPECT_EQ(uint8_t(f[0]), 0x88);
  EXPECT_EQ(uint8_t(f[2]), 0x03);
  EXPECT_EQ(uint8_t(f[3]), 0xF1);
  EXPECT_EQ(f.substr(4), "too big");
  // 200 bytes of 3-byte characters: cut to at most 123 bytes, on a character boundary.
  std::string longReason;
  for (int i = 0; i < 70; ++i) longReason += "\xE3\x81\x82";
  std::string cut = closeFrame(1000, longReason);
  EXPECT_LE(cut.size() - 4, 123u);
  EXPECT_EQ((cut.size() - 4) % 3, 0u);
  EXPECT_TRUE(validUtf8(std::string_view(cut).substr(4)));
}

TEST(WsFrame, Utf8Validation) {
  EXPECT_TRUE(validUtf8("plain ascii, longer than eight bytes"));
  EXPECT_TRUE(validUtf8("\xE4\xBC\x9A\xE8\xA9\xB1"));  // 会話
  EXPECT_TRUE(validUtf8("\xF0\x9F\x93\x9E"));          // U+1F4DE
  EXPECT_FALSE(validUtf8("\xC0\xAF"));                 // overlong '/'
  EXPECT_FALSE(validUtf8("\xE0\x80\xAF"));             // overlong
  EXPECT_FALSE(validUtf8("\xED\xA0\x80"));             // surrogate U+D800
  EXPECT_FALSE(validUtf8("\xF4\x90\x80\x80"));         // above U+10FFFF
  EXPECT_FALSE(validUtf8("abc\xE4\xBC"));              // cut short
  EXPECT_FALSE(validUtf8("\x80"));                     // lone continuation
  EXPECT_FALSE(validUtf8("\xFF"));
}

TEST(WsFrame, ReadsMaskedMessagesInPlaceAndKeepsAPartialFrame) {
  FrameReader reader(1024);
  Recorder sink;
  std::string bytes = clientFrame(0x81, "hello") + clientFrame(0x82, std::string("\x00\x01\x02", 3));
  std::string second = clientFrame(0x81, std::string(300, 'x'));
  bytes += second.substr(0, 10);  // a partial third frame
  std::size_t used = readAll(reader, bytes, sink);
  ASSERT_EQ(sink.events.size(), 2u);
  EXPECT_EQ(sink.events[0].kind, "text");
  EXPECT_EQ(sink.events[0].payload, "hello");
  EXPECT_EQ(sink.events[1].kind, "binary");
  EXPECT_EQ(sink.events[1].payload, std::string("\x00\x01\x02", 3));
  EXPECT_EQ(used, bytes.size() - 10);
  std::string rest = second;  // the caller feeds the tail again with what followed
  EXPECT_EQ(reader.read(rest.data(), rest.size(), sink), rest.size());
  ASSERT_EQ(sink.events.size(), 3u);
  EXPECT_EQ(sink.events[2].payload, std::string(300, 'x'));
  EXPECT_EQ(reader.error(), 0);
}

TEST(WsFrame, EveryLengthFormRoundTrips) {
  for (std::size_t n : {0u, 1u, 125u, 126u, 127u, 65535u, 65536u, 70000u}) {
    FrameReader reader(1 << 20);
    Recorder sink;
    std::string payload(n, 'a');
    for (std::size_t i = 0; i < n; ++i) payload[i] = static_cast<char>('a' + i % 26);
    std::string bytes = clientFrame(0x81, payload);
    EXPECT_EQ(readAll(reader, bytes, sink), bytes.size()) << n;
    ASSERT_EQ(sink.events.size(), 1u) << n;
    EXPECT_EQ(sink.events[0].payload, payload) << n;
  }
}

TEST(WsFrame, FragmentsAreReassembledAroundControlFrames) {
  FrameReader reader(1024);
  Recorder sink;
  std::string bytes =
      clientFrame(0x01, "frag") + clientFrame(0x89, "p") + clientFrame(0x00, "men") + clientFrame(0x80, "ted");
  EXPECT_EQ(readAll(reader, bytes, sink), bytes.size());
  ASSERT_EQ(sink.events.size(), 2u);
  EXPECT_EQ(sink.events[0].kind, "ping");
  EXPECT_EQ(sink.events[0].payload, "p");
  EXPECT_EQ(sink.events[1].kind, "text");
  EXPECT_EQ(sink.events[1].payload, "fragmented");
  EXPECT_EQ(reader.pendingBytes(), 0u);
}

TEST(WsFrame, AnOversizedMessageIsRefusedAtItsHeader) {
  FrameReader reader(100);
  Recorder sink;
  std::string bytes = clientFrame(0x81, std::string(101, 'x')).substr(0, 8);  // header only, payload not here
  readAll(reader, bytes, sink);
  EXPECT_EQ(reader.error(), kCloseTooBig);
  EXPECT_TRUE(sink.events.empty());
  // Fragments count together.
  FrameReader fragments(100);
  std::string two = clientFrame(0x01, std::string(60, 'x')) + clientFrame(0x80, std::string(60, 'y'));
  readAll(fragments, two, sink);
  EXPECT_EQ(fragments.error(), kCloseTooBig);
  EXPECT_TRUE(sink.events.empty());
}

TEST(WsFrame, ProtocolErrors) {
  struct Case {
    const char* what;
    std::string bytes;
    uint16_t code;
  };
  std::string unmasked = "\x81\x02hi";
  std::string longPing = clientFrame(0x89, std::string(126, 'p'));
  std::string nonMinimal = clientFrame(0x81, "abc");
  nonMinimal = std::string("\x81\xFE\x00\x03", 4) + nonMinimal.substr(2);
  std::vector<Case> cases = {
      {"unmasked", unmasked, kCloseProtocolError},
      {"rsv bit", clientFrame(0xC1, "x"), kCloseProtocolError},
      {"unknown opcode", clientFrame(0x83, "x"), kCloseProtocolError},
      {"unknown control opcode", clientFrame(0x8B, "x"), kCloseProtocolError},
      {"fragmented ping", clientFrame(0x09, "x"), kCloseProtocolError},
      {"long ping", longPing, kCloseProtocolError},
      {"continuation of nothing", clientFrame(0x80, "x"), kCloseProtocolError},
      {"message inside a message", clientFrame(0x01, "a") + clientFrame(0x81, "b"), kCloseProtocolError},
      {"non-minimal length", nonMinimal, kCloseProtocolError},
      {"bad utf-8", clientFrame(0x81, "\xC0\xAF"), kCloseBadData},
      {"bad utf-8 across fragments", clientFrame(0x01, "\xE4\xBC") + clientFrame(0x80, "x"), kCloseBadData},
      {"close with one byte", clientFrame(0x88, "\x03"), kCloseProtocolError},
      {"close with a reserved code", clientFrame(0x88, std::string("\x03\xED", 2)), kCloseProtocolError},
      {"close with a bad reason", clientFrame(0x88, std::string("\x03\xE8\xFF", 3)), kCloseBadData},
  };
  for (auto& c : cases) {
    FrameReader reader(1024);
    Recorder sink;
    readAll(reader, c.bytes, sink);
    EXPECT_EQ(reader.error(), c.code) << c.what;
    EXPECT_TRUE(sink.events.empty()) << c.what;
    // Nothing more is read after an error.
    std::string more = clientFrame(0x81, "after");
    EXPECT_EQ(reader.read(more.data(), more.size(), sink), 0u) << c.what;
  }
}

TEST(WsFrame, CloseFramesStopTheReader) {
  FrameReader reader(1024);
  Recorder sink;
  std::string bytes = clientFrame(0x88, std::string("\x03\xE9", 2) + "bye") + clientFrame(0x81, "late");
  std::size_t used = readAll(reader, bytes, sink);
  ASSERT_EQ(sink.events.size(), 1u);
  EXPECT_EQ(sink.events[0].kind, "close");
  EXPECT_EQ(sink.events[0].code, 1001);
  EXPECT_EQ(sink.events[0].payload, "bye");
  EXPECT_TRUE(reader.closed());
  EXPECT_LT(used, bytes.size());

  FrameReader empty(1024);
  Recorder sink2;
  std::string bare = clientFrame(0x88, "");
  readAll(empty, bare, sink2);
  ASSERT_EQ(sink2.events.size(), 1u);
  EXPECT_EQ(sink2.events[0].code, kCloseNoStatus);
}

TEST(WsFrame, TheSinkCanStopTheReader) {
  FrameReader reader(1024);
  Recorder sink;
  sink.stopAfterMessage = true;
  std::string first = clientFrame(0x81, "one");
  std::string bytes = first + clientFrame(0x81, "two");
  EXPECT_EQ(readAll(reader, bytes, sink), first.size());
  EXPECT_EQ(sink.events.size(), 1u);
}

}  // namespace
}  // namespace kaiwa::ws

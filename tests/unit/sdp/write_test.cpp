#include <gtest/gtest.h>

#include "sdp/description.hpp"
#include "vectors.hpp"

namespace kaiwa::sdp {
namespace {

TEST(SdpWrite, RoundTripsEveryVector) {
  for (const auto& n : test::vectorNames()) {
    auto d = parse(test::readVector(n));
    ASSERT_TRUE(d) << n;
    std::string text = write(*d);
    auto again = parse(text);
    ASSERT_TRUE(again) << n << ": " << again.error().message() << "\n" << text;
    EXPECT_EQ(*again, *d) << n;
    // Stable: writing the re-parsed form gives the same text.
    EXPECT_EQ(write(*again), text) << n;
  }
}

TEST(SdpWrite, KeepsEveryLineOfAChromiumOffer) {
  // The writer follows Chromium's order, so an offer with no attribute outside the model comes back byte for byte
  // (audio and video have a=rtcp-xr, which the writer puts last).
  for (const char* n : {"chromium156_datachannel.sdp"}) {
    std::string text = test::readVector(n);
    auto d = parse(text);
    ASSERT_TRUE(d) << n;
    std::string out = write(*d);
    // Chromium writes "a=msid-semantic: WMS" with a space after the colon; the writer does not.
    size_t at = text.find("a=msid-semantic: ");
    ASSERT_NE(at, std::string::npos);
    text.erase(at + 16, 1);
    EXPECT_EQ(out, text) << n;
  }
}

TEST(SdpWrite, CrlfOnly) {
  auto d = parse(test::readVector("firefox_audio_video.sdp"));
  ASSERT_TRUE(d);
  std::string out = write(*d);
  for (size_t i = 0; i < out.size(); ++i) {
    if (out[i] == '\n') {
      ASSERT_GT(i, 0u);
      EXPECT_EQ(out[i - 1], '\r');
    }
  }
  EXPECT_EQ(out.substr(out.size() - 2), "\r\n");
}

TEST(SdpWrite, BuiltDescription) {
  Description d;
  d.origin.sessionId = "42";
  d.iceLite = true;
  d.groups.push_back({"BUNDLE", {"a"}});
  Media m;
  m.kind = "audio";
  m.port = 7881;
  m.proto = "UDP/TLS/RTP/SAVPF";
  m.formats = {"111"};
  m.mid = "a";
  m.direction = Direction::kRecvOnly;
  m.rtcpMux = true;
  Codec opus;
  opus.payloadType = 111;
  opus.hasRtpmap = true;
  opus.name = "opus";
  opus.clockRate = 48000;
  opus.channels = 2;
  opus.fmtp = "minptime=10;useinbandfec=1";
  opus.feedback = {{"transport-cc", ""}};
  m.codecs = {opus};
  m.extmaps = {{4, Direction::kRecvOnly, "urn:ietf:params:rtp-hdrext:sdes:mid", ""}};
  m.simulcast = Simulcast{{}, {{{"q", false}, {"q2", true}}, {{"f", false}}}};
  d.media.push_back(m);
  std::string out = write(d);
  EXPECT_EQ(out,
            "v=0\r\no=- 42 0 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\na=ice-lite\r\na=group:BUNDLE a\r\n"
            "m=audio 7881 UDP/TLS/RTP/SAVPF 111\r\na=mid:a\r\n"
            "a=extmap:4/recvonly urn:ietf:params:rtp-hdrext:sdes:mid\r\na=recvonly\r\na=rtcp-mux\r\n"
            "a=rtpmap:111 opus/48000/2\r\na=rtcp-fb:111 transport-cc\r\na=fmtp:111 minptime=10;useinbandfec=1\r\n"
            "a=simulcast:recv q,~q2;f\r\n");
  auto back = parse(out);
  ASSERT_TRUE(back) << back.error().message();
  EXPECT_EQ(*back, d);
}

}  // namespace
}  // namespace kaiwa::sdp

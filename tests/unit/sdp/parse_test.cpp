#include <gtest/gtest.h>

#include "sdp/description.hpp"
#include "vectors.hpp"

namespace kaiwa::sdp {
namespace {

using test::readVector;

Description mustParse(const std::string& text) {
  auto d = parse(text);
  EXPECT_TRUE(d.has_value()) << (d ? "" : d.error().message());
  return d ? *d : Description{};
}

std::string lf(std::string s) {
  std::string out;
  for (char c : s) {
    if (c != '\r') out += c;
  }
  return out;
}

TEST(SdpParse, EveryCapturedVectorParses) {
  auto names = test::vectorNames();
  ASSERT_GE(names.size(), 7u);
  for (const auto& n : names) {
    auto d = parse(readVector(n));
    EXPECT_TRUE(d.has_value()) << n << ": " << (d ? "" : d.error().message());
  }
}

TEST(SdpParse, ChromiumAudioVideoOffer) {
  Description d = mustParse(readVector("chromium156_audio_video.sdp"));
  EXPECT_EQ(d.origin.username, "-");
  EXPECT_EQ(d.origin.sessionVersion, "2");
  EXPECT_EQ(d.timing, "0 0");
  ASSERT_NE(d.bundle(), nullptr);
  EXPECT_EQ(d.bundle()->mids, (std::vector<std::string>{"0", "1"}));
  EXPECT_TRUE(d.extmapAllowMixed);
  ASSERT_TRUE(d.msidSemantic);
  EXPECT_EQ(d.msidSemantic->semantic, "WMS");
  EXPECT_EQ(d.msidSemantic->ids.size(), 1u);
  EXPECT_FALSE(d.iceLite);
  ASSERT_EQ(d.media.size(), 2u);

  const Media& a = d.media[0];
  EXPECT_EQ(a.kind, "audio");
  EXPECT_EQ(a.proto, "UDP/TLS/RTP/SAVPF");
  EXPECT_TRUE(a.isRtp());
  EXPECT_EQ(a.formats.front(), "111");
  EXPECT_EQ(a.mid, "0");
  EXPECT_EQ(a.direction, Direction::kSendRecv);
  EXPECT_TRUE(a.rtcpMux);
  EXPECT_TRUE(a.rtcpRsize);
  EXPECT_EQ(a.setup, Setup::kActPass);
  ASSERT_TRUE(a.iceUfrag && a.icePwd);
  EXPECT_EQ(a.iceOptions, (std::vector<std::string>{"trickle"}));
  ASSERT_EQ(a.fingerprints.size(), 1u);
  EXPECT_EQ(a.fingerprints[0].algorithm, "sha-256");
  EXPECT_EQ(a.fingerprints[0].value.size(), 32u * 3 - 1);
  const Codec* opus = a.codec(111);
  ASSERT_NE(opus, nullptr);
  EXPECT_EQ(opus->name, "opus");
  EXPECT_EQ(opus->clockRate, 48000u);
  EXPECT_EQ(opus->channels, 2u);
  EXPECT_EQ(opus->fmtpParameter("useinbandfec"), "1");
  EXPECT_EQ(opus->feedback, (std::vector<RtcpFeedback>{{"transport-cc", ""}}));
  ASSERT_FALSE(a.extmaps.empty());
  EXPECT_EQ(a.extmaps[0].id, 1);
  EXPECT_EQ(a.extmaps[0].uri, "urn:ietf:params:rtp-hdrext:ssrc-audio-level");
  EXPECT_FALSE(a.extmaps[0].direction);
  EXPECT_TRUE(a.cname());
  ASSERT_EQ(a.msids.size(), 1u);
  EXPECT_TRUE(a.msids[0].track);
  // The browser's rtcp-xr is no field of ours: kept as is.
  ASSERT_FALSE(a.others.empty());
  EXPECT_EQ(a.others[0].name, "rtcp-xr");
  EXPECT_EQ(a.others[0].value, "rcvr-rtt=all");
  // Host candidates gathered on this machine's interfaces, UDP and TCP (active).
  ASSERT_FALSE(a.candidates.empty());
  const Candidate& c = a.candidates[0];
  EXPECT_EQ(c.component, 1u);
  EXPECT_EQ(c.transport, "udp");
  EXPECT_EQ(c.type, "host");
  EXPECT_GT(c.port, 0);
  ASSERT_FALSE(c.extensions.empty());
  EXPECT_EQ(c.extensions[0].first, "generation");
  bool tcpActive = false;
  for (const auto& x : a.candidates) tcpActive |= x.transport == "tcp" && x.tcpType == "active";
  EXPECT_TRUE(tcpActive);

  const Media& v = d.media[1];
  EXPECT_EQ(v.kind, "video");
  const Codec* vp8 = v.codec(96);
  ASSERT_NE(vp8, nullptr);
  EXPECT_EQ(vp8->name, "VP8");
  EXPECT_EQ(vp8->feedback.size(), 5u);
  EXPECT_EQ(vp8->feedback[4], (RtcpFeedback{"nack", "pli"}));
  const Codec* rtx = v.codec(97);
  ASSERT_NE(rtx, nullptr);
  EXPECT_EQ(rtx->name, "rtx");
  EXPECT_EQ(rtx->fmtpParameter("apt"), "96");
  ASSERT_EQ(v.ssrcGroups.size(), 1u);
  EXPECT_EQ(v.ssrcGroups[0].semantics, "FID");
  EXPECT_EQ(v.ssrcGroups[0].ssrcs.size(), 2u);
  // Every payload type of the m= line has its rtpmap.
  for (const auto& f : v.formats) {
    const Codec* x = v.codec(static_cast<uint8_t>(std::stoi(f)));
    ASSERT_NE(x, nullptr) << f;
    EXPECT_TRUE(x->hasRtpmap) << f;
  }
}

TEST(SdpParse, ChromiumSimulcastHasRidsAndNoSsrcs) {
  Description d = mustParse(readVector("chromium156_simulcast.sdp"));
  ASSERT_EQ(d.media.size(), 2u);
  const Media& v = d.media[1];
  EXPECT_EQ(v.direction, Direction::kSendOnly);
  ASSERT_EQ(v.rids.size(), 3u);
  EXPECT_EQ(v.rids[0], (Rid{"q", RidDirection::kSend, ""}));
  EXPECT_EQ(v.rids[2].id, "f");
  ASSERT_TRUE(v.simulcast);
  EXPECT_EQ(v.simulcast->send,
            (std::vector<std::vector<SimulcastRid>>{{{"q", false}}, {{"h", false}}, {{"f", false}}}));
  EXPECT_TRUE(v.simulcast->recv.empty());
  EXPECT_TRUE(v.ssrcs.empty());
  bool ridExt = false;
  for (const auto& e : v.extmaps) ridExt |= e.uri == "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id";
  EXPECT_TRUE(ridExt);
}

TEST(SdpParse, ChromiumScreenShareIsASecondVideoFromAnotherStream) {
  Description d = mustParse(readVector("chromium156_screenshare.sdp"));
  ASSERT_EQ(d.media.size(), 3u);
  EXPECT_EQ(d.media[2].kind, "video");
  ASSERT_FALSE(d.media[1].msids.empty());
  ASSERT_FALSE(d.media[2].msids.empty());
  EXPECT_NE(d.media[1].msids[0].stream, d.media[2].msids[0].stream);
  EXPECT_EQ(d.bundle()->mids.size(), 3u);
}

TEST(SdpParse, DataChannelOnly) {
  Description d = mustParse(readVector("chromium156_datachannel.sdp"));
  ASSERT_EQ(d.media.size(), 1u);
  const Media& m = d.media[0];
  EXPECT_EQ(m.kind, "application");
  EXPECT_EQ(m.proto, "UDP/DTLS/SCTP");
  EXPECT_EQ(m.formats, (std::vector<std::string>{"webrtc-datachannel"}));
  EXPECT_FALSE(m.isRtp());
  EXPECT_EQ(m.sctpPort, 5000);
  EXPECT_EQ(m.maxMessageSize, 262144u);
  EXPECT_TRUE(m.codecs.empty());
}

TEST(SdpParse, RecvOnlyAndIceRestart) {
  Description r = mustParse(readVector("chromium156_recvonly.sdp"));
  for (const auto& m : r.media) EXPECT_EQ(m.direction, Direction::kRecvOnly);
  Description first = mustParse(readVector("chromium156_audio_video.sdp"));
  Description restart = mustParse(readVector("chromium156_ice_restart.sdp"));
  ASSERT_FALSE(restart.media.empty());
  EXPECT_NE(restart.media[0].iceUfrag, first.media[0].iceUfrag);
  EXPECT_NE(restart.media[0].icePwd, first.media[0].icePwd);
  // The restart is a new version of the same session.
  EXPECT_EQ(restart.origin.sessionId, first.origin.sessionId);
  EXPECT_NE(restart.origin.sessionVersion, first.origin.sessionVersion);
}

TEST(SdpParse, ChromiumAnswerSaysActive) {
  Description d = mustParse(readVector("chromium156_answer_audio_video.sdp"));
  ASSERT_FALSE(d.media.empty());
  EXPECT_EQ(d.media[0].setup, Setup::kActive);
}

TEST(SdpParse, FirefoxSessionLevelAttributesAndExtmapDirection) {
  Description d = mustParse(readVector("firefox_audio_video.sdp"));
  ASSERT_EQ(d.fingerprints.size(), 1u);  // Firefox puts the fingerprint at session level
  EXPECT_EQ(d.direction, Direction::kSendRecv);
  EXPECT_EQ(d.iceOptions, (std::vector<std::string>{"trickle"}));
  ASSERT_EQ(d.media.size(), 2u);
  EXPECT_TRUE(d.media[0].fingerprints.empty());
  EXPECT_TRUE(d.media[0].endOfCandidates);
  EXPECT_TRUE(d.media[0].extmapAllowMixed);
  bool recvonlyExt = false;
  for (const auto& e : d.media[0].extmaps) recvonlyExt |= e.direction == Direction::kRecvOnly;
  EXPECT_TRUE(recvonlyExt);
  // Firefox gathers RTCP candidates (component 2) and writes the transport in capitals.
  bool rtcpComponent = false;
  for (const auto& c : d.media[0].candidates) rtcpComponent |= c.component == 2 && c.transport == "UDP";
  EXPECT_TRUE(rtcpComponent);
}

TEST(SdpParse, BareLineFeedsGiveTheSameDescription) {
  for (const auto& n : test::vectorNames()) {
    std::string text = readVector(n);
    auto crlf = parse(text);
    auto bare = parse(lf(text));
    ASSERT_TRUE(crlf && bare) << n;
    EXPECT_EQ(*crlf, *bare) << n;
  }
}

TEST(SdpParse, LastLineWithoutEnd) {
  auto d = parse("v=0\no=- 1 1 IN IP4 0.0.0.0\ns=-\nt=0 0\nm=audio 9 RTP/AVP 0\na=mid:a");
  ASSERT_TRUE(d) << d.error().message();
  EXPECT_EQ(d->media[0].mid, "a");
}

const char* kMinimal = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n";

Error mustFail(const std::string& text, const Limits& limits = {}) {
  auto d = parse(text, limits);
  EXPECT_FALSE(d.has_value());
  return d ? Error{} : d.error();
}

TEST(SdpParse, ErrorsNameTheLine) {
  EXPECT_EQ(mustFail(""), (Error{1, "no v= line"}));
  EXPECT_EQ(mustFail("o=- 1 1 IN IP4 0.0.0.0\r\n").line, 1u);
  EXPECT_EQ(mustFail("v=1\r\n").reason, "v= is not 0");
  EXPECT_EQ(mustFail("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\n"), (Error{4, "no t= line"}));
  EXPECT_EQ(mustFail(std::string(kMinimal) + "m=audio 9 RTP/AVP 0\r\na=rtpmap:128 x/8000\r\n").line, 6u);
  EXPECT_EQ(mustFail(std::string(kMinimal) + "m=audio 9 RTP/AVP 0\r\na=mid:a\r\na=mid:b\r\n"),
            (Error{7, "a=mid given twice in one section"}));
  EXPECT_EQ(mustFail(std::string(kMinimal) + "x=1\r\n"), (Error{5, "unknown line type x="}));
  EXPECT_EQ(mustFail(std::string(kMinimal) + std::string("a=foo\0bar\r\n", 11)),
            (Error{5, "control character in line"}));
  EXPECT_EQ(mustFail(std::string(kMinimal) + "m=audio 9 RTP/AVP\r\n").line, 5u);
  EXPECT_EQ(mustFail(std::string(kMinimal) + "m=audio 70000 RTP/AVP 0\r\n").line, 5u);
  EXPECT_EQ(mustFail(std::string(kMinimal) + "m=audio 9 RTP/AVP 0\r\na=candidate:1 1 udp 1 1.2.3.4 5 host\r\n").line,
            6u);
  EXPECT_EQ(mustFail(std::string(kMinimal) + "m=audio 9 RTP/AVP 0\r\na=sendonly\r\na=recvonly\r\n").reason,
            "more than one direction attribute in one section");
  EXPECT_EQ(mustFail(std::string(kMinimal) + "m=audio 9 RTP/AVP 0\r\na=setup:maybe\r\n").line, 6u);
  EXPECT_EQ(mustFail(std::string(kMinimal) + "m=audio 9 RTP/AVP 0\r\na=extmap:0 urn:x\r\n").line, 6u);
  EXPECT_EQ(mustFail(std::string(kMinimal) + "m=audio 9 RTP/AVP 0\r\na=simulcast:send q;;f\r\n").line, 6u);
  EXPECT_EQ(mustFail(std::string(kMinimal) + "m=audio 9 RTP/AVP 0\r\na=rtcp-mux:yes\r\n").line, 6u);
  EXPECT_EQ(mustFail(std::string(kMinimal) + "m=audio 9 RTP/AVP 0\r\na=rid:q sideways\r\n").line, 6u);
  EXPECT_EQ(Error({6, "a=mid given twice in one section"}).message(), "line 6: a=mid given twice in one section");
  EXPECT_EQ(Error({0, "offer has no BUNDLE"}).message(), "offer has no BUNDLE");
}

TEST(SdpParse, LimitsAreErrors) {
  std::string offer = readVector("chromium156_screenshare.sdp");
  Limits small;
  small.maxBytes = 1000;
  EXPECT_EQ(mustFail(offer, small), (Error{0, "description larger than 1000 bytes"}));

  Limits twoMedia;
  twoMedia.maxMedia = 2;
  Error e = mustFail(offer, twoMedia);
  EXPECT_EQ(e.reason, "more than 2 m= lines");
  // The third m= line of the vector.
  size_t line = 1, third = 0, seen = 0;
  for (size_t i = 0; i < offer.size(); ++i) {
    if (offer.compare(i, 2, "m=") == 0 && (i == 0 || offer[i - 1] == '\n') && ++seen == 3) third = line;
    if (offer[i] == '\n') ++line;
  }
  EXPECT_EQ(e.line, third);

  Limits fewLines;
  fewLines.maxLines = 10;
  EXPECT_EQ(mustFail(offer, fewLines), (Error{11, "more than 10 lines"}));

  Limits fewAttributes;
  fewAttributes.maxAttributesPerSection = 20;
  EXPECT_EQ(mustFail(offer, fewAttributes).reason, "more than 20 attributes in a section");

  // The defaults take every captured offer; 65 m= lines are refused by default.
  for (const auto& n : test::vectorNames()) EXPECT_TRUE(parse(readVector(n)).has_value()) << n;
  std::string many = kMinimal;
  for (int i = 0; i < 65; ++i) many += "m=audio 9 RTP/AVP 0\r\n";
  EXPECT_EQ(mustFail(many).reason, "more than 64 m= lines");
}

TEST(SdpParse, UnknownAttributesAndLinesKeptInOrder) {
  auto d =
      parse(std::string("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\ni=info\r\nb=AS:100\r\nt=0 0\r\nr=7d 1h 0 25h\r\n") +
            "a=zeta:1\r\na=alpha\r\na=empty:\r\nm=video 9 RTP/AVP 96\r\nb=TIAS:1000\r\na=x-google-flag:conference\r\n" +
            "a=mid:v\r\na=bundle-only\r\n");
  ASSERT_TRUE(d) << d.error().message();
  EXPECT_EQ(d->lines, (std::vector<Line>{{'i', "info"}, {'b', "AS:100"}}));
  EXPECT_EQ(d->timeLines, (std::vector<Line>{{'r', "7d 1h 0 25h"}}));
  EXPECT_EQ(d->others, (std::vector<Attribute>{{"zeta", "1"}, {"alpha", std::nullopt}, {"empty", ""}}));
  ASSERT_EQ(d->media.size(), 1u);
  EXPECT_EQ(d->media[0].lines, (std::vector<Line>{{'b', "TIAS:1000"}}));
  EXPECT_EQ(d->media[0].others,
            (std::vector<Attribute>{{"x-google-flag", "conference"}, {"bundle-only", std::nullopt}}));
  EXPECT_TRUE(d->media[0].bundleOnly());
  EXPECT_FALSE(d->media[0].isRejected());
}

TEST(SdpParse, CandidateFields) {
  auto d = parse(std::string(kMinimal) +
                 "m=audio 9 RTP/AVP 0\r\na=candidate:842163049 1 udp 1677729535 203.0.113.7 61665 typ srflx raddr "
                 "10.0.0.2 rport 61665 generation 0 ufrag abcd network-cost 999\r\n"
                 "a=candidate:1 1 TCP 1 ::1 9 typ host tcptype active\r\n");
  ASSERT_TRUE(d) << d.error().message();
  const auto& c = d->media[0].candidates;
  ASSERT_EQ(c.size(), 2u);
  EXPECT_EQ(c[0].foundation, "842163049");
  EXPECT_EQ(c[0].priority, 1677729535u);
  EXPECT_EQ(c[0].address, "203.0.113.7");
  EXPECT_EQ(c[0].type, "srflx");
  EXPECT_EQ(c[0].relatedAddress, "10.0.0.2");
  EXPECT_EQ(c[0].relatedPort, 61665);
  EXPECT_EQ(c[0].extensions.size(), 3u);
  EXPECT_EQ(c[0].extensions[1], (std::pair<std::string, std::string>{"ufrag", "abcd"}));
  EXPECT_EQ(c[1].tcpType, "active");
  EXPECT_EQ(c[1].address, "::1");
}

}  // namespace
}  // namespace kaiwa::sdp

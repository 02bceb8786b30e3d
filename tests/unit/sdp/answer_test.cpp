#include <gtest/gtest.h>

#include <algorithm>

#include "sdp/answer.hpp"
#include "vectors.hpp"

namespace kaiwa::sdp {
namespace {

const char* kFingerprint =
    "AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89";

ServerParams server() {
  ServerParams s;
  s.iceUfrag = "kaiwa1234";
  s.icePwd = "0123456789abcdefghijklmn";
  s.fingerprint = kFingerprint;
  s.addresses = {{"192.0.2.10", 7881, 7881}, {"2001:db8::10", 7881, std::nullopt}};
  s.sessionId = "77";
  return s;
}

Description offerOf(const std::string& name) {
  auto d = parse(test::readVector(name));
  EXPECT_TRUE(d) << name;
  return d ? *d : Description{};
}

Description answerTo(const std::string& name, const ServerParams& s = server()) {
  auto a = answer(offerOf(name), s);
  EXPECT_TRUE(a) << name << ": " << (a ? "" : a.error().message());
  return a ? *a : Description{};
}

std::vector<std::string> names(const std::vector<Codec>& cs) {
  std::vector<std::string> out;
  for (const auto& c : cs) out.push_back(c.name);
  return out;
}

bool hasExt(const Media& m, std::string_view u) {
  return std::any_of(m.extmaps.begin(), m.extmaps.end(), [&](const Extmap& e) { return e.uri == u; });
}

TEST(SdpAnswer, EveryCapturedOfferIsAnsweredAndRoundTrips) {
  for (const auto& n : test::offerNames()) {
    auto a = answer(offerOf(n), server());
    ASSERT_TRUE(a) << n << ": " << a.error().message();
    auto back = parse(write(*a));
    ASSERT_TRUE(back) << n << ": " << back.error().message();
    EXPECT_EQ(*back, *a) << n;
  }
}

TEST(SdpAnswer, PublisherAudioVideo) {
  Description o = offerOf("chromium156_audio_video.sdp");
  Description a = answerTo("chromium156_audio_video.sdp");
  // Session: ICE-lite, one SHA-256 fingerprint, BUNDLE of both mids, the offer's extmap-allow-mixed.
  EXPECT_TRUE(a.iceLite);
  ASSERT_EQ(a.fingerprints.size(), 1u);
  EXPECT_EQ(a.fingerprints[0], (Fingerprint{"sha-256", kFingerprint}));
  ASSERT_NE(a.bundle(), nullptr);
  EXPECT_EQ(a.bundle()->mids, (std::vector<std::string>{"0", "1"}));
  EXPECT_TRUE(a.extmapAllowMixed);
  EXPECT_EQ(a.origin.sessionId, "77");
  ASSERT_EQ(a.media.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    const Media& m = a.media[i];
    EXPECT_EQ(m.mid, o.media[i].mid);
    EXPECT_EQ(m.kind, o.media[i].kind);
    EXPECT_EQ(m.setup, Setup::kPassive);
    EXPECT_EQ(m.direction, Direction::kRecvOnly);  // a publisher's sendrecv offer, answered by a receiver
    EXPECT_TRUE(m.rtcpMux);
    EXPECT_EQ(m.iceUfrag, "kaiwa1234");
    EXPECT_EQ(m.icePwd, "0123456789abcdefghijklmn");
    EXPECT_EQ(m.port, 7881);
    EXPECT_EQ(m.connection, (Connection{"IN", "IP4", "192.0.2.10"}));
    EXPECT_TRUE(m.endOfCandidates);
    // UDP and passive TCP on the first address, UDP on the second; UDP preferred.
    ASSERT_EQ(m.candidates.size(), 3u);
    EXPECT_EQ(m.candidates[0].transport, "udp");
    EXPECT_EQ(m.candidates[0].type, "host");
    EXPECT_EQ(m.candidates[1].transport, "tcp");
    EXPECT_EQ(m.candidates[1].tcpType, "passive");
    EXPECT_EQ(m.candidates[1].port, 7881);
    EXPECT_GT(m.candidates[0].priority, m.candidates[2].priority);
    EXPECT_GT(m.candidates[2].priority, m.candidates[1].priority);
    EXPECT_EQ(m.candidates[2].address, "2001:db8::10");
    EXPECT_TRUE(m.msids.empty());
    EXPECT_TRUE(m.ssrcs.empty());
  }
  const Media& audio = a.media[0];
  EXPECT_EQ(audio.formats, (std::vector<std::string>{"111"}));
  EXPECT_EQ(names(audio.codecs), (std::vector<std::string>{"opus"}));
  EXPECT_EQ(audio.codecs[0].fmtp, o.media[0].codec(111)->fmtp);
  EXPECT_TRUE(hasExt(audio, uri::kAudioLevel));
  EXPECT_TRUE(hasExt(audio, uri::kMid));
  // The offer's ids are kept.
  for (const auto& e : audio.extmaps) {
    auto it = std::find_if(o.media[0].extmaps.begin(), o.media[0].extmaps.end(),
                           [&](const Extmap& x) { return x.uri == e.uri; });
    ASSERT_NE(it, o.media[0].extmaps.end());
    EXPECT_EQ(e.id, it->id);
  }

  const Media& video = a.media[1];
  // Server preference: VP8, VP9 profile 0, H.264 42e0 then 4200 with packetization-mode 1, AV1; each with its RTX.
  ASSERT_GE(video.codecs.size(), 2u);
  EXPECT_EQ(video.codecs[0].name, "VP8");
  EXPECT_EQ(video.codecs[0].payloadType, 96);
  EXPECT_EQ(video.codecs[1].name, "rtx");
  EXPECT_EQ(video.codecs[1].fmtpParameter("apt"), "96");
  for (size_t i = 0; i < video.codecs.size(); ++i) {
    const Codec& c = video.codecs[i];
    EXPECT_EQ(video.formats[i], std::to_string(c.payloadType));
    EXPECT_NE(c.name, "red");
    EXPECT_NE(c.name, "ulpfec");
    if (c.name == "H264") {
      EXPECT_EQ(c.fmtpParameter("packetization-mode"), "1");
      std::string plid(c.fmtpParameter("profile-level-id").value_or(""));
      EXPECT_TRUE(plid.rfind("42e0", 0) == 0 || plid.rfind("4200", 0) == 0) << plid;
    }
    if (c.name == "VP9") {
      EXPECT_EQ(c.fmtpParameter("profile-id"), "0");
    }
    if (c.name == "rtx") {
      ASSERT_GT(i, 0u);
      EXPECT_EQ(c.fmtpParameter("apt"), std::to_string(video.codecs[i - 1].payloadType));
    }
  }
  auto h264 = std::count_if(video.codecs.begin(), video.codecs.end(), [](const Codec& c) { return c.name == "H264"; });
  EXPECT_EQ(h264, 2);
  // rtcp-fb: what the server supports, in the offer's order.
  EXPECT_EQ(video.codecs[0].feedback,
            (std::vector<RtcpFeedback>{
                {"goog-remb", ""}, {"transport-cc", ""}, {"ccm", "fir"}, {"nack", ""}, {"nack", "pli"}}));
  EXPECT_TRUE(hasExt(video, uri::kTransportCc));
  EXPECT_TRUE(hasExt(video, uri::kRid));
  EXPECT_FALSE(hasExt(video, "urn:ietf:params:rtp-hdrext:toffset"));
  EXPECT_FALSE(hasExt(video, "http://www.webrtc.org/experiments/rtp-hdrext/playout-delay"));
}

TEST(SdpAnswer, PreferenceOrderDecidesNotOfferOrder) {
  ServerParams s = server();
  s.videoCodecs = {{"H264", 90000, std::nullopt, {{"packetization-mode", "1", ""}}, "42e0"}, defaultVideoCodecs()[0]};
  Description a = answerTo("chromium156_audio_video.sdp", s);
  ASSERT_GE(a.media[1].codecs.size(), 4u);
  EXPECT_EQ(a.media[1].codecs[0].name, "H264");
  EXPECT_EQ(a.media[1].codecs[0].payloadType, 108);  // Chromium's 42e01f with packetization-mode=1
  EXPECT_EQ(a.media[1].codecs[2].name, "VP8");
}

TEST(SdpAnswer, SimulcastIsReceivedWithTheOfferedRids) {
  Description a = answerTo("chromium156_simulcast.sdp");
  const Media& v = a.media[1];
  EXPECT_EQ(v.direction, Direction::kRecvOnly);
  EXPECT_EQ(v.rids,
            (std::vector<Rid>{
                {"q", RidDirection::kRecv, ""}, {"h", RidDirection::kRecv, ""}, {"f", RidDirection::kRecv, ""}}));
  ASSERT_TRUE(v.simulcast);
  EXPECT_TRUE(v.simulcast->send.empty());
  EXPECT_EQ(v.simulcast->recv.size(), 3u);
  EXPECT_TRUE(hasExt(v, uri::kRid));
  EXPECT_TRUE(hasExt(v, uri::kRepairedRid));
  std::string text = write(a);
  EXPECT_NE(text.find("a=simulcast:recv q;h;f\r\n"), std::string::npos);
}

TEST(SdpAnswer, DataChannel) {
  Description a = answerTo("chromium156_datachannel.sdp");
  ASSERT_EQ(a.media.size(), 1u);
  const Media& m = a.media[0];
  EXPECT_EQ(m.kind, "application");
  EXPECT_EQ(m.proto, "UDP/DTLS/SCTP");
  EXPECT_EQ(m.formats, (std::vector<std::string>{"webrtc-datachannel"}));
  EXPECT_EQ(m.sctpPort, 5000);
  EXPECT_EQ(m.maxMessageSize, 262144u);
  EXPECT_EQ(m.setup, Setup::kPassive);
  EXPECT_FALSE(m.direction);
  EXPECT_EQ(a.bundle()->mids, (std::vector<std::string>{"0"}));
}

TEST(SdpAnswer, ViewerIsSentTo) {
  ServerParams s = server();
  s.send = true;
  s.receive = false;
  Description a = answerTo("chromium156_recvonly.sdp", s);
  for (const auto& m : a.media) EXPECT_EQ(m.direction, Direction::kSendOnly);
  // A server that only receives answers a viewer's offer inactive, and keeps the m-lines in BUNDLE.
  Description b = answerTo("chromium156_recvonly.sdp");
  for (const auto& m : b.media) EXPECT_EQ(m.direction, Direction::kInactive);
  EXPECT_EQ(b.bundle()->mids.size(), 2u);
}

TEST(SdpAnswer, RefusedKindIsPortZeroOutsideBundle) {
  ServerParams s = server();
  s.acceptVideo = false;
  Description a = answerTo("chromium156_screenshare.sdp", s);
  ASSERT_EQ(a.media.size(), 3u);
  EXPECT_EQ(a.media[0].port, 7881);
  for (size_t i = 1; i < 3; ++i) {
    EXPECT_EQ(a.media[i].port, 0);
    EXPECT_TRUE(a.media[i].isRejected());
    EXPECT_EQ(a.media[i].direction, Direction::kInactive);
    EXPECT_TRUE(a.media[i].candidates.empty());
    EXPECT_EQ(a.media[i].formats.size(), 1u);
  }
  EXPECT_EQ(a.bundle()->mids, (std::vector<std::string>{"0"}));
}

TEST(SdpAnswer, NoCommonCodecIsPortZero) {
  ServerParams s = server();
  s.videoCodecs = {{"H265", 90000, std::nullopt, {}, {}}};
  Description a = answerTo("chromium156_audio_video.sdp", s);
  EXPECT_EQ(a.media[1].port, 0);
  EXPECT_EQ(a.bundle()->mids, (std::vector<std::string>{"0"}));
}

TEST(SdpAnswer, FirefoxSessionLevelTransport) {
  Description a = answerTo("firefox_audio_video.sdp");
  ASSERT_EQ(a.media.size(), 2u);
  EXPECT_EQ(a.media[0].codecs[0].name, "opus");
  EXPECT_EQ(a.media[1].codecs[0].name, "VP8");
  EXPECT_EQ(a.bundle()->mids.size(), 2u);
}

TEST(SdpAnswer, IceRestartTakesTheNewServerCredentials) {
  ServerParams s = server();
  s.iceUfrag = "restart9";
  s.sessionVersion = "2";
  Description a = answerTo("chromium156_ice_restart.sdp", s);
  for (const auto& m : a.media) EXPECT_EQ(m.iceUfrag, "restart9");
  EXPECT_EQ(a.origin.sessionVersion, "2");
}

std::string without(std::string text, std::string_view prefix) {
  std::string out;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    std::string line = text.substr(pos, nl - pos + 1);
    if (line.rfind(prefix, 0) != 0) out += line;
    pos = nl == std::string::npos ? text.size() : nl + 1;
  }
  return out;
}

std::string refusal(const std::string& text, const ServerParams& s = server()) {
  auto d = parse(text);
  EXPECT_TRUE(d);
  if (!d) return "";
  auto a = answer(*d, s);
  EXPECT_FALSE(a);
  return a ? "" : a.error().message();
}

TEST(SdpAnswer, RefusedOffersSayWhy) {
  std::string o = test::readVector("chromium156_audio_video.sdp");
  EXPECT_EQ(refusal(without(o, "a=group:BUNDLE")),
            "offer has no a=group:BUNDLE (kaiwa takes all media on one transport)");
  EXPECT_EQ(refusal(without(o, "a=rtcp-mux")), "m-line 1 (audio, mid 0) has no a=rtcp-mux");
  EXPECT_EQ(refusal(without(o, "a=fingerprint")), "m-line 1 (audio, mid 0) has no a=fingerprint");
  EXPECT_EQ(refusal(without(o, "a=ice-ufrag")), "m-line 1 (audio, mid 0) has no a=ice-ufrag and a=ice-pwd");
  EXPECT_EQ(refusal(without(o, "a=mid")), "m-line 1 (audio) has no a=mid");
  std::string passive = o;
  for (size_t at; (at = passive.find("a=setup:actpass")) != std::string::npos;)
    passive.replace(at, 15, "a=setup:passive");
  EXPECT_EQ(refusal(passive),
            "m-line 1 (audio, mid 0) has a=setup:passive (kaiwa is the DTLS server: offer actpass or active)");
  std::string twice = o;
  twice.replace(twice.find("a=mid:1"), 7, "a=mid:0");
  EXPECT_EQ(refusal(twice), "m-line 2 (video, mid 0) repeats the mid of m-line 1");
  ServerParams s = server();
  s.acceptAudio = s.acceptVideo = false;
  EXPECT_EQ(refusal(o, s), "offer has no m-line kaiwa can accept");
  s = server();
  s.addresses.clear();
  EXPECT_EQ(refusal(o, s), "server has no media address");
}

TEST(SdpAnswer, OfferToASubscriber) {
  ServerParams s = server();
  OutgoingTrack audio{"0",
                      "audio",
                      Direction::kSendOnly,
                      false,
                      "alice",
                      "alice-mic",
                      "kaiwa",
                      1001,
                      std::nullopt,
                      defaultOfferCodecs("audio"),
                      defaultOfferExtmaps("audio")};
  OutgoingTrack video{"1",
                      "video",
                      Direction::kSendOnly,
                      false,
                      "alice",
                      "alice-cam",
                      "kaiwa",
                      2001,
                      2002,
                      defaultOfferCodecs("video"),
                      defaultOfferExtmaps("video")};
  OutgoingTrack gone{"2", "video",      Direction::kInactive,        true, "", "", "",
                     0,   std::nullopt, defaultOfferCodecs("video"), {}};
  auto o = offer({audio, video, gone}, OutgoingData{"3"}, s);
  ASSERT_TRUE(o) << o.error().message();
  EXPECT_TRUE(o->iceLite);
  EXPECT_EQ(o->bundle()->mids, (std::vector<std::string>{"0", "1", "3"}));
  ASSERT_EQ(o->media.size(), 4u);
  const Media& v = o->media[1];
  EXPECT_EQ(v.setup, Setup::kActPass);
  EXPECT_EQ(v.direction, Direction::kSendOnly);
  EXPECT_EQ(v.msids, (std::vector<Msid>{{"alice", "alice-cam"}}));
  EXPECT_EQ(v.ssrcGroups, (std::vector<SsrcGroup>{{"FID", {2001, 2002}}}));
  EXPECT_EQ(v.cname(), "kaiwa");
  EXPECT_EQ(v.ssrcs.size(), 4u);
  EXPECT_EQ(o->media[2].port, 0);
  EXPECT_TRUE(o->media[2].ssrcs.empty());
  EXPECT_EQ(o->media[3].sctpPort, 5000);
  auto back = parse(write(*o));
  ASSERT_TRUE(back);
  EXPECT_EQ(*back, *o);

  video.codecs.push_back(video.codecs.front());
  EXPECT_FALSE(offer({video}, std::nullopt, s));
  EXPECT_FALSE(offer({audio, audio}, std::nullopt, s));
  EXPECT_FALSE(offer({}, std::nullopt, s));
}

TEST(SdpAnswer, ChromiumAnswerToTheServerOfferParses) {
  // Written by Chromium to sdp_tool's offer (tests/unit/sdp/accept.mjs): it takes the server's ICE-lite offer with
  // a=setup:actpass and answers active, so kaiwa is the DTLS server.
  auto d = parse(test::readVector("chromium156_answer_to_kaiwa_offer.sdp"));
  ASSERT_TRUE(d) << d.error().message();
  ASSERT_EQ(d->media.size(), 3u);
  for (const auto& m : d->media) EXPECT_EQ(m.setup, Setup::kActive);
  EXPECT_EQ(d->media[0].direction, Direction::kRecvOnly);
}

}  // namespace
}  // namespace kaiwa::sdp

namespace kaiwa::sdp {
namespace {

TEST(SdpAnswer, FingerprintAsTheDtlsModuleWritesIt) {
  ServerParams s = server();
  s.fingerprint = std::string("sha-256 ") + kFingerprint;
  Description a = answerTo("chromium156_audio_video.sdp", s);
  EXPECT_EQ(a.fingerprints, (std::vector<Fingerprint>{{"sha-256", kFingerprint}}));
  s.fingerprint = "sha-384 AA:BB";
  EXPECT_EQ(answerTo("chromium156_audio_video.sdp", s).fingerprints, (std::vector<Fingerprint>{{"sha-384", "AA:BB"}}));
  for (const char* bad : {"", "sha-256 ", " AA", "sha-256 AA BB"}) {
    s.fingerprint = bad;
    auto r = answer(offerOf("chromium156_audio_video.sdp"), s);
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().reason, "server has no certificate fingerprint");
  }
  s = server();
  s.sessionId = "1 2";
  EXPECT_FALSE(answer(offerOf("chromium156_audio_video.sdp"), s));
  s = server();
  s.icePwd = "a b";
  EXPECT_FALSE(answer(offerOf("chromium156_audio_video.sdp"), s));
}

TEST(SdpAnswer, ViewerAnswerNamesWhatTheServerSends) {
  ServerParams s = server();
  s.send = true;
  s.receive = false;
  OutgoingTrack video;
  video.mid = "1";
  video.streamId = "alice";
  video.trackId = "alice-cam";
  video.cname = "kaiwa";
  video.ssrc = 2001;
  video.rtxSsrc = 2002;
  s.senders = {video};
  Description a = answerTo("chromium156_recvonly.sdp", s);
  EXPECT_TRUE(a.media[0].ssrcs.empty());  // nothing given for mid 0
  const Media& v = a.media[1];
  EXPECT_EQ(v.direction, Direction::kSendOnly);
  EXPECT_EQ(v.msids, (std::vector<Msid>{{"alice", "alice-cam"}}));
  EXPECT_EQ(v.ssrcGroups, (std::vector<SsrcGroup>{{"FID", {2001, 2002}}}));
  EXPECT_EQ(v.ssrcs.size(), 4u);
  EXPECT_EQ(v.cname(), "kaiwa");
  // A publisher's offer answered recvonly gets none of it.
  s.send = false;
  s.receive = true;
  Description p = answerTo("chromium156_audio_video.sdp", s);
  EXPECT_TRUE(p.media[1].ssrcs.empty());
}

TEST(SdpRemoteTransport, ChromiumPerMediaAndFirefoxSessionLevel) {
  Description c = offerOf("chromium156_audio_video.sdp");
  auto t = remoteTransport(c);
  ASSERT_TRUE(t) << t.error().message();
  EXPECT_EQ(t->iceUfrag, *c.media[0].iceUfrag);
  EXPECT_EQ(t->icePwd, *c.media[0].icePwd);
  EXPECT_EQ(t->fingerprints, c.media[0].fingerprints);
  EXPECT_EQ(t->setup, Setup::kActPass);
  EXPECT_FALSE(t->iceLite);
  EXPECT_EQ(t->candidates.size(), c.media[0].candidates.size());

  Description f = offerOf("firefox_audio_video.sdp");
  auto ft = remoteTransport(f);
  ASSERT_TRUE(ft) << ft.error().message();
  EXPECT_EQ(ft->fingerprints, f.fingerprints);  // session level
  EXPECT_EQ(ft->iceUfrag, *f.media[0].iceUfrag);

  // kaiwa's own answer: ICE-lite, passive.
  auto a = answer(c, server());
  ASSERT_TRUE(a);
  auto at = remoteTransport(*a);
  ASSERT_TRUE(at);
  EXPECT_TRUE(at->iceLite);
  EXPECT_EQ(at->setup, Setup::kPassive);
  EXPECT_EQ(at->iceUfrag, "kaiwa1234");

  Description none = c;
  none.groups.clear();
  EXPECT_EQ(remoteTransport(none).error().reason, "no a=group:BUNDLE");
  Description noFp = c;
  for (auto& m : noFp.media) m.fingerprints.clear();
  EXPECT_EQ(remoteTransport(noFp).error().reason, "m-line 0 has no a=fingerprint");
}

// A WHIP client's ICE restart PATCH (RFC 9725 section 4.4.1), as whip-client.mjs builds it from Chromium's offer.
constexpr const char* kRestartFragment =
    "a=ice-ufrag:EsAw\r\n"
    "a=ice-pwd:bP+XJMM09aR8AiX1jdukzR6Y\r\n"
    "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"
    "a=mid:0\r\n"
    "a=candidate:1387637174 1 udp 2122260223 192.0.2.1 61764 typ host generation 0 ufrag EsAw network-id 1\r\n"
    "a=end-of-candidates\r\n";

TEST(SdpIceFragment, RestartFragmentGivesCredentialsAndFirstMline) {
  auto f = parseIceFragment(kRestartFragment);
  ASSERT_TRUE(f) << f.error().message();
  EXPECT_EQ(f->iceUfrag, "EsAw");
  EXPECT_EQ(f->icePwd, "bP+XJMM09aR8AiX1jdukzR6Y");
  EXPECT_EQ(f->kind, "audio");
  EXPECT_EQ(f->proto, "UDP/TLS/RTP/SAVPF");
  EXPECT_EQ(f->formats, std::vector<std::string>{"111"});
  EXPECT_EQ(f->mid, "0");
  EXPECT_EQ(f->candidates, 1u);
  EXPECT_TRUE(f->endOfCandidates);
}

TEST(SdpIceFragment, TrickleWithoutCredentialsAndEmpty) {
  auto f = parseIceFragment("a=end-of-candidates\r\n");
  ASSERT_TRUE(f) << f.error().message();
  EXPECT_FALSE(f->iceUfrag);
  EXPECT_TRUE(f->endOfCandidates);
  EXPECT_TRUE(f->kind.empty());
  auto empty = parseIceFragment("");
  ASSERT_TRUE(empty);
  EXPECT_FALSE(empty->iceUfrag);
  // Credentials in the m= section count as the fragment's.
  auto media =
      parseIceFragment("m=video 9 UDP/TLS/RTP/SAVPF 96\na=mid:1\na=ice-ufrag:abcd\na=ice-pwd:0123456789abcdefghijkl\n");
  ASSERT_TRUE(media) << media.error().message();
  EXPECT_EQ(media->iceUfrag, "abcd");
  EXPECT_EQ(media->mid, "1");
}

TEST(SdpIceFragment, RefusalsWithTheClientsLineNumbers) {
  auto bad = parseIceFragment("a=ice-ufrag:abcd\r\na=ice-pwd:0123456789abcdefghijkl\r\nx=what\r\n");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().line, 3u) << bad.error().message();
  EXPECT_FALSE(parseIceFragment("a=ice-ufrag:abcd\r\n"));                                    // no password
  EXPECT_FALSE(parseIceFragment("a=ice-ufrag:ab\r\na=ice-pwd:0123456789abcdefghijkl\r\n"));  // ufrag too short
  EXPECT_FALSE(parseIceFragment("a=ice-ufrag:ab:cd\r\na=ice-pwd:0123456789abcdefghijkl\r\n"));
  EXPECT_FALSE(parseIceFragment("a=ice-ufrag:abcd\r\na=ice-pwd:short\r\n"));
  EXPECT_FALSE(parseIceFragment("v=0\r\n"));  // a whole description is no fragment
  Limits small;
  small.maxBytes = 16;
  EXPECT_FALSE(parseIceFragment(kRestartFragment, small));
  std::string many;
  for (int i = 0; i < 5000; ++i) many += "a=end-of-candidates\r\n";
  EXPECT_FALSE(parseIceFragment(many));
}

TEST(SdpIceFragment, RestartAnswerCarriesNewCredentialsAndCandidates) {
  auto f = parseIceFragment(kRestartFragment);
  ASSERT_TRUE(f);
  ServerParams s = server();
  s.iceUfrag = "w0xnewufrag";
  s.icePwd = "newpassword0123456789abcd";
  auto text = iceRestartAnswer(*f, s);
  ASSERT_TRUE(text) << text.error().message();
  EXPECT_EQ(*text,
            "a=ice-lite\r\n"
            "a=ice-ufrag:w0xnewufrag\r\n"
            "a=ice-pwd:newpassword0123456789abcd\r\n"
            "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"
            "a=mid:0\r\n"
            "a=candidate:1 1 udp 2130706431 192.0.2.10 7881 typ host\r\n"
            "a=candidate:2 1 tcp 1520435199 192.0.2.10 7881 typ host tcptype passive\r\n"
            "a=candidate:3 1 udp 2130706175 2001:db8::10 7881 typ host\r\n"
            "a=end-of-candidates\r\n");
  // What the server writes parses back as a fragment with its credentials.
  auto back = parseIceFragment(*text);
  ASSERT_TRUE(back) << back.error().message();
  EXPECT_EQ(back->iceUfrag, "w0xnewufrag");
  EXPECT_EQ(back->candidates, 3u);
  ServerParams none = s;
  none.addresses.clear();
  EXPECT_FALSE(iceRestartAnswer(*f, none));
}

}  // namespace
}  // namespace kaiwa::sdp

namespace kaiwa::sdp {
namespace {

// A publish connection of kaiwa's SDK in an SFU room (Chromium 156): microphone, camera and the `kaiwa` data channel
// in one BUNDLE group. The answer takes all three on the one transport, the data channel with kaiwa's SCTP port and
// message size; an answer that takes no data (WHIP's) refuses only that m-line.
TEST(SdpAnswer, PublishWithDataChannelKeepsItInTheBundle) {
  Description a = answerTo("chromium156_publish_datachannel.sdp");
  ASSERT_EQ(a.media.size(), 3u);
  EXPECT_EQ(a.media[0].kind, "audio");
  EXPECT_EQ(a.media[1].kind, "video");
  const Media& d = a.media[2];
  EXPECT_EQ(d.kind, "application");
  EXPECT_FALSE(d.isRejected());
  EXPECT_EQ(d.formats, (std::vector<std::string>{"webrtc-datachannel"}));
  EXPECT_EQ(d.sctpPort, 5000);
  EXPECT_EQ(d.maxMessageSize, 262144u);
  EXPECT_EQ(a.bundle()->mids, (std::vector<std::string>{"0", "1", "2"}));
  const std::string text = write(a);
  EXPECT_NE(text.find("m=application 7881 UDP/DTLS/SCTP webrtc-datachannel\r\n"), std::string::npos) << text;
  EXPECT_NE(text.find("a=max-message-size:262144\r\n"), std::string::npos);

  ServerParams noData = server();
  noData.acceptData = false;
  Description w = answerTo("chromium156_publish_datachannel.sdp", noData);
  ASSERT_EQ(w.media.size(), 3u);
  EXPECT_TRUE(w.media[2].isRejected());
  EXPECT_EQ(w.bundle()->mids, (std::vector<std::string>{"0", "1"}));
}

}  // namespace
}  // namespace kaiwa::sdp

// From captured browser offers to the router's configuration: a Chromium publisher's tracks (SSRCs from a=ssrc and
// the FID group, the MID extension id, media payload types) and a Firefox viewer's rewrites (its payload types and
// extension ids for the same codecs and URIs, RTX) — the two browsers number everything differently.
#include "sfu/negotiation.hpp"

#include <gtest/gtest.h>

#include "../sdp/vectors.hpp"

namespace kaiwa::sfu {
namespace {

sdp::ServerParams server(bool send) {
  sdp::ServerParams s;
  s.iceUfrag = "kaiwa1234";
  s.icePwd = "0123456789abcdefghijklmn";
  s.fingerprint =
      "sha-256 AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89";
  s.addresses = {{"192.0.2.10", 7881, std::nullopt}};
  s.receive = !send;
  s.send = send;
  s.acceptData = false;
  return s;
}

sdp::Description parsed(const std::string& name) {
  auto d = sdp::parse(sdp::test::readVector(name));
  EXPECT_TRUE(d) << name;
  return d ? *d : sdp::Description{};
}

TEST(Negotiation, PublishedTracksFromAChromiumOffer) {
  const auto offer = parsed("chromium156_audio_video.sdp");
  const auto answer = sdp::answer(offer, server(false));
  ASSERT_TRUE(answer) << answer.error().message();
  const auto media = publishedMedia(offer, *answer);
  EXPECT_EQ(media.publisher.midExtensionId, 4);
  EXPECT_EQ(media.publisher.ridExtensionId, 10);
  ASSERT_EQ(media.tracks.size(), 2u);
  EXPECT_EQ(media.tracks[0].kind, MediaKind::kAudio);
  EXPECT_EQ(media.tracks[0].mid, "0");
  EXPECT_EQ(media.tracks[0].ssrc, 2836998756u);
  EXPECT_EQ(media.tracks[0].clockRate, 48000u);
  EXPECT_TRUE(media.tracks[0].payloadTypes.test(111));
  EXPECT_EQ(media.tracks[1].kind, MediaKind::kVideo);
  EXPECT_EQ(media.tracks[1].mid, "1");
  EXPECT_EQ(media.tracks[1].ssrc, 2072294124u);
  EXPECT_EQ(media.tracks[1].rtxSsrc, 4162394792u);
  EXPECT_TRUE(media.tracks[1].payloadTypes.test(96));
  EXPECT_FALSE(media.tracks[1].payloadTypes.test(97));  // VP8's RTX
  // What the SFU's loss recovery needs: NACK negotiated for video (audio has none), RTX 97 carrying VP8 (96), and
  // reduced-size RTCP (Chromium offers a=rtcp-rsize; kaiwa's answer keeps it).
  EXPECT_FALSE(media.tracks[0].nack);
  EXPECT_TRUE(media.tracks[1].nack);
  EXPECT_EQ(media.tracks[1].rtxPayloadTypes[97], std::optional<uint8_t>(96));
  EXPECT_FALSE(media.tracks[1].rtxPayloadTypes[96]);
  EXPECT_TRUE(media.publisher.reducedSize);
  // The audio levels that pick the active speaker: Chromium's ssrc-audio-level id, kept in kaiwa's answer; none on
  // video.
  EXPECT_EQ(media.tracks[0].audioLevelExtensionId, 1);
  EXPECT_EQ(media.tracks[1].audioLevelExtensionId, 0);
}

TEST(Negotiation, SimulcastGivesATrackPerRidLearnedByMid) {
  const auto offer = parsed("chromium156_simulcast.sdp");
  const auto answer = sdp::answer(offer, server(false));
  ASSERT_TRUE(answer) << answer.error().message();
  const auto media = publishedMedia(offer, *answer);
  size_t video = 0;
  for (const auto& t : media.tracks) {
    if (t.kind != MediaKind::kVideo) continue;
    ++video;
    EXPECT_FALSE(t.rid.empty());
    EXPECT_EQ(t.ssrc, 0u);
    EXPECT_TRUE(t.vp8);  // Chromium's first video codec: layers are switched at its keyframes
  }
  EXPECT_EQ(video, 3u);
  EXPECT_EQ(media.publisher.transportCcExtensionId, 3);  // kaiwa's answer keeps it: feedback goes to the publisher
}

TEST(Negotiation, AFirefoxViewerGetsItsOwnPayloadTypesAndExtensionIds) {
  const auto pubOffer = parsed("chromium156_audio_video.sdp");
  const auto pubAnswer = sdp::answer(pubOffer, server(false));
  ASSERT_TRUE(pubAnswer);
  const auto viewerOffer = parsed("firefox_recvonly.sdp");
  auto params = server(true);
  params.senders.push_back(outgoingTrack(viewerOffer.media[0], 0x1000, 0, "kaiwa", "room"));
  params.senders.push_back(outgoingTrack(viewerOffer.media[1], 0x2000, 0x2001, "kaiwa", "room"));
  EXPECT_FALSE(params.senders[0].rtxSsrc);  // audio offers no RTX
  const auto viewerAnswer = sdp::answer(viewerOffer, params);
  ASSERT_TRUE(viewerAnswer) << viewerAnswer.error().message();
  ASSERT_EQ(viewerAnswer->media.size(), 2u);
  EXPECT_EQ(viewerAnswer->media[1].direction, sdp::Direction::kSendOnly);

  const auto audio = subscriptionConfig(*pubAnswer->findMid("0"), viewerAnswer->media[0], 0x1000, 0);
  ASSERT_TRUE(audio);
  EXPECT_EQ(audio->payloadTypes[111], 109);  // opus
  EXPECT_EQ(audio->extensions[1], 1);        // ssrc-audio-level
  EXPECT_EQ(audio->extensions[4], 3);        // sdes:mid
  // transport-cc: the element is kept in its place, and the router writes the viewer's own numbers into it.
  EXPECT_EQ(audio->extensions[3], 7);
  EXPECT_EQ(audio->transportCcExtensionId, 7);
  EXPECT_EQ(audio->extensions[2], 0);  // abs-send-time: the viewer did not offer it for audio
  EXPECT_EQ(audio->rtxSsrc, 0u);

  const auto video = subscriptionConfig(*pubAnswer->findMid("1"), viewerAnswer->media[1], 0x2000, 0x2001);
  ASSERT_TRUE(video);
  EXPECT_EQ(video->payloadTypes[96], 120);  // VP8
  EXPECT_FALSE(video->payloadTypes[97]);    // the publisher's RTX is never forwarded as media
  EXPECT_EQ(video->extensions[4], 3);       // sdes:mid
  EXPECT_EQ(video->extensions[2], 4);       // abs-send-time
  EXPECT_EQ(video->rtxSsrc, 0x2001u);
  EXPECT_EQ(video->rtxPayloadType, 124);  // apt=120
  EXPECT_EQ(video->ssrc, 0x2000u);
}

TEST(Negotiation, NoCommonCodecIsNoSubscription) {
  const auto pubOffer = parsed("chromium156_audio_video.sdp");
  const auto pubAnswer = sdp::answer(pubOffer, server(false));
  ASSERT_TRUE(pubAnswer);
  sdp::Media viewer = *pubAnswer->findMid("1");
  for (auto& c : viewer.codecs) c.name = "X-UNKNOWN";
  EXPECT_FALSE(subscriptionConfig(*pubAnswer->findMid("1"), viewer, 1, 0));
}

}  // namespace
}  // namespace kaiwa::sfu

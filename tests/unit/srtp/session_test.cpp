// SRTP/SRTCP on libsrtp2 with keys from a real DTLS handshake (kaiwa's dtls::Session in both roles): what one side
// protects the other unprotects, for each profile; forged, corrupt and replayed packets are refused as values.
#include "srtp/session.hpp"

#include <gtest/gtest.h>

#include <array>
#include <cstring>

#include "dtls/certificate.hpp"
#include "dtls/session.hpp"

namespace kaiwa::srtp {
namespace {

// Keys as a DTLS handshake between a server (kaiwa) and a client (a browser) derives them.
dtls::SrtpKeys handshake(Profile profile, dtls::SrtpKeys* clientKeys) {
  auto serverCert = dtls::Certificate::generate(), clientCert = dtls::Certificate::generate();
  const Profile offer[] = {profile};
  auto serverCtx = dtls::Context::make(*serverCert, dtls::Role::kServer);
  auto clientCtx = dtls::Context::make(*clientCert, dtls::Role::kClient, offer);
  auto server = dtls::Session::make(*serverCtx, clientCert->fingerprint());
  auto client = dtls::Session::make(*clientCtx, serverCert->fingerprint());
  client->start();
  for (int i = 0; i < 10; ++i) {
    auto a = std::move(client->output());
    client->output().clear();
    for (auto& d : a) server->receive(d);
    auto b = std::move(server->output());
    server->output().clear();
    for (auto& d : b) client->receive(d);
  }
  EXPECT_EQ(server->status(), dtls::Status::kConnected);
  *clientKeys = client->srtpKeys();
  return server->srtpKeys();
}

struct alignas(4) Packet {
  std::array<uint8_t, 1500> bytes{};
  size_t size = 0;
};

Packet rtp(uint16_t seq, uint32_t ssrc, size_t payload) {
  Packet p;
  p.bytes[0] = 0x80;
  p.bytes[1] = 96;
  p.bytes[2] = uint8_t(seq >> 8);
  p.bytes[3] = uint8_t(seq);
  p.bytes[4] = 0x12;  // timestamp
  for (int i = 0; i < 4; ++i) p.bytes[8 + i] = uint8_t(ssrc >> (24 - 8 * i));
  for (size_t i = 0; i < payload; ++i) p.bytes[12 + i] = uint8_t(i * 13 + seq);
  p.size = 12 + payload;
  return p;
}

Packet receiverReport(uint32_t ssrc) {
  Packet p;
  p.bytes[0] = 0x80;  // RR with no report block
  p.bytes[1] = 201;
  p.bytes[3] = 1;  // length 1 (8 bytes)
  for (int i = 0; i < 4; ++i) p.bytes[4 + i] = uint8_t(ssrc >> (24 - 8 * i));
  p.size = 8;
  return p;
}

class SrtpProfiles : public testing::TestWithParam<Profile> {};

TEST_P(SrtpProfiles, WhatTheBrowserProtectsKaiwaUnprotects) {
  dtls::SrtpKeys clientKeys;
  dtls::SrtpKeys serverKeys = handshake(GetParam(), &clientKeys);
  ASSERT_EQ(serverKeys.profile, GetParam());
  auto browserOut = Session::make(GetParam(), clientKeys.local, Direction::kOutbound);
  auto kaiwaIn = Session::make(GetParam(), serverKeys.remote, Direction::kInbound);
  auto kaiwaOut = Session::make(GetParam(), serverKeys.local, Direction::kOutbound);
  auto browserIn = Session::make(GetParam(), clientKeys.remote, Direction::kInbound);
  ASSERT_TRUE(browserOut && kaiwaIn && kaiwaOut && browserIn);

  for (uint16_t seq = 65530; seq != 10; ++seq) {  // across the sequence number's wrap
    Packet plain = rtp(seq, 0x11223344, 1100);
    Packet p = plain;
    ASSERT_EQ(browserOut->protectRtp(p.bytes, p.size), Result::kOk);
    EXPECT_GT(p.size, plain.size);
    EXPECT_NE(0, std::memcmp(p.bytes.data() + 12, plain.bytes.data() + 12, 100));  // the payload is encrypted
    ASSERT_EQ(kaiwaIn->unprotectRtp(p.bytes, p.size), Result::kOk) << seq;
    ASSERT_EQ(p.size, plain.size);
    EXPECT_EQ(0, std::memcmp(p.bytes.data(), plain.bytes.data(), p.size));
  }
  // And back, RTCP too.
  Packet rr = receiverReport(0xCAFE);
  Packet p = rr;
  ASSERT_EQ(kaiwaOut->protectRtcp(p.bytes, p.size), Result::kOk);
  ASSERT_EQ(browserIn->unprotectRtcp(p.bytes, p.size), Result::kOk);
  ASSERT_EQ(p.size, rr.size);
  EXPECT_EQ(0, std::memcmp(p.bytes.data(), rr.bytes.data(), rr.size));
}

TEST_P(SrtpProfiles, ForgedCorruptAndReplayedPacketsAreRefused) {
  dtls::SrtpKeys clientKeys;
  dtls::SrtpKeys serverKeys = handshake(GetParam(), &clientKeys);
  auto out = Session::make(GetParam(), clientKeys.local, Direction::kOutbound);
  auto in = Session::make(GetParam(), serverKeys.remote, Direction::kInbound);
  Packet p = rtp(100, 7, 500);
  ASSERT_EQ(out->protectRtp(p.bytes, p.size), Result::kOk);
  Packet corrupt = p;
  corrupt.bytes[40] ^= 1;
  EXPECT_EQ(in->unprotectRtp(corrupt.bytes, corrupt.size), Result::kAuthFailed);
  Packet ok = p;
  ASSERT_EQ(in->unprotectRtp(ok.bytes, ok.size), Result::kOk);  // (the corrupt copy did not spend its index)
  Packet replay = p;
  EXPECT_EQ(in->unprotectRtp(replay.bytes, replay.size), Result::kReplay);
  // Protected with someone else's key.
  std::vector<uint8_t> otherKey(keyLength(GetParam()) + saltLength(GetParam()), 0x5A);
  auto mallory = Session::make(GetParam(), otherKey, Direction::kOutbound);
  Packet forged = rtp(101, 7, 500);
  ASSERT_EQ(mallory->protectRtp(forged.bytes, forged.size), Result::kOk);
  EXPECT_EQ(in->unprotectRtp(forged.bytes, forged.size), Result::kAuthFailed);
  // Truncated below a header.
  Packet tiny = p;
  tiny.size = 6;
  EXPECT_EQ(in->unprotectRtp(tiny.bytes, tiny.size), Result::kBadPacket);
}

INSTANTIATE_TEST_SUITE_P(Profiles, SrtpProfiles,
                         testing::Values(Profile::kAeadAes256Gcm, Profile::kAeadAes128Gcm, Profile::kAes128CmSha1_80),
                         [](const auto& info) { return std::string(name(info.param)).substr(5); });

TEST(SrtpSession, RefusesWrongKeysAndMisuse) {
  std::vector<uint8_t> key(44, 1);
  EXPECT_FALSE(Session::make(Profile::kAeadAes256Gcm, std::span(key).first(43), Direction::kInbound));
  EXPECT_FALSE(Session::make(Profile::kNone, key, Direction::kInbound));
  EXPECT_FALSE(Session::make(Profile::kAeadAes256Gcm, key, Direction::kInbound, 10));
  auto in = Session::make(Profile::kAeadAes256Gcm, key, Direction::kInbound);
  ASSERT_TRUE(in);
  Packet p = rtp(1, 1, 100);
  EXPECT_EQ(in->protectRtp(p.bytes, p.size), Result::kError);  // an inbound session does not protect
  // No room for the tag.
  auto out = Session::make(Profile::kAeadAes256Gcm, key, Direction::kOutbound);
  size_t size = p.size;
  EXPECT_EQ(out->protectRtp(std::span(p.bytes).first(size + 4), size), Result::kBadPacket);
}

}  // namespace
}  // namespace kaiwa::srtp

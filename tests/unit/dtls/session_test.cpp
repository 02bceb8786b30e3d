// DTLS-SRTP over datagrams: a real handshake in memory between a server and a client session (kaiwa's own code in
// both roles, as the load generator will use it), the SRTP profile and keys each side derives, the fingerprint
// check, record sizes, a lost flight and its retransmission, application data, close_notify and garbage.
#include "dtls/session.hpp"

#include <gtest/gtest.h>

#include <thread>

#include "dtls/certificate.hpp"

namespace kaiwa::dtls {
namespace {

using Datagrams = std::vector<std::vector<uint8_t>>;

Datagrams take(Session& s) {
  Datagrams out;
  out.swap(s.output());
  return out;
}

struct Pair {
  Certificate serverCert = *Certificate::generate();
  Certificate clientCert = *Certificate::generate();
  Context serverCtx;
  Context clientCtx;
  std::optional<Session> server, client;
  size_t largest = 0;  // the largest datagram either side wrote

  explicit Pair(std::span<const SrtpProfile> clientProfiles = Context::kDefaultProfiles,
                std::optional<std::string> serverSeesClient = std::nullopt,
                std::optional<std::string> clientSeesServer = std::nullopt)
      : serverCtx(*Context::make(serverCert, Role::kServer)),
        clientCtx(*Context::make(clientCert, Role::kClient, clientProfiles)) {
    server = Session::make(serverCtx, serverSeesClient.value_or(clientCert.fingerprint()));
    client = Session::make(clientCtx, clientSeesServer.value_or(serverCert.fingerprint()));
  }

  // Moves datagrams both ways until neither side has anything to say.
  void pump(std::vector<uint8_t>* serverPlain = nullptr, std::vector<uint8_t>* clientPlain = nullptr) {
    for (int round = 0; round < 20; ++round) {
      Datagrams fromClient = take(*client), fromServer = take(*server);
      if (fromClient.empty() && fromServer.empty()) return;
      for (auto& d : fromClient) {
        largest = std::max(largest, d.size());
        server->receive(d, serverPlain);
      }
      for (auto& d : fromServer) {
        largest = std::max(largest, d.size());
        client->receive(d, clientPlain);
      }
    }
  }

  void connect() {
    client->start();
    server->start();
    pump();
  }
};

TEST(DtlsCertificate, IsAFreshP256CertificateWithASha256Fingerprint) {
  auto a = Certificate::generate(), b = Certificate::generate();
  ASSERT_TRUE(a && b);
  const std::string& fp = a->fingerprint();
  ASSERT_EQ(fp.rfind("sha-256 ", 0), 0u);
  EXPECT_EQ(fp.size(), 8u + 32 * 3 - 1);
  EXPECT_NE(fp, b->fingerprint());
  EXPECT_EQ("sha-256 " + *fingerprintOf(a->x509(), "sha-256"), fp);
  EXPECT_EQ(fingerprintOf(a->x509(), "sha-1")->size(), 20u * 3 - 1);
  EXPECT_FALSE(fingerprintOf(a->x509(), "md5"));
}

TEST(DtlsSession, HandshakeAgreesOnAes256GcmAndCrossedKeys) {
  Pair p;
  p.connect();
  ASSERT_EQ(p.server->status(), Status::kConnected) << p.server->error();
  ASSERT_EQ(p.client->status(), Status::kConnected) << p.client->error();
  SrtpKeys s = p.server->srtpKeys(), c = p.client->srtpKeys();
  EXPECT_EQ(s.profile, SrtpProfile::kAeadAes256Gcm);
  EXPECT_EQ(c.profile, SrtpProfile::kAeadAes256Gcm);
  EXPECT_EQ(s.local.size(), 32u + 12);
  EXPECT_EQ(s.local, c.remote);  // what the server protects with, the client unprotects with
  EXPECT_EQ(s.remote, c.local);
  EXPECT_NE(s.local, s.remote);
  // Every handshake datagram fits the 1200-byte MTU.
  EXPECT_GT(p.largest, 0u);
  EXPECT_LE(p.largest, Session::kMtu);
}

TEST(DtlsSession, AClientThatOffersOnlyAesCmGetsIt) {
  const SrtpProfile only[] = {SrtpProfile::kAes128CmSha1_80};
  Pair p(only);
  p.connect();
  ASSERT_EQ(p.server->status(), Status::kConnected) << p.server->error();
  EXPECT_EQ(p.server->srtpKeys().profile, SrtpProfile::kAes128CmSha1_80);
  EXPECT_EQ(p.server->srtpKeys().local.size(), 16u + 14);
  EXPECT_EQ(p.client->srtpKeys().remote, p.server->srtpKeys().local);
}

TEST(DtlsSession, TheServerPrefersGcmWhateverTheClientsOrder) {
  const SrtpProfile cmFirst[] = {SrtpProfile::kAes128CmSha1_80, SrtpProfile::kAeadAes128Gcm};
  Pair p(cmFirst);
  p.connect();
  ASSERT_EQ(p.server->status(), Status::kConnected) << p.server->error();
  EXPECT_EQ(p.server->srtpKeys().profile, SrtpProfile::kAeadAes128Gcm);
  EXPECT_EQ(p.server->srtpKeys().local.size(), 16u + 12);
}

TEST(DtlsSession, ACertificateThatIsNotTheAnnouncedOneFailsTheSession) {
  auto other = Certificate::generate();
  Pair p(Context::kDefaultProfiles, other->fingerprint());
  p.connect();
  EXPECT_EQ(p.server->status(), Status::kFailed);
  EXPECT_EQ(p.server->error(), "fingerprint mismatch");
  EXPECT_EQ(p.server->srtpKeys().profile, SrtpProfile::kNone);
  EXPECT_TRUE(p.server->srtpKeys().local.empty());
  // The other way round: the client checks the server.
  Pair q(Context::kDefaultProfiles, std::nullopt, other->fingerprint());
  q.connect();
  EXPECT_EQ(q.client->status(), Status::kFailed);
  EXPECT_EQ(q.client->error(), "fingerprint mismatch");
}

TEST(DtlsSession, FingerprintsAreComparedWithoutCaringForCase) {
  Certificate cert = *Certificate::generate();
  std::string lower = cert.fingerprint();
  for (char& ch : lower) ch = char(std::tolower(static_cast<unsigned char>(ch)));
  Pair p(Context::kDefaultProfiles, "SHA-256 " + lower.substr(8));
  // (the pair's own client certificate is not `cert`: build one whose fingerprint is given in lower case)
  p.clientCert = std::move(cert);
  p.clientCtx = *Context::make(p.clientCert, Role::kClient);
  p.client = Session::make(p.clientCtx, p.serverCert.fingerprint());
  p.connect();
  EXPECT_EQ(p.server->status(), Status::kConnected) << p.server->error();
}

TEST(DtlsSession, RefusesFingerprintsThatDoNotParse) {
  Certificate cert = *Certificate::generate();
  Context ctx = *Context::make(cert, Role::kServer);
  for (const char* bad : {"", "sha-256", "sha-256 ", "sha-256 AB:C", "sha-256 AB:CD:", "sha-256 ZZ:00", "AB:CD"})
    EXPECT_FALSE(Session::make(ctx, bad)) << bad;
  EXPECT_TRUE(Session::make(ctx, "sha-256 AB:CD"));
}

TEST(DtlsSession, ALostFlightIsSentAgainWhenItsTimerRunsOut) {
  Pair p;
  p.client->start();
  Datagrams hello = take(*p.client);
  ASSERT_FALSE(hello.empty());  // ... lost
  auto timeout = p.client->nextTimeout();
  ASSERT_TRUE(timeout);
  EXPECT_LE(*timeout, std::chrono::milliseconds(100));
  std::this_thread::sleep_for(*timeout + std::chrono::milliseconds(5));
  EXPECT_EQ(p.client->onTimeout(), Status::kHandshaking);
  Datagrams again = take(*p.client);
  ASSERT_FALSE(again.empty());
  for (auto& d : again) p.server->receive(d);
  p.pump();
  EXPECT_EQ(p.server->status(), Status::kConnected) << p.server->error();
  EXPECT_EQ(p.client->status(), Status::kConnected) << p.client->error();
}

TEST(DtlsSession, CarriesApplicationDataBothWaysOneRecordPerDatagram) {
  Pair p;
  p.connect();
  ASSERT_EQ(p.server->status(), Status::kConnected);
  std::vector<uint8_t> sctp(1100);
  for (size_t i = 0; i < sctp.size(); ++i) sctp[i] = uint8_t(i * 7);
  ASSERT_TRUE(p.client->send(sctp));
  ASSERT_EQ(p.client->output().size(), 1u);
  EXPECT_LE(p.client->output()[0].size(), Session::kMtu);
  std::vector<uint8_t> atServer, atClient;
  p.pump(&atServer, &atClient);
  EXPECT_EQ(atServer, sctp);
  ASSERT_TRUE(p.server->send(std::span(sctp).first(10)));
  p.pump(&atServer, &atClient);
  EXPECT_EQ(atClient, std::vector<uint8_t>(sctp.begin(), sctp.begin() + 10));
  // More than one datagram holds: refused, and the session carries on.
  EXPECT_GE(p.client->maxPayload(), 1100u);
  EXPECT_LT(p.client->maxPayload(), Session::kMtu);
  std::vector<uint8_t> big(p.client->maxPayload() + 1, 1);
  EXPECT_FALSE(p.client->send(big));
  EXPECT_TRUE(p.client->output().empty());
  EXPECT_EQ(p.client->status(), Status::kConnected);
  // The largest that is taken still leaves as one datagram within the MTU.
  std::vector<uint8_t> largest(p.client->maxPayload(), 2);
  ASSERT_TRUE(p.client->send(largest));
  ASSERT_EQ(p.client->output().size(), 1u);
  EXPECT_LE(p.client->output()[0].size(), Session::kMtu);
  atServer.clear();
  p.pump(&atServer, &atClient);
  EXPECT_EQ(atServer, largest);
  ASSERT_TRUE(p.client->send(std::span(sctp).first(5)));
  atServer.clear();
  p.pump(&atServer, &atClient);
  EXPECT_EQ(atServer.size(), 5u);
}

TEST(DtlsSession, CloseNotifyEndsThePeersSession) {
  Pair p;
  p.connect();
  p.client->close();
  EXPECT_EQ(p.client->status(), Status::kClosed);
  EXPECT_FALSE(p.client->send(std::vector<uint8_t>(4, 0)));
  p.pump();
  EXPECT_EQ(p.server->status(), Status::kClosed);
}

TEST(DtlsSession, AReleasedSessionKeepsItsKeysAndSaysNothingMore) {
  Pair p;
  p.connect();
  ASSERT_EQ(p.server->status(), Status::kConnected);
  SrtpKeys before = p.server->srtpKeys();
  p.server->release();
  EXPECT_TRUE(p.server->released());
  EXPECT_EQ(p.server->status(), Status::kConnected);
  SrtpKeys after = p.server->srtpKeys();
  EXPECT_EQ(after.profile, before.profile);
  EXPECT_EQ(after.local, before.local);
  EXPECT_EQ(after.remote, before.remote);
  EXPECT_FALSE(p.server->send(std::vector<uint8_t>(10, 1)));
  EXPECT_EQ(p.server->maxPayload(), 0u);
  EXPECT_FALSE(p.server->nextTimeout());
  // What the peer says is not read: neither data nor its close_notify.
  ASSERT_TRUE(p.client->send(std::vector<uint8_t>(10, 2)));
  std::vector<uint8_t> atServer;
  p.pump(&atServer);
  EXPECT_TRUE(atServer.empty());
  p.client->close();
  p.pump();
  EXPECT_EQ(p.server->status(), Status::kConnected);
  p.server->close();  // ends without a word
  EXPECT_EQ(p.server->status(), Status::kClosed);
  EXPECT_TRUE(p.server->output().empty());
}

TEST(DtlsSession, GarbageNeverCrashesAndNonDtlsBytesAreIgnored) {
  Pair p;
  std::vector<uint8_t> rtp(100, 0x80);  // first byte 128: RTP, not DTLS
  EXPECT_EQ(p.server->receive(rtp), Status::kHandshaking);
  EXPECT_TRUE(p.server->output().empty());
  std::vector<uint8_t> junk(300);
  for (size_t i = 0; i < junk.size(); ++i) junk[i] = uint8_t(i * 31 + 5);
  junk[0] = 22;  // looks like a handshake record
  Status s = p.server->receive(junk);
  EXPECT_TRUE(s == Status::kHandshaking || s == Status::kFailed);
  // A connected pair shrugs off or fails on junk, and never hands it up as data.
  Pair q;
  q.connect();
  junk[0] = 23;  // application data with a bad MAC
  std::vector<uint8_t> plain;
  s = q.server->receive(junk, &plain);
  EXPECT_TRUE(plain.empty());
  EXPECT_TRUE(s == Status::kConnected || s == Status::kFailed);
}

}  // namespace
}  // namespace kaiwa::dtls

// tls::Session against a real OpenSSL client in memory: the handshake, records split at every byte, one record per
// write, close_notify both ways, garbage, a session moved between calls and one adopted after someone else's
// handshake. The certificate is a self-signed one made here.
#include "tls/session.hpp"

#include "tls/test_tls.hpp"

#include <gtest/gtest.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <string>
#include <vector>

namespace kaiwa::tls {
namespace {

using tlstest::Bytes;
using tlstest::bytesOf;
using tlstest::Client;
using tlstest::serverContext;
using tlstest::textOf;

// Server output to the client.
void toClient(Session& s, Client& c) {
  c.give(s.output());
  s.consumed(s.output().size());
}

// Runs the handshake to its end; true when both sides are done.
bool connect(Session& s, Client& c) {
  for (int i = 0; i < 10; ++i) {
    c.handshake();
    s.feed(c.take());
    Status st = s.handshake();
    toClient(s, c);
    if (st == Status::kError) return false;
    if (st == Status::kOk && SSL_is_init_finished(c.ssl)) {
      c.handshake();
      s.feed(c.take());  // TLS 1.3: nothing more; the client's session tickets go the other way
      return true;
    }
  }
  return false;
}

std::string readAll(Session& s) {
  std::string out;
  uint8_t buf[1000];
  for (;;) {
    auto r = s.read(buf);
    if (r.status != Status::kOk) break;
    out.append(reinterpret_cast<char*>(buf), r.bytes);
  }
  return out;
}

class TlsSession : public ::testing::Test {
 protected:
  void SetUp() override { ctx_ = serverContext(); }
  void TearDown() override { SSL_CTX_free(ctx_); }
  SSL_CTX* ctx_ = nullptr;
};

TEST_F(TlsSession, HandshakeThenDataBothWays) {
  for (int version : {TLS1_2_VERSION, TLS1_3_VERSION}) {
    auto s = Session::accept(ctx_);
    ASSERT_TRUE(s);
    Client c(version);
    EXPECT_FALSE(s->handshakeDone());
    EXPECT_EQ(s->write(bytesOf("too early")), Status::kError);  // not before the handshake
    ASSERT_TRUE(connect(*s, c)) << version;
    EXPECT_TRUE(s->handshakeDone());
    EXPECT_EQ(SSL_version(s->native()), version);

    ASSERT_EQ(SSL_write(c.ssl, "hello", 5), 5);
    s->feed(c.take());
    EXPECT_EQ(readAll(*s), "hello");
    uint8_t buf[16];
    EXPECT_EQ(s->read(buf).status, Status::kWantRead);

    ASSERT_EQ(s->write(bytesOf("world")), Status::kOk);
    toClient(*s, c);
    EXPECT_EQ(c.readAll(), "world");
  }
}

TEST_F(TlsSession, EachWriteIsItsOwnRecord) {
  auto s = Session::accept(ctx_);
  Client c;
  ASSERT_TRUE(connect(*s, c));
  for (int i = 0; i < 3; ++i) ASSERT_EQ(s->write(bytesOf("message " + std::to_string(i))), Status::kOk);
  toClient(*s, c);
  EXPECT_EQ(c.recordsRead(), 3);  // three SSL_reads: a TURN client taking one read as one message gets all three

  Bytes big(40000, 'x');  // beyond 16 KiB: several records, all of it written
  ASSERT_EQ(s->write(big), Status::kOk);
  toClient(*s, c);
  EXPECT_EQ(c.readAll().size(), big.size());
}

TEST_F(TlsSession, ClientBytesSplitAtEveryByte) {
  // The client's whole handshake flight, then two application records, fed one byte at a time.
  auto s = Session::accept(ctx_);
  Client c;
  c.handshake();
  Bytes hello = c.take();
  for (size_t i = 0; i < hello.size(); ++i) {
    s->feed({&hello[i], 1});
    Status st = s->handshake();
    ASSERT_EQ(st, Status::kWantRead) << i;
  }
  toClient(*s, c);
  ASSERT_TRUE(connect(*s, c));

  ASSERT_EQ(SSL_write(c.ssl, "first record", 12), 12);
  ASSERT_EQ(SSL_write(c.ssl, "second", 6), 6);
  Bytes records = c.take();
  // Split the two records at every point into two feeds, each followed by reads.
  for (size_t cut = 0; cut <= records.size(); ++cut) {
    auto t = Session::accept(ctx_);
    Client d;
    ASSERT_TRUE(connect(*t, d));
    ASSERT_EQ(SSL_write(d.ssl, "first record", 12), 12);
    ASSERT_EQ(SSL_write(d.ssl, "second", 6), 6);
    Bytes r = d.take();
    ASSERT_EQ(r.size(), records.size());
    t->feed({r.data(), cut});
    std::string got = readAll(*t);
    t->feed({r.data() + cut, r.size() - cut});
    got += readAll(*t);
    EXPECT_EQ(got, "first recordsecond") << cut;
  }
  // And one byte at a time.
  std::string got;
  for (uint8_t b : records) {
    s->feed({&b, 1});
    got += readAll(*s);
  }
  EXPECT_EQ(got, "first recordsecond");
}

TEST_F(TlsSession, CloseNotifyBothWays) {
  auto s = Session::accept(ctx_);
  Client c;
  ASSERT_TRUE(connect(*s, c));
  ASSERT_EQ(SSL_write(c.ssl, "bye", 3), 3);
  SSL_shutdown(c.ssl);
  s->feed(c.take());
  uint8_t buf[16];
  auto r = s->read(buf);
  ASSERT_EQ(r.status, Status::kOk);
  EXPECT_EQ(textOf({buf, r.bytes}), "bye");
  EXPECT_EQ(s->read(buf).status, Status::kClosed);

  auto t = Session::accept(ctx_);
  Client d;
  ASSERT_TRUE(connect(*t, d));
  ASSERT_EQ(t->write(bytesOf("last")), Status::kOk);
  t->shutdown();
  EXPECT_EQ(t->write(bytesOf("after")), Status::kError);
  toClient(*t, d);
  EXPECT_EQ(d.readAll(), "last");
  EXPECT_EQ(SSL_get_shutdown(d.ssl) & SSL_RECEIVED_SHUTDOWN, SSL_RECEIVED_SHUTDOWN);
}

TEST_F(TlsSession, GarbageIsAnErrorNotACrash) {
  // Not TLS at all.
  auto s = Session::accept(ctx_);
  Bytes junk = bytesOf("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  s->feed(junk);
  EXPECT_EQ(s->handshake(), Status::kError);
  uint8_t buf[64];
  EXPECT_EQ(s->read(buf).status, Status::kError);
  EXPECT_EQ(s->write(bytesOf("x")), Status::kError);

  // A record tampered with after the handshake: it fails to decrypt.
  auto t = Session::accept(ctx_);
  Client c;
  ASSERT_TRUE(connect(*t, c));
  ASSERT_EQ(SSL_write(c.ssl, "payload", 7), 7);
  Bytes rec = c.take();
  rec.back() ^= 1;
  t->feed(rec);
  EXPECT_EQ(t->read(buf).status, Status::kError);
  EXPECT_FALSE(t->output().empty());  // the fatal alert, to send before closing

  // Random bytes of every length in place of the ClientHello.
  uint32_t x = 12345;
  for (size_t len = 1; len < 300; len += 7) {
    auto u = Session::accept(ctx_);
    Bytes r(len);
    for (auto& b : r) b = uint8_t((x = x * 1103515245 + 12345) >> 16);
    r[0] = 22;  // a handshake record, so OpenSSL looks further
    u->feed(r);
    Status st = u->handshake();
    EXPECT_TRUE(st == Status::kError || st == Status::kWantRead);
  }
}

TEST_F(TlsSession, MovedBetweenCallsWithWhatItHolds) {
  auto s = Session::accept(ctx_);
  Client c;
  ASSERT_TRUE(connect(*s, c));
  ASSERT_EQ(SSL_write(c.ssl, "carried", 7), 7);
  s->feed(c.take());  // fed, not read yet: goes with the session (a connection handed to another worker)
  EXPECT_TRUE(s->hasBuffered());
  Session moved = std::move(*s);
  s.reset();
  EXPECT_EQ(readAll(moved), "carried");
  EXPECT_FALSE(moved.hasBuffered());
  ASSERT_EQ(moved.write(bytesOf("back")), Status::kOk);
  toClient(moved, c);
  EXPECT_EQ(c.readAll(), "back");
}

TEST_F(TlsSession, KeepsBuffersUntilReleased) {
  auto s = Session::accept(ctx_, Buffers::kKeepUntilReleased);
  Client c;
  ASSERT_TRUE(connect(*s, c));
  for (int round = 0; round < 3; ++round) {
    ASSERT_EQ(SSL_write(c.ssl, "ping", 4), 4);
    Bytes rec = c.take();
    s->feed({rec.data(), 3});  // part of a record: held, so the buffers stay
    uint8_t buf[16];
    EXPECT_EQ(s->read(buf).status, Status::kWantRead);
    EXPECT_FALSE(s->releaseBuffers());
    s->feed({rec.data() + 3, rec.size() - 3});
    EXPECT_EQ(readAll(*s), "ping");
    ASSERT_EQ(s->write(bytesOf("pong")), Status::kOk);
    EXPECT_FALSE(s->releaseBuffers());  // output not sent yet
    toClient(*s, c);
    EXPECT_EQ(c.readAll(), "pong");
    EXPECT_TRUE(s->releaseBuffers());  // idle: freed, and the session goes on after it
  }
}

TEST_F(TlsSession, AdoptsAnSslWhoseHandshakeSomeoneElseDid) {
  // The server SSL does its handshake over memory BIOs of its own (as Asio's stream does for WSS), then is adopted.
  SSL* ssl = SSL_new(ctx_);
  BIO* sin = BIO_new(BIO_s_mem());
  BIO* sout = BIO_new(BIO_s_mem());
  SSL_set_bio(ssl, sin, sout);
  SSL_set_accept_state(ssl);
  Client c;
  for (int i = 0; i < 10 && !(SSL_is_init_finished(ssl) && SSL_is_init_finished(c.ssl)); ++i) {
    c.handshake();
    Bytes b = c.take();
    if (!b.empty()) BIO_write(sin, b.data(), int(b.size()));
    SSL_do_handshake(ssl);
    ERR_clear_error();
    Bytes o(size_t(BIO_ctrl_pending(sout)));
    if (!o.empty()) BIO_read(sout, o.data(), int(o.size()));
    c.give(o);
  }
  ASSERT_TRUE(SSL_is_init_finished(ssl));

  // A record waiting in its BIO would be lost: refused, and the caller keeps its SSL.
  ASSERT_EQ(SSL_write(c.ssl, "in flight", 9), 9);
  Bytes flight = c.take();
  BIO_write(sin, flight.data(), int(flight.size()));
  EXPECT_FALSE(Session::adopt(ssl));
  char buf[32];
  ASSERT_EQ(SSL_read(ssl, buf, sizeof buf), 9);  // the caller reads it its own way

  auto s = Session::adopt(ssl);  // takes the reference
  ASSERT_TRUE(s);
  EXPECT_TRUE(s->handshakeDone());
  ASSERT_EQ(SSL_write(c.ssl, "after adopt", 11), 11);
  s->feed(c.take());
  EXPECT_EQ(readAll(*s), "after adopt");
  ASSERT_EQ(s->write(bytesOf("reply")), Status::kOk);
  toClient(*s, c);
  EXPECT_EQ(c.readAll(), "reply");
}

TEST_F(TlsSession, AdoptionReadsOutWholeRecordsAndTakesAPartialOneAlong) {
  // As WSS at the upgrade: the client's first messages came right behind its request, one whole record and half of
  // the next, into the memory BIOs of whoever did the handshake.
  SSL* ssl = SSL_new(ctx_);
  BIO* sin = BIO_new(BIO_s_mem());
  BIO* sout = BIO_new(BIO_s_mem());
  SSL_set_bio(ssl, sin, sout);
  SSL_set_accept_state(ssl);
  Client c;
  for (int i = 0; i < 10 && !(SSL_is_init_finished(ssl) && SSL_is_init_finished(c.ssl)); ++i) {
    c.handshake();
    Bytes b = c.take();
    if (!b.empty()) BIO_write(sin, b.data(), int(b.size()));
    SSL_do_handshake(ssl);
    ERR_clear_error();
    Bytes o(size_t(BIO_ctrl_pending(sout)));
    if (!o.empty()) BIO_read(sout, o.data(), int(o.size()));
    c.give(o);
  }
  ASSERT_TRUE(SSL_is_init_finished(ssl));
  c.handshake();
  Bytes tickets = c.take();  // (TLS 1.3: nothing; kept in order anyway)
  if (!tickets.empty()) BIO_write(sin, tickets.data(), int(tickets.size()));

  ASSERT_EQ(SSL_write(c.ssl, "first", 5), 5);
  Bytes first = c.take();
  ASSERT_EQ(SSL_write(c.ssl, "second", 6), 6);
  Bytes second = c.take();
  BIO_write(sin, first.data(), int(first.size()));
  size_t half = second.size() / 2;
  BIO_write(sin, second.data(), int(half));

  std::string plaintext;
  auto s = Session::adopt(ssl, Buffers::kReleaseWhenEmpty, &plaintext);
  ASSERT_TRUE(s);
  EXPECT_EQ(plaintext, "first");
  EXPECT_TRUE(s->hasBuffered());  // the half record, inside the SSL object
  s->feed(std::span<const uint8_t>(second).subspan(half));
  EXPECT_EQ(readAll(*s), "second");
  EXPECT_FALSE(s->hasBuffered());
}

TEST_F(TlsSession, AdoptionRefusesWhenTheReadOutMeetsAnEnd) {
  SSL* ssl = SSL_new(ctx_);
  BIO* sin = BIO_new(BIO_s_mem());
  BIO* sout = BIO_new(BIO_s_mem());
  SSL_set_bio(ssl, sin, sout);
  SSL_set_accept_state(ssl);
  Client c;
  for (int i = 0; i < 10 && !(SSL_is_init_finished(ssl) && SSL_is_init_finished(c.ssl)); ++i) {
    c.handshake();
    Bytes b = c.take();
    if (!b.empty()) BIO_write(sin, b.data(), int(b.size()));
    SSL_do_handshake(ssl);
    ERR_clear_error();
    Bytes o(size_t(BIO_ctrl_pending(sout)));
    if (!o.empty()) BIO_read(sout, o.data(), int(o.size()));
    c.give(o);
  }
  ASSERT_TRUE(SSL_is_init_finished(ssl));
  SSL_shutdown(c.ssl);
  Bytes bye = c.take();
  BIO_write(sin, bye.data(), int(bye.size()));
  std::string plaintext;
  EXPECT_FALSE(Session::adopt(ssl, Buffers::kReleaseWhenEmpty, &plaintext));
  SSL_free(ssl);  // refused: still the caller's
}

}  // namespace
}  // namespace kaiwa::tls

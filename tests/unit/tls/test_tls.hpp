#pragma once
// For tests of TLS over buffers: a server context with a self-signed certificate made on the spot, and an OpenSSL
// client over two memory BIOs, as a TURN or WebSocket client on the other end of a socket.
#include <gtest/gtest.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace kaiwa::tls::tlstest {

using Bytes = std::vector<uint8_t>;

inline Bytes bytesOf(std::string_view s) { return Bytes(s.begin(), s.end()); }
inline std::string textOf(std::span<const uint8_t> b) { return std::string(b.begin(), b.end()); }

// A server context with a fresh self-signed P-256 certificate.
inline SSL_CTX* serverContext() {
  EVP_PKEY* key = EVP_EC_gen("P-256");
  X509* cert = X509_new();
  ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
  X509_gmtime_adj(X509_getm_notBefore(cert), 0);
  X509_gmtime_adj(X509_getm_notAfter(cert), 3600);
  X509_set_pubkey(cert, key);
  X509_NAME* name = X509_get_subject_name(cert);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("kaiwa test"), -1, -1, 0);
  X509_set_issuer_name(cert, name);
  X509_sign(cert, key, EVP_sha256());
  SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  EXPECT_EQ(SSL_CTX_use_certificate(ctx, cert), 1);
  EXPECT_EQ(SSL_CTX_use_PrivateKey(ctx, key), 1);
  X509_free(cert);
  EVP_PKEY_free(key);
  return ctx;
}

// An OpenSSL client over two memory BIOs, as a TURN or WebSocket client on the other end of a socket.
struct Client {
  explicit Client(int maxVersion = TLS1_3_VERSION) : ctx(SSL_CTX_new(TLS_client_method())) {
    SSL_CTX_set_max_proto_version(ctx, maxVersion);
    ssl = SSL_new(ctx);
    in = BIO_new(BIO_s_mem());
    out = BIO_new(BIO_s_mem());
    SSL_set_bio(ssl, in, out);
    SSL_set_connect_state(ssl);
  }
  ~Client() {
    SSL_free(ssl);
    SSL_CTX_free(ctx);
  }
  // What the client wrote (to send to the server).
  Bytes take() {
    Bytes b(size_t(BIO_ctrl_pending(out)));
    if (!b.empty()) BIO_read(out, b.data(), int(b.size()));
    return b;
  }
  void give(std::span<const uint8_t> b) {
    if (!b.empty()) BIO_write(in, b.data(), int(b.size()));
  }
  int handshake() {
    int r = SSL_do_handshake(ssl);
    ERR_clear_error();
    return r;
  }
  std::string readAll() {
    std::string s;
    char buf[4096];
    int n;
    while ((n = SSL_read(ssl, buf, sizeof buf)) > 0) s.append(buf, size_t(n));
    ERR_clear_error();
    return s;
  }
  // SSL_read calls it takes to read everything: one per record.
  int recordsRead() {
    int reads = 0;
    char buf[65536];
    while (SSL_read(ssl, buf, sizeof buf) > 0) ++reads;
    ERR_clear_error();
    return reads;
  }
  SSL_CTX* ctx;
  SSL* ssl;
  BIO* in;
  BIO* out;
};

}  // namespace kaiwa::tls::tlstest

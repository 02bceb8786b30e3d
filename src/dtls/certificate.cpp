#include "dtls/certificate.hpp"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include <array>
#include <utility>

namespace kaiwa::dtls {

namespace {

const EVP_MD* digestFor(std::string_view algorithm) {
  if (algorithm == "sha-1") return EVP_sha1();
  if (algorithm == "sha-224") return EVP_sha224();
  if (algorithm == "sha-256") return EVP_sha256();
  if (algorithm == "sha-384") return EVP_sha384();
  if (algorithm == "sha-512") return EVP_sha512();
  return nullptr;
}

}  // namespace

std::optional<std::string> fingerprintOf(X509* cert, std::string_view algorithm) {
  const EVP_MD* md = digestFor(algorithm);
  if (!md || !cert) return std::nullopt;
  std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
  unsigned int len = 0;
  if (X509_digest(cert, md, digest.data(), &len) != 1) {
    ERR_clear_error();
    return std::nullopt;
  }
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(len * 3);
  for (unsigned int i = 0; i < len; ++i) {
    if (i) out.push_back(':');
    out.push_back(kHex[digest[i] >> 4]);
    out.push_back(kHex[digest[i] & 15]);
  }
  return out;
}

Certificate::Certificate(X509* x509, EVP_PKEY* key) : x509_(x509), key_(key) {
  fingerprint_ = "sha-256 " + fingerprintOf(x509, "sha-256").value_or("");
}

Certificate::Certificate(Certificate&& o) noexcept
    : x509_(std::exchange(o.x509_, nullptr)), key_(std::exchange(o.key_, nullptr)),
      fingerprint_(std::move(o.fingerprint_)) {}

Certificate& Certificate::operator=(Certificate&& o) noexcept {
  if (this != &o) {
    X509_free(x509_);
    EVP_PKEY_free(key_);
    x509_ = std::exchange(o.x509_, nullptr);
    key_ = std::exchange(o.key_, nullptr);
    fingerprint_ = std::move(o.fingerprint_);
  }
  return *this;
}

Certificate::~Certificate() {
  X509_free(x509_);
  EVP_PKEY_free(key_);
}

std::optional<Certificate> Certificate::generate() {
  EVP_PKEY* key = EVP_EC_gen("P-256");
  X509* x509 = key ? X509_new() : nullptr;
  bool ok = x509 != nullptr;
  if (ok) {
    std::array<unsigned char, 8> serial{};
    ok = RAND_bytes(serial.data(), int(serial.size())) == 1;
    serial[0] &= 0x7F;  // a positive INTEGER
    BIGNUM* bn = ok ? BN_bin2bn(serial.data(), int(serial.size()), nullptr) : nullptr;
    ok = bn && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x509)) != nullptr;
    BN_free(bn);
  }
  if (ok) {
    X509_NAME* name = X509_get_subject_name(x509);
    ok = X509_set_version(x509, 2) == 1 && X509_gmtime_adj(X509_getm_notBefore(x509), -86400) &&
         X509_gmtime_adj(X509_getm_notAfter(x509), 30L * 86400) &&
         X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("kaiwa"), -1, -1,
                                    0) == 1 &&
         X509_set_issuer_name(x509, name) == 1 && X509_set_pubkey(x509, key) == 1 &&
         X509_sign(x509, key, EVP_sha256()) > 0;
  }
  if (!ok) {
    X509_free(x509);
    EVP_PKEY_free(key);
    ERR_clear_error();
    return std::nullopt;
  }
  return Certificate(x509, key);
}

}  // namespace kaiwa::dtls

#pragma once
// TLS material: loading PEM files, and a self-signed certificate made at start-up (--tls-self-signed) so that a
// phone on the LAN can open the app in a secure context.
#include <string>
#include <vector>

#include "http/server.hpp"

namespace kaiwa::http {

// Reads both files; throws std::runtime_error naming the file that cannot be read.
TlsConfig loadTlsFiles(const std::string& certificatePath, const std::string& keyPath);

// The first certificate of a PEM chain in a few words, for the log: "subject CN=example.org, expires
// 2027-03-01 12:00:00 GMT, SHA-256 ab:cd:…" (the first 8 bytes of the fingerprint). Never throws.
std::string describeCertificate(const std::string& chainPem);

// An ECDSA P-256 key and a certificate valid for 30 days naming `hosts` (DNS names or IP addresses) in its
// subjectAltName. Throws std::runtime_error if OpenSSL fails.
TlsConfig makeSelfSigned(const std::vector<std::string>& hosts);

}  // namespace kaiwa::http

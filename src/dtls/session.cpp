#include "dtls/session.hpp"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cstring>
#include <utility>

#include "dtls/certificate.hpp"

namespace kaiwa::dtls {

using srtp::keyLength;
using srtp::name;
using srtp::saltLength;

// ------------------------------------------------------------------------------------------------------------ Context

Context::Context(Context&& o) noexcept : ctx_(std::exchange(o.ctx_, nullptr)), role_(o.role_) {}
Context& Context::operator=(Context&& o) noexcept {
  if (this != &o) {
    SSL_CTX_free(ctx_);
    ctx_ = std::exchange(o.ctx_, nullptr);
    role_ = o.role_;
  }
  return *this;
}
Context::~Context() { SSL_CTX_free(ctx_); }

std::optional<Context> Context::make(const Certificate& certificate, Role role, std::span<const SrtpProfile> profiles) {
  SSL_CTX* ctx = SSL_CTX_new(role == Role::kServer ? DTLS_server_method() : DTLS_client_method());
  if (!ctx) return std::nullopt;
  Context context(ctx, role);  // frees ctx on every early return
  std::string list;
  for (SrtpProfile p : profiles) {
    if (name(p).empty()) continue;
    if (!list.empty()) list += ':';
    list += name(p);
  }
  // WebRTC certificates are self-signed: any is accepted during the handshake, and the session then compares the
  // peer's with the fingerprint its SDP announced.
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, [](int, X509_STORE_CTX*) { return 1; });
  bool ok =
      SSL_CTX_set_min_proto_version(ctx, DTLS1_2_VERSION) == 1 &&
      SSL_CTX_set_max_proto_version(ctx, DTLS1_2_VERSION) == 1 &&
      SSL_CTX_use_certificate(ctx, certificate.x509()) == 1 && SSL_CTX_use_PrivateKey(ctx, certificate.key()) == 1 &&
      SSL_CTX_check_private_key(ctx) == 1 &&
      // Our certificate is ECDSA: the ECDHE-ECDSA suites, AEAD first, CBC ones for old stacks.
      SSL_CTX_set_cipher_list(ctx,
                              "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
                              "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA") == 1 &&
      !list.empty() && SSL_CTX_set_tlsext_use_srtp(ctx, list.c_str()) == 0;  // (0 is success here)
  if (!ok) {
    ERR_clear_error();
    return std::nullopt;
  }
  SSL_CTX_set_read_ahead(ctx, 1);
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  return context;
}

// ------------------------------------------------------------------------------------------------------------ Session

struct Session::Impl {
  SSL* ssl = nullptr;
  Role role = Role::kServer;
  std::string fingerprintAlgorithm;  // "sha-256"
  std::string fingerprint;           // "AB:CD:…"
  std::span<const uint8_t> in;       // the datagram being fed, for the BIO's next read
  std::vector<std::vector<uint8_t>> out;
  Status status = Status::kHandshaking;
  bool started = false;
  std::string error;
  SrtpKeys keys;

  ~Impl() {
    if (ssl) SSL_free(ssl);
  }

  void fail(std::string why) {
    if (status == Status::kFailed) return;
    status = Status::kFailed;
    error = std::move(why);
    ERR_clear_error();
  }

  // Reads OpenSSL's error queue into a short reason.
  static std::string openSslReason(std::string_view what) {
    std::string reason(what);
    if (unsigned long e = ERR_peek_last_error()) {
      std::array<char, 160> text{};
      ERR_error_string_n(e, text.data(), text.size());
      reason += ": ";
      reason += text.data();
    }
    return reason;
  }

  void handshake();
  void finishHandshake();
  void readApplication(const std::function<void(std::span<const uint8_t>)>& onRecord);
};

namespace {

Session::Impl* implOf(BIO* bio) { return static_cast<Session::Impl*>(BIO_get_data(bio)); }

// The BIO between OpenSSL and a session: a read returns the datagram being fed (once), a write is one datagram out.
int bioRead(BIO* bio, char* data, size_t size, size_t* got) {
  BIO_clear_retry_flags(bio);
  Session::Impl* s = implOf(bio);
  if (!s || s->in.empty()) {
    BIO_set_retry_read(bio);
    return 0;
  }
  // One read, one datagram: a datagram larger than OpenSSL's buffer is cut, as a UDP socket would cut it.
  size_t n = std::min(size, s->in.size());
  std::memcpy(data, s->in.data(), n);
  s->in = {};
  *got = n;
  return 1;
}

int bioWrite(BIO* bio, const char* data, size_t size, size_t* put) {
  BIO_clear_retry_flags(bio);
  Session::Impl* s = implOf(bio);
  if (!s) return 0;
  auto* bytes = reinterpret_cast<const uint8_t*>(data);
  s->out.emplace_back(bytes, bytes + size);
  *put = size;
  return 1;
}

long bioCtrl(BIO* bio, int cmd, long, void*) {
  switch (cmd) {
    case BIO_CTRL_FLUSH:
      return 1;
    case BIO_CTRL_PENDING: {
      Session::Impl* s = implOf(bio);
      return s ? long(s->in.size()) : 0;
    }
    case BIO_CTRL_DGRAM_QUERY_MTU:
    case BIO_CTRL_DGRAM_GET_FALLBACK_MTU:
      return long(Session::kMtu);
    default:
      return 0;  // no MTU overhead to subtract (the MTU above is the datagram's payload), nothing else
  }
}

int bioCreate(BIO* bio) {
  BIO_set_init(bio, 1);
  return 1;
}

BIO_METHOD* bioMethod() {
  static BIO_METHOD* m = [] {
    BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "kaiwa dtls::Session");
    if (m && (!BIO_meth_set_read_ex(m, bioRead) || !BIO_meth_set_write_ex(m, bioWrite) ||
              !BIO_meth_set_ctrl(m, bioCtrl) || !BIO_meth_set_create(m, bioCreate))) {
      BIO_meth_free(m);
      m = nullptr;
    }
    return m;
  }();
  return m;
}

// Retransmission backoff: 100 ms, doubling, at most 4 s.
unsigned int timerCallback(SSL*, unsigned int previousUs) {
  if (previousUs == 0) return 100'000;
  return std::min(previousUs * 2, 4'000'000u);
}

// "sha-256 ab:cd:…" → ("sha-256", "AB:CD:…"); nullopt if it does not look like a fingerprint.
std::optional<std::pair<std::string, std::string>> parseFingerprint(std::string_view text) {
  while (!text.empty() && text.front() == ' ') text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\r')) text.remove_suffix(1);
  size_t space = text.find(' ');
  if (space == std::string_view::npos || space == 0) return std::nullopt;
  std::string algorithm(text.substr(0, space));
  std::string value(text.substr(space + 1));
  for (char& c : algorithm) c = char(std::tolower(static_cast<unsigned char>(c)));
  for (char& c : value) c = char(std::toupper(static_cast<unsigned char>(c)));
  if (value.size() < 2 || value.size() % 3 != 2) return std::nullopt;
  for (size_t i = 0; i < value.size(); ++i) {
    bool colon = i % 3 == 2;
    if (colon ? value[i] != ':' : !std::isxdigit(static_cast<unsigned char>(value[i]))) return std::nullopt;
  }
  return std::pair{std::move(algorithm), std::move(value)};
}

}  // namespace

void Session::Impl::handshake() {
  ERR_clear_error();
  int r = SSL_do_handshake(ssl);
  if (r == 1) {
    finishHandshake();
    return;
  }
  int e = SSL_get_error(ssl, r);
  if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
    ERR_clear_error();
    return;
  }
  fail(openSslReason("handshake failed"));
}

void Session::Impl::finishHandshake() {
  X509* peer = SSL_get1_peer_certificate(ssl);
  auto actual = fingerprintOf(peer, fingerprintAlgorithm);
  X509_free(peer);
  if (!actual || *actual != fingerprint) {
    fail("fingerprint mismatch");
    return;
  }
  const SRTP_PROTECTION_PROFILE* profile = SSL_get_selected_srtp_profile(ssl);
  auto p = profile ? static_cast<SrtpProfile>(profile->id) : SrtpProfile::kNone;
  if (name(p).empty()) {
    fail("no SRTP profile negotiated");
    return;
  }
  size_t k = keyLength(p), s = saltLength(p);
  std::vector<uint8_t> material(2 * (k + s));
  static constexpr char kLabel[] = "EXTRACTOR-dtls_srtp";
  if (SSL_export_keying_material(ssl, material.data(), material.size(), kLabel, sizeof kLabel - 1, nullptr, 0, 0) !=
      1) {
    fail(openSslReason("keying material export failed"));
    return;
  }
  // RFC 5764 section 4.2: client key, server key, client salt, server salt.
  auto part = [&](size_t offset, size_t length) {
    return std::vector<uint8_t>(material.begin() + long(offset), material.begin() + long(offset + length));
  };
  std::vector<uint8_t> client = part(0, k), server = part(k, k);
  auto clientSalt = part(2 * k, s), serverSalt = part(2 * k + s, s);
  client.insert(client.end(), clientSalt.begin(), clientSalt.end());
  server.insert(server.end(), serverSalt.begin(), serverSalt.end());
  keys.profile = p;
  if (role == Role::kServer) {
    keys.local = std::move(server);
    keys.remote = std::move(client);
  } else {
    keys.local = std::move(client);
    keys.remote = std::move(server);
  }
  status = Status::kConnected;
}

void Session::Impl::readApplication(const std::function<void(std::span<const uint8_t>)>& onRecord) {
  std::array<uint8_t, 2048> buffer{};
  for (;;) {
    ERR_clear_error();
    int n = SSL_read(ssl, buffer.data(), int(buffer.size()));
    if (n > 0) {
      if (onRecord) onRecord(std::span<const uint8_t>(buffer.data(), size_t(n)));
      continue;
    }
    int e = SSL_get_error(ssl, n);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
      ERR_clear_error();
      return;
    }
    if (e == SSL_ERROR_ZERO_RETURN) {
      status = Status::kClosed;
      ERR_clear_error();
      return;
    }
    fail(openSslReason("record error"));
    return;
  }
}

Session::Session(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Session::Session(Session&&) noexcept = default;
Session& Session::operator=(Session&&) noexcept = default;
Session::~Session() = default;

std::optional<Session> Session::make(const Context& context, std::string_view peerFingerprint) {
  auto fp = parseFingerprint(peerFingerprint);
  BIO_METHOD* method = bioMethod();
  if (!fp || !method || !context.native()) return std::nullopt;
  auto impl = std::make_unique<Impl>();
  impl->role = context.role();
  impl->fingerprintAlgorithm = std::move(fp->first);
  impl->fingerprint = std::move(fp->second);
  impl->ssl = SSL_new(context.native());
  BIO* bio = impl->ssl ? BIO_new(method) : nullptr;
  if (!bio) {
    ERR_clear_error();
    return std::nullopt;
  }
  BIO_set_data(bio, impl.get());  // the Impl stays where it is when the Session moves
  SSL_set_bio(impl->ssl, bio, bio);
  // The datagram size is ours to say: no MTU discovery through the BIO.
  SSL_set_options(impl->ssl, SSL_OP_NO_QUERY_MTU);
  // No record this session writes is larger than a datagram, so the write buffer need not hold a 16 KB record:
  // OpenSSL sizes it from the largest fragment it may send (~1.3 KB instead of ~16.7 KB per transport).
  SSL_set_max_send_fragment(impl->ssl, long(kMtu));
  DTLS_set_link_mtu(impl->ssl, long(kMtu));
  DTLS_set_timer_cb(impl->ssl, timerCallback);
  if (impl->role == Role::kServer)
    SSL_set_accept_state(impl->ssl);
  else
    SSL_set_connect_state(impl->ssl);
  return Session(std::move(impl));
}

Status Session::start() {
  Impl& s = *impl_;
  if (s.started || s.status != Status::kHandshaking) return s.status;
  s.started = true;
  if (s.role == Role::kClient) s.handshake();
  return s.status;
}

Status Session::receive(std::span<const uint8_t> datagram, std::vector<uint8_t>* plain) {
  if (plain == nullptr) return receive(datagram, std::function<void(std::span<const uint8_t>)>{});
  return receive(datagram, [plain](std::span<const uint8_t> r) { plain->insert(plain->end(), r.begin(), r.end()); });
}

Status Session::receive(std::span<const uint8_t> datagram,
                        const std::function<void(std::span<const uint8_t>)>& onRecord) {
  Impl& s = *impl_;
  if (s.status == Status::kFailed || s.status == Status::kClosed || !isDtls(datagram) || !s.ssl) return s.status;
  s.started = true;
  s.in = datagram;
  if (s.status == Status::kHandshaking) s.handshake();
  // Records behind the handshake's last one in the same datagram, and everything once connected.
  if (s.status == Status::kConnected) s.readApplication(onRecord);
  s.in = {};
  return s.status;
}

bool Session::send(std::span<const uint8_t> plain) {
  Impl& s = *impl_;
  if (s.status != Status::kConnected || !s.ssl || plain.empty() || plain.size() > maxPayload()) return false;
  ERR_clear_error();
  size_t before = s.out.size();
  int n = SSL_write(s.ssl, plain.data(), int(plain.size()));
  if (n != int(plain.size())) {
    // (A write OpenSSL refuses: nothing half-written is sent, the session goes on.)
    s.out.resize(before);
    ERR_clear_error();
    return false;
  }
  return true;
}

void Session::close() {
  Impl& s = *impl_;
  if (s.status != Status::kConnected) return;
  if (!s.ssl) {  // released: nothing to say it with
    s.status = Status::kClosed;
    return;
  }
  ERR_clear_error();
  SSL_shutdown(s.ssl);
  ERR_clear_error();
  s.status = Status::kClosed;
}

std::optional<std::chrono::microseconds> Session::nextTimeout() const {
  if ((impl_->status != Status::kHandshaking && impl_->status != Status::kConnected) || !impl_->ssl)
    return std::nullopt;
  timeval tv{};
  if (DTLSv1_get_timeout(impl_->ssl, &tv) != 1) return std::nullopt;
  return std::chrono::seconds(tv.tv_sec) + std::chrono::microseconds(tv.tv_usec);
}

Status Session::onTimeout() {
  Impl& s = *impl_;
  if ((s.status != Status::kHandshaking && s.status != Status::kConnected) || !s.ssl) return s.status;
  ERR_clear_error();
  if (DTLSv1_handle_timeout(s.ssl) < 0) s.fail(Impl::openSslReason("handshake timed out"));
  ERR_clear_error();
  return s.status;
}

size_t Session::maxPayload() const {
  return impl_->status == Status::kConnected && impl_->ssl ? DTLS_get_data_mtu(impl_->ssl) : 0;
}

void Session::release() {
  Impl& s = *impl_;
  if (s.status != Status::kConnected || !s.ssl) return;
  SSL_free(s.ssl);
  s.ssl = nullptr;
  s.out.clear();
  s.out.shrink_to_fit();
}

bool Session::released() const { return impl_->status == Status::kConnected && !impl_->ssl; }

Status Session::status() const { return impl_->status; }
SrtpKeys Session::srtpKeys() const { return impl_->keys; }
std::vector<std::vector<uint8_t>>& Session::output() { return impl_->out; }
const std::string& Session::error() const { return impl_->error; }

}  // namespace kaiwa::dtls

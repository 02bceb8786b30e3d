#include "tls/session.hpp"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <algorithm>
#include <cstring>
#include <utility>

namespace kaiwa::tls {

namespace {
// Buffers above this are freed once empty: an idle session keeps no more than a small message's worth.
constexpr size_t kKeepCapacity = 4096;

void releaseIfLarge(std::vector<uint8_t>& v) {
  if (v.empty() && v.capacity() > kKeepCapacity) std::vector<uint8_t>().swap(v);
}
}  // namespace

// The BIO between OpenSSL and a session: its read takes the ciphertext the session was fed, its write appends to the
// session's output. Its data pointer is the session, set before every call into OpenSSL (Session::attach).
struct SessionBio {
  static int read(BIO* bio, char* data, size_t size, size_t* got) {
    BIO_clear_retry_flags(bio);
    auto* s = static_cast<Session*>(BIO_get_data(bio));
    size_t available = s ? s->in_.size() - s->inPos_ : 0;
    if (available == 0) {
      BIO_set_retry_read(bio);
      return 0;
    }
    size_t n = std::min(available, size);
    std::memcpy(data, s->in_.data() + s->inPos_, n);
    s->inPos_ += n;
    if (s->inPos_ == s->in_.size()) {
      s->in_.clear();
      s->inPos_ = 0;
      releaseIfLarge(s->in_);
    }
    *got = n;
    return 1;
  }

  static int write(BIO* bio, const char* data, size_t size, size_t* put) {
    BIO_clear_retry_flags(bio);
    auto* s = static_cast<Session*>(BIO_get_data(bio));
    if (!s) return 0;
    auto* bytes = reinterpret_cast<const uint8_t*>(data);
    s->out_.insert(s->out_.end(), bytes, bytes + size);
    *put = size;
    return 1;
  }

  static long ctrl(BIO* bio, int cmd, long, void*) {
    auto* s = static_cast<Session*>(BIO_get_data(bio));
    switch (cmd) {
      case BIO_CTRL_FLUSH:
        return 1;
      case BIO_CTRL_PENDING:
        return s ? long(s->in_.size() - s->inPos_) : 0;
      default:
        return 0;  // never at EOF (the caller sees the stream end), nothing pending to write, no other control
    }
  }

  static int create(BIO* bio) {
    BIO_set_init(bio, 1);
    return 1;
  }

  static BIO_METHOD* method() {
    static BIO_METHOD* m = [] {
      BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "kaiwa tls::Session");
      if (m && (!BIO_meth_set_read_ex(m, read) || !BIO_meth_set_write_ex(m, write) || !BIO_meth_set_ctrl(m, ctrl) ||
                !BIO_meth_set_create(m, create))) {
        BIO_meth_free(m);
        m = nullptr;
      }
      return m;
    }();
    return m;
  }
};

namespace {
// Gives `ssl` a session BIO and the modes every session runs with. False if OpenSSL could not make the BIO.
bool install(SSL* ssl, Buffers buffers) {
  BIO_METHOD* method = SessionBio::method();
  BIO* bio = method ? BIO_new(method) : nullptr;
  if (!bio) return false;
  SSL_set_bio(ssl, bio, bio);  // one reference for both directions; frees the BIOs it had
  SSL_clear_mode(ssl, SSL_MODE_ENABLE_PARTIAL_WRITE);
  if (buffers == Buffers::kReleaseWhenEmpty)
    SSL_set_mode(ssl, SSL_MODE_RELEASE_BUFFERS);
  else
    SSL_clear_mode(ssl, SSL_MODE_RELEASE_BUFFERS);
  SSL_set_options(ssl, SSL_OP_NO_RENEGOTIATION);
  return true;
}
}  // namespace

Session::Session(SSL* ssl) : ssl_(ssl) {}

std::optional<Session> Session::accept(SSL_CTX* ctx, Buffers buffers) {
  SSL* ssl = ctx ? SSL_new(ctx) : nullptr;
  if (!ssl || !install(ssl, buffers)) {
    if (ssl) SSL_free(ssl);
    ERR_clear_error();
    return std::nullopt;
  }
  SSL_set_accept_state(ssl);
  return Session(ssl);
}

std::optional<Session> Session::adopt(SSL* ssl, Buffers buffers, std::string* plaintext) {
  if (!ssl) return std::nullopt;
  BIO* rbio = SSL_get_rbio(ssl);
  BIO* wbio = SSL_get_wbio(ssl);
  if (plaintext) {
    // Read out through the BIOs it has: whole records are decrypted; a partial one stays inside the SSL object.
    char buffer[16 * 1024];
    while (SSL_has_pending(ssl) || (rbio && BIO_ctrl_pending(rbio) > 0)) {
      size_t got = 0;
      if (SSL_read_ex(ssl, buffer, sizeof buffer, &got) == 1) {
        plaintext->append(buffer, got);
        continue;
      }
      int err = SSL_get_error(ssl, 0);
      ERR_clear_error();
      if (err == SSL_ERROR_WANT_READ) break;
      return std::nullopt;  // close_notify, an alert, a bad record: nothing more to serve
    }
  }
  // Bytes in flight in the BIOs it has would be lost with them.
  if ((rbio && BIO_ctrl_pending(rbio) != 0) || (wbio && BIO_ctrl_wpending(wbio) != 0)) return std::nullopt;
  if (!install(ssl, buffers)) {
    ERR_clear_error();
    return std::nullopt;
  }
  return Session(ssl);
}

Session::Session(Session&& other) noexcept
    : ssl_(std::exchange(other.ssl_, nullptr)), in_(std::move(other.in_)), inPos_(std::exchange(other.inPos_, 0)),
      out_(std::move(other.out_)), failed_(other.failed_), shutDown_(other.shutDown_) {}

Session& Session::operator=(Session&& other) noexcept {
  if (this != &other) {
    if (ssl_) SSL_free(ssl_);
    ssl_ = std::exchange(other.ssl_, nullptr);
    in_ = std::move(other.in_);
    inPos_ = std::exchange(other.inPos_, 0);
    out_ = std::move(other.out_);
    failed_ = other.failed_;
    shutDown_ = other.shutDown_;
  }
  return *this;
}

Session::~Session() {
  if (ssl_) SSL_free(ssl_);
}

void Session::attach() const { BIO_set_data(SSL_get_rbio(ssl_), const_cast<Session*>(this)); }

void Session::feed(std::span<const uint8_t> ciphertext) {
  if (ciphertext.empty()) return;
  if (inPos_ > 0) {
    in_.erase(in_.begin(), in_.begin() + long(inPos_));
    inPos_ = 0;
  }
  in_.insert(in_.end(), ciphertext.begin(), ciphertext.end());
}

bool Session::handshakeDone() const { return ssl_ && SSL_is_init_finished(ssl_); }

Status Session::handshake() {
  if (!ssl_ || failed_) return Status::kError;
  if (SSL_is_init_finished(ssl_)) return Status::kOk;
  attach();
  int r = SSL_do_handshake(ssl_);
  if (r == 1) return Status::kOk;
  int err = SSL_get_error(ssl_, r);
  ERR_clear_error();
  if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) return Status::kWantRead;
  failed_ = true;
  return Status::kError;
}

ReadResult Session::read(std::span<uint8_t> plain) {
  if (!ssl_ || failed_) return {0, Status::kError};
  if (plain.empty()) return {0, Status::kWantRead};
  attach();
  size_t got = 0;
  if (SSL_read_ex(ssl_, plain.data(), plain.size(), &got) == 1) return {got, Status::kOk};
  int err = SSL_get_error(ssl_, 0);
  ERR_clear_error();
  switch (err) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
      return {0, Status::kWantRead};
    case SSL_ERROR_ZERO_RETURN:
      return {0, Status::kClosed};
    default:
      failed_ = true;
      return {0, Status::kError};
  }
}

bool Session::hasBuffered() const { return ssl_ && (SSL_has_pending(ssl_) || inPos_ < in_.size()); }

Status Session::write(std::span<const uint8_t> plain) {
  if (!ssl_ || failed_ || shutDown_ || !SSL_is_init_finished(ssl_)) return Status::kError;
  if (plain.empty()) return Status::kOk;
  attach();
  size_t written = 0;
  if (SSL_write_ex(ssl_, plain.data(), plain.size(), &written) == 1 && written == plain.size()) return Status::kOk;
  ERR_clear_error();
  failed_ = true;
  return Status::kError;
}

void Session::shutdown() {
  if (!ssl_ || shutDown_) return;
  shutDown_ = true;
  if (failed_ || !SSL_is_init_finished(ssl_)) return;
  attach();
  SSL_shutdown(ssl_);  // writes close_notify; the peer's answer is not awaited
  ERR_clear_error();
}

void Session::consumed(size_t bytes) {
  bytes = std::min(bytes, out_.size());
  out_.erase(out_.begin(), out_.begin() + long(bytes));
  releaseIfLarge(out_);
}

bool Session::releaseBuffers() {
  if (!ssl_ || hasBuffered() || !out_.empty()) return false;
  std::vector<uint8_t>().swap(in_);
  inPos_ = 0;
  std::vector<uint8_t>().swap(out_);
  return SSL_free_buffers(ssl_) == 1;
}

}  // namespace kaiwa::tls

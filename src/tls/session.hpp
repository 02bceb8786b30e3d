#pragma once
// TLS over buffers (sans-I/O): an OpenSSL SSL object whose BIO reads the ciphertext the caller fed in and appends
// what OpenSSL writes to an output buffer the caller sends. No socket inside: the caller receives and sends, the
// session only turns ciphertext into plaintext and back. Peer bytes never throw; every outcome is a value.
//
// An idle session holds no record buffers, only its TLS state: OpenSSL either runs with SSL_MODE_RELEASE_BUFFERS
// (Buffers::kReleaseWhenEmpty: freed after each record, at the price of a malloc and a free per record) or keeps them
// while the connection is busy until its owner, seeing it idle, calls releaseBuffers(). Each
// write() is its own record (or records, beyond 16 KiB): a TURN client such as coturn's turnutils_uclient takes one
// SSL_read as one message, and a WebSocket frame's header and payload belong in one record.
//
// Every call runs on the thread that owns the session. The BIO's data pointer is set to the session at each call
// into OpenSSL, so a session can be moved (to another worker, with the records it holds) between calls.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

struct ssl_st;
struct ssl_ctx_st;

namespace kaiwa::tls {

enum class Status : uint8_t {
  kOk,        // progress: the handshake is done, bytes were read or written
  kWantRead,  // more ciphertext is needed (feed it, then call again)
  kClosed,    // the peer sent close_notify: no more plaintext will come
  kError,     // a protocol error, a bad record, a refused handshake: close the connection
};

enum class Buffers : uint8_t {
  kReleaseWhenEmpty,   // SSL_MODE_RELEASE_BUFFERS: OpenSSL frees its record buffers whenever they are empty
  kKeepUntilReleased,  // kept between records; releaseBuffers() frees them (the owner calls it once idle)
};

struct ReadResult {
  size_t bytes = 0;  // plaintext written into the caller's buffer (Status::kOk only)
  Status status = Status::kWantRead;
};

class Session {
 public:
  // A server-side session for a new connection on `ctx` (which it references). nullopt if OpenSSL cannot make one.
  static std::optional<Session> accept(ssl_ctx_st* ctx, Buffers buffers = Buffers::kReleaseWhenEmpty);
  // Takes over an SSL object whose handshake someone else did (WSS: Asio did it and Beast read the upgrade request):
  // the session takes the one reference of `ssl` the caller hands it and gives it a BIO of its own. What its current
  // BIOs hold would be lost with them: with `plaintext`, the records its read BIO still holds (a client may send its
  // first messages right behind its request) are decrypted first and their plaintext appended there, for the caller
  // to serve before anything read later; without it, such records refuse the adoption. Output not sent refuses it
  // too. What the SSL object holds itself (a record partly received, plaintext not read yet) moves along: read()
  // returns it once the rest comes, and hasBuffered() says so meanwhile. On refusal nullopt, and the caller keeps its
  // reference (close the connection then: the peer's close_notify or a bad record may have been read).
  static std::optional<Session> adopt(ssl_st* ssl, Buffers buffers = Buffers::kReleaseWhenEmpty,
                                      std::string* plaintext = nullptr);

  Session(Session&& other) noexcept;
  Session& operator=(Session&& other) noexcept;
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;
  ~Session();

  // Ciphertext received from the peer, kept until OpenSSL reads it.
  void feed(std::span<const uint8_t> ciphertext);

  // Runs the server handshake on what was fed: kOk once it is done (at once if it already was), kWantRead while it
  // waits for the client, kError if it failed. Handshake records to send are in output().
  Status handshake();
  bool handshakeDone() const;

  // Decrypts into `plain`: kOk with bytes > 0; kWantRead when no complete record is left; kClosed after the peer's
  // close_notify; kError on a bad record. Runs the handshake first if it is not done yet.
  ReadResult read(std::span<uint8_t> plain);
  // Plaintext or ciphertext the session holds that read() can still return without more input.
  bool hasBuffered() const;

  // Encrypts `plain` as one record (several beyond 16 KiB) appended to output(). kError if the handshake is not done
  // or the session failed or was shut down.
  Status write(std::span<const uint8_t> plain);
  // Appends close_notify to output(); later writes fail.
  void shutdown();

  // Ciphertext to send, in order. The caller sends from its front and calls consumed() with what went out (or
  // takes the whole vector by swapping it out with an empty one).
  std::vector<uint8_t>& output() { return out_; }
  const std::vector<uint8_t>& output() const { return out_; }
  void consumed(size_t bytes);

  // Frees OpenSSL's record buffers and the session's own buffers if they are empty (Buffers::kKeepUntilReleased:
  // the owner calls it when the connection has been quiet a while). False if something is still buffered; the
  // buffers come back at the next read or write.
  bool releaseBuffers();

  ssl_st* native() const { return ssl_; }

 private:
  explicit Session(ssl_st* ssl);
  void attach() const;       // points the BIO at this session (it may have moved since the last call)
  friend struct SessionBio;  // the BIO's callbacks (session.cpp)

  ssl_st* ssl_ = nullptr;
  std::vector<uint8_t> in_;  // ciphertext fed and not read by OpenSSL yet, from inPos_
  size_t inPos_ = 0;
  std::vector<uint8_t> out_;
  bool failed_ = false;
  bool shutDown_ = false;
};

}  // namespace kaiwa::tls

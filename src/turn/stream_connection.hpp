#pragma once
// A TURN client connection over TCP or TLS, sans-I/O: bytes received from the socket and the current time go in;
// out come STUN/ChannelData frames (RFC 8656 section 10.1's framing, ChannelData padded to 4 bytes), the bytes to
// write to the socket, and the deadline the connection has to meet (TcpTimeouts). After its ConnectionBind (RFC 6062)
// it carries raw bytes for a pipe instead of frames. The worker only makes the socket calls, and asks the server.
//
// Frames are pulled (next()), not pushed through a callback: the worker hands each frame to the TurnServer, which may
// close or move the connection; the worker looks the connection up again before it asks for the next frame.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "common/clock.hpp"
#include "tls/session.hpp"

namespace kaiwa::turn {

// Deadlines of a TURN TCP/TLS client connection (not of RFC 6062 data connections, which live as long as their pipe);
// the worker checks them once a second, so a connection goes up to a second after its deadline. 0: none.
struct TcpTimeouts {
  Millis tlsHandshake{10'000};  // the TLS handshake is done within this of the accept
  Millis allocate{30'000};      // the connection has an allocation within this of the accept
  Millis frame{10'000};         // a message begun (part of a STUN/ChannelData frame received) is complete within this
  Millis idle{30'000};          // once its allocation is gone (expired, deleted), a message comes within this
};

// Why a connection missed its deadline; the index of kaiwa_turn_tcp_timeouts_total{reason}
// (metrics::kTurnTimeoutNames).
enum class TcpTimeout : uint8_t { kTlsHandshake, kNoAllocation, kPartialFrame, kIdle };

inline constexpr size_t kMaxTcpBuffered = 1 << 20;  // per connection and direction
inline constexpr size_t kTcpInitialBuffer = 2048;   // grows to the largest frame seen (64 KiB + header at most)
inline constexpr size_t kTcpMaxFrame = 65536 + 8;
// TCP allocations (RFC 6062): a bound pipe reads 16 KiB at a time, and stops reading one side while more than
// kPipeBuffered bytes wait to be written to the other (TCP's own window then pushes back on the sender).
inline constexpr size_t kPipeChunk = 16384;
inline constexpr size_t kPipeBuffered = 256 * 1024;
// A pipe side whose other side closed gets this long to write what was still queued before it is closed too.
inline constexpr Clock::duration kPipeLinger = std::chrono::seconds(10);

// One side of an RFC 6062 pipe (a client's data connection, or the peer's connection): whether it may be read now,
// and when it closes once the other side has closed.
class PipeSide {
 public:
  enum class Read : uint8_t {
    kNow,
    kWhenOtherDrains,  // more than kPipeBuffered wait to be written to the other side: read again once it wrote some
    kAtDeadline,       // over the bandwidth budget: read again at deadline()
    kNever,            // closing (the other side is gone): only what is queued for this side is written
  };
  Read mayRead(size_t queuedToOther, TimePoint now) const {
    if (closing_) return Read::kNever;
    if (queuedToOther > kPipeBuffered) return Read::kWhenOtherDrains;
    if (now < pausedUntil_) return Read::kAtDeadline;
    return Read::kNow;
  }
  // The bandwidth budget allows the next read at `until` (TurnServer::onTcpRelayed).
  void pauseUntil(TimePoint until) { pausedUntil_ = until; }
  // The other side closed: this side writes what is queued for it (kPipeLinger at most), then closes.
  void otherClosed(TimePoint now) {
    if (closing_) return;
    closing_ = true;
    lingerUntil_ = now + kPipeLinger;
  }
  bool closing() const { return closing_; }
  bool shouldClose(size_t queuedToThis, TimePoint now) const {
    return closing_ && (queuedToThis == 0 || now >= lingerUntil_);
  }
  // When something is due: the end of a bandwidth pause, or of the linger.
  std::optional<TimePoint> deadline(TimePoint now) const {
    if (closing_) return lingerUntil_;
    if (pausedUntil_ > now) return pausedUntil_;
    return std::nullopt;
  }

 private:
  TimePoint pausedUntil_{};
  TimePoint lingerUntil_{};
  bool closing_ = false;
};

class StreamConnection {
 public:
  // Accepted (or adopted from another worker) at `now`; over TLS when `tls` is given.
  explicit StreamConnection(TimePoint now, std::optional<tls::Session> tls = std::nullopt);

  bool isTls() const { return tls_.has_value(); }
  bool handshakeDone() const { return !tls_ || tls_->handshakeDone(); }

  // --- input ---
  // Bytes received from the socket (over TLS, ciphertext).
  void received(std::span<const uint8_t> bytes);
  // Plain TCP without a copy: receive into receiveSpace(), then say how much came (receivedInPlace). Empty when a
  // control connection's buffer is full, which cannot happen with frames of the allowed size (see next()).
  std::span<uint8_t> receiveSpace();
  void receivedInPlace(size_t bytes);

  struct Next {
    enum class Kind : uint8_t {
      kNone,       // no complete frame: wait for more bytes
      kFrame,      // `frame` is the next STUN or ChannelData message (valid until the next call)
      kMalformed,  // the stream is not STUN/ChannelData: close the connection (the server counts it)
      kTlsFailed,  // a TLS error (handshake refused, bad record): close the connection once output() is written
      kClosed,     // the client sent close_notify
    };
    Kind kind = Kind::kNone;
    std::span<const uint8_t> frame;
  };
  // The next frame of a control connection; the frame handed out before is consumed. Over TLS it runs the handshake
  // and decrypts as needed.
  Next next(TimePoint now);
  // The plaintext from the frame next() returned last (included) on: what a connection moved to another worker by its
  // ConnectionBind takes with it (over TLS the session holds the rest), for receivedPlaintext() there.
  std::span<const uint8_t> fromLastFrame() const;
  // Plaintext that an earlier owner received (a connection moved from another worker).
  void receivedPlaintext(std::span<const uint8_t> bytes);
  // The session, taken out for a move to another worker (the connection is dropped then).
  std::optional<tls::Session> takeTls() {
    std::optional<tls::Session> t = std::move(tls_);
    tls_.reset();
    return t;
  }

  // The last next() frame was a ConnectionBind that succeeded: from the bytes after it on, the connection is a pipe.
  // (Called while the server still reads that frame: the buffer is left as it is until pipeBytes().)
  void startPipe();
  bool isPipe() const { return pipe_; }
  // A pipe's bytes from the client, up to one buffer's worth (kPipeChunk; over TLS one round of decryption), consumed
  // by the call. Empty: none buffered. `failed` is set on a TLS error or close_notify.
  std::span<const uint8_t> pipeBytes(bool& failed);
  // Bytes the connection holds that no socket readiness will announce (OpenSSL's buffered records).
  bool hasBuffered() const;

  // --- output ---
  enum class SendResult : uint8_t { kQueued, kOverflow, kFailed };
  // One message (or piped bytes): a TLS record of its own, or appended to the plain output. kOverflow: dropped,
  // more than kMaxTcpBuffered waits. kFailed: TLS failed, close the connection. `scratch` holds a TLS record's
  // plaintext (the worker's one buffer).
  SendResult send(std::span<const uint8_t> head, std::span<const uint8_t> body, size_t pad,
                  std::vector<uint8_t>& scratch);
  // Bytes to write to the socket, in order: the caller sends from its front and erases what went out, or swaps the
  // vector out with an empty one.
  std::vector<uint8_t>& output() { return tls_ ? tls_->output() : out_; }
  size_t queued() const { return (tls_ ? tls_->output().size() : out_.size()) + pending_.size(); }

  // --- deadlines ---
  // Tells the connection whether it has an allocation, after its frames were handed to the server.
  void noteAllocation(bool has) { allocated_ = allocated_ || has; }
  // The TcpTimeouts deadline a control connection missed by `now`, if any (data connections have none: their pipe
  // decides). `hasAllocation`: the server holds an allocation for it now.
  std::optional<TcpTimeout> expired(TimePoint now, bool hasAllocation, const TcpTimeouts& limits) const;

  PipeSide& pipeSide() { return side_; }

  // The connection has been quiet a while: over TLS, OpenSSL's record buffers are freed (tls::Session::
  // releaseBuffers). True if it holds none now.
  bool releaseBuffers() { return !tls_ || tls_->releaseBuffers(); }

 private:
  bool decryptMore();  // false: no more plaintext now (or a TLS failure, in tlsFailed_)
  void compact();
  bool flushPending();

  std::optional<tls::Session> tls_;
  std::vector<uint8_t> in_;  // plaintext received: [pos_, used_) not handed out yet
  size_t pos_ = 0, used_ = 0;
  size_t handed_ = 0;             // length of the frame next() handed out last, consumed at the next call
  std::vector<uint8_t> out_;      // plain TCP output
  std::vector<uint8_t> pending_;  // TLS: messages queued before the handshake finished
  bool tlsFailed_ = false, tlsClosed_ = false;
  bool pipe_ = false;
  bool allocated_ = false;
  TimePoint opened_, lastMessage_, partialSince_{};
  PipeSide side_;
};

}  // namespace kaiwa::turn

// Minimal RFC 6455 client-side codec for the load generator: handshake key/accept, masked client frames,
// an incremental decoder for server frames (fragmentation, 16/64-bit lengths, control frames).
// Sans-I/O: no socket calls here.
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace kaiwa::bench {

inline uint32_t rotl32(uint32_t x, int n) { return (x << n) | (x >> (32 - n)); }

// SHA-1 (FIPS 180-4), only for Sec-WebSocket-Accept.
inline std::array<uint8_t, 20> sha1(std::string_view data) {
  uint32_t h[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0};
  std::string msg(data);
  const uint64_t bitLen = uint64_t(data.size()) * 8;
  msg.push_back(char(0x80));
  while (msg.size() % 64 != 56) msg.push_back('\0');
  for (int i = 7; i >= 0; --i) msg.push_back(char((bitLen >> (i * 8)) & 0xff));
  for (size_t off = 0; off < msg.size(); off += 64) {
    uint32_t w[80];
    for (int i = 0; i < 16; ++i) {
      const auto* p = reinterpret_cast<const uint8_t*>(msg.data() + off + 4 * i);
      w[i] = uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | uint32_t(p[3]);
    }
    for (int i = 16; i < 80; ++i) w[i] = rotl32(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
    for (int i = 0; i < 80; ++i) {
      uint32_t f, k;
      if (i < 20) {
        f = (b & c) | (~b & d);
        k = 0x5A827999;
      } else if (i < 40) {
        f = b ^ c ^ d;
        k = 0x6ED9EBA1;
      } else if (i < 60) {
        f = (b & c) | (b & d) | (c & d);
        k = 0x8F1BBCDC;
      } else {
        f = b ^ c ^ d;
        k = 0xCA62C1D6;
      }
      const uint32_t t = rotl32(a, 5) + f + e + k + w[i];
      e = d;
      d = c;
      c = rotl32(b, 30);
      b = a;
      a = t;
    }
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
    h[4] += e;
  }
  std::array<uint8_t, 20> out{};
  for (int i = 0; i < 5; ++i) {
    out[4 * i] = uint8_t(h[i] >> 24);
    out[4 * i + 1] = uint8_t(h[i] >> 16);
    out[4 * i + 2] = uint8_t(h[i] >> 8);
    out[4 * i + 3] = uint8_t(h[i]);
  }
  return out;
}

inline std::string base64(const uint8_t* data, size_t n) {
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((n + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < n; i += 3) {
    const uint32_t v = uint32_t(data[i]) << 16 | uint32_t(data[i + 1]) << 8 | data[i + 2];
    out.push_back(kAlphabet[(v >> 18) & 63]);
    out.push_back(kAlphabet[(v >> 12) & 63]);
    out.push_back(kAlphabet[(v >> 6) & 63]);
    out.push_back(kAlphabet[v & 63]);
  }
  if (i + 1 == n) {
    const uint32_t v = uint32_t(data[i]) << 16;
    out.push_back(kAlphabet[(v >> 18) & 63]);
    out.push_back(kAlphabet[(v >> 12) & 63]);
    out.append("==");
  } else if (i + 2 == n) {
    const uint32_t v = uint32_t(data[i]) << 16 | uint32_t(data[i + 1]) << 8;
    out.push_back(kAlphabet[(v >> 18) & 63]);
    out.push_back(kAlphabet[(v >> 12) & 63]);
    out.push_back(kAlphabet[(v >> 6) & 63]);
    out.push_back('=');
  }
  return out;
}

// Sec-WebSocket-Accept for a Sec-WebSocket-Key (RFC 6455 section 4.2.2).
inline std::string websocketAccept(std::string_view key) {
  std::string s(key);
  s.append("258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
  const auto d = sha1(s);
  return base64(d.data(), d.size());
}

enum class Opcode : uint8_t {
  kContinuation = 0x0,
  kText = 0x1,
  kBinary = 0x2,
  kClose = 0x8,
  kPing = 0x9,
  kPong = 0xA,
};

// Appends one client frame (always masked, as RFC 6455 requires of clients).
inline void appendFrame(std::string& out, Opcode op, std::string_view payload, uint32_t maskKey, bool fin = true) {
  const size_t n = payload.size();
  uint8_t hdr[14];
  size_t h = 0;
  hdr[h++] = uint8_t((fin ? 0x80 : 0x00) | uint8_t(op));
  if (n < 126) {
    hdr[h++] = uint8_t(0x80 | n);
  } else if (n <= 0xffff) {
    hdr[h++] = 0x80 | 126;
    hdr[h++] = uint8_t(n >> 8);
    hdr[h++] = uint8_t(n);
  } else {
    hdr[h++] = 0x80 | 127;
    for (int i = 7; i >= 0; --i) hdr[h++] = uint8_t(uint64_t(n) >> (8 * i));
  }
  const uint8_t mask[4] = {uint8_t(maskKey >> 24), uint8_t(maskKey >> 16), uint8_t(maskKey >> 8), uint8_t(maskKey)};
  std::memcpy(hdr + h, mask, 4);
  h += 4;
  const size_t base = out.size();
  out.resize(base + h + n);
  char* dst = out.data() + base;
  std::memcpy(dst, hdr, h);
  dst += h;
  size_t i = 0;
  // Eight bytes at a time: the 4-byte mask repeated twice.
  uint64_t m8;
  uint8_t m8b[8];
  for (int k = 0; k < 8; ++k) m8b[k] = mask[k & 3];
  std::memcpy(&m8, m8b, 8);
  for (; i + 8 <= n; i += 8) {
    uint64_t v;
    std::memcpy(&v, payload.data() + i, 8);
    v ^= m8;
    std::memcpy(dst + i, &v, 8);
  }
  for (; i < n; ++i) dst[i] = char(uint8_t(payload[i]) ^ mask[i & 3]);
}

// Incremental decoder of server-to-client frames. Reassembles fragmented data messages; control frames may be
// interleaved with fragments (RFC 6455 section 5.4).
class FrameDecoder {
 public:
  enum class Error { kNone, kReservedBits, kMaskedFrame, kBadControl, kBadContinuation, kBadOpcode, kTooLarge };

  static const char* errorName(Error e) {
    switch (e) {
      case Error::kNone:
        return "none";
      case Error::kReservedBits:
        return "ws-reserved-bits";
      case Error::kMaskedFrame:
        return "ws-masked-server-frame";
      case Error::kBadControl:
        return "ws-bad-control-frame";
      case Error::kBadContinuation:
        return "ws-bad-continuation";
      case Error::kBadOpcode:
        return "ws-bad-opcode";
      case Error::kTooLarge:
        return "ws-message-too-large";
    }
    return "?";
  }

  // Parses complete frames from data[0..len). onMessage(Opcode, string_view) gets whole data messages (text
  // or binary), onControl(Opcode, string_view) gets ping/pong/close. Each returns false to stop parsing (the
  // connection was closed). Returns the number of bytes consumed; sets error() on a protocol violation.
  template <class OnMessage, class OnControl>
  size_t parse(const char* data, size_t len, size_t maxMessage, OnMessage&& onMessage, OnControl&& onControl) {
    size_t pos = 0;
    while (len - pos >= 2) {
      const auto* p = reinterpret_cast<const uint8_t*>(data + pos);
      const bool fin = (p[0] & 0x80) != 0;
      const uint8_t op = p[0] & 0x0f;
      if ((p[0] & 0x70) != 0) return fail(Error::kReservedBits, pos);
      if ((p[1] & 0x80) != 0) return fail(Error::kMaskedFrame, pos);
      uint64_t plen = p[1] & 0x7f;
      size_t hl = 2;
      if (plen == 126) {
        if (len - pos < 4) break;
        plen = uint64_t(p[2]) << 8 | p[3];
        hl = 4;
      } else if (plen == 127) {
        if (len - pos < 10) break;
        plen = 0;
        for (int i = 0; i < 8; ++i) plen = plen << 8 | p[2 + i];
        hl = 10;
      }
      if (plen > maxMessage) return fail(Error::kTooLarge, pos);
      if (len - pos - hl < plen) break;
      const std::string_view payload(data + pos + hl, size_t(plen));
      bool more = true;
      if (op >= 0x8) {
        if (!fin || plen > 125) return fail(Error::kBadControl, pos);
        if (op != 0x8 && op != 0x9 && op != 0xA) return fail(Error::kBadOpcode, pos);
        more = onControl(Opcode(op), payload);
      } else if (op == 0x0) {
        if (!inFragment_) return fail(Error::kBadContinuation, pos);
        if (fragments_.size() + payload.size() > maxMessage) return fail(Error::kTooLarge, pos);
        fragments_.append(payload);
        if (fin) {
          ++fragmentedMessages_;
          inFragment_ = false;
          std::string whole;
          whole.swap(fragments_);
          more = onMessage(fragmentOp_, std::string_view(whole));
        }
      } else if (op == 0x1 || op == 0x2) {
        if (inFragment_) return fail(Error::kBadContinuation, pos);
        if (fin) {
          more = onMessage(Opcode(op), payload);
        } else {
          inFragment_ = true;
          fragmentOp_ = Opcode(op);
          fragments_.assign(payload);
        }
      } else {
        return fail(Error::kBadOpcode, pos);
      }
      pos += hl + size_t(plen);
      if (!more) break;
    }
    return pos;
  }

  Error error() const { return error_; }
  uint64_t fragmentedMessages() const { return fragmentedMessages_; }

 private:
  size_t fail(Error e, size_t pos) {
    error_ = e;
    return pos;
  }

  std::string fragments_;
  Opcode fragmentOp_ = Opcode::kText;
  bool inFragment_ = false;
  Error error_ = Error::kNone;
  uint64_t fragmentedMessages_ = 0;
};

}  // namespace kaiwa::bench

#include "ws/frame.hpp"

#include <openssl/sha.h>

#include <algorithm>
#include <cstring>

#include "common/base64.hpp"

namespace kaiwa::ws {
namespace {

constexpr std::string_view kGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
constexpr std::size_t kMaxControlPayload = 125;

bool isBase64Char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/';
}

// Close codes a peer may send (RFC 6455 section 7.4, IANA registry): 1000-1003, 1007-1011, 1012-1014, 3000-4999.
bool validPeerCloseCode(uint16_t code) {
  if (code >= 3000 && code <= 4999) return true;
  if (code < 1000 || code > 1014) return false;
  return code != 1004 && code != 1005 && code != 1006;
}

// XOR with the 4-byte mask, word at a time where it can.
void unmask(char* p, std::size_t n, const uint8_t key[4]) {
  uint32_t k;
  std::memcpy(&k, key, 4);
  uint64_t k8 = (uint64_t(k) << 32) | k;
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    std::memcpy(&w, p + i, 8);
    w ^= k8;
    std::memcpy(p + i, &w, 8);
  }
  for (; i < n; ++i) p[i] = static_cast<char>(p[i] ^ key[i & 3]);
}

}  // namespace

std::string acceptKey(std::string_view clientKey) {
  std::string text;
  text.reserve(clientKey.size() + kGuid.size());
  text.append(clientKey).append(kGuid);
  uint8_t digest[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const uint8_t*>(text.data()), text.size(), digest);
  return common::base64Encode(digest);
}

bool validClientKey(std::string_view key) {
  if (key.size() != 24 || key.substr(22) != "==") return false;
  return std::all_of(key.begin(), key.begin() + 22, isBase64Char);
}

std::size_t writeHeader(uint8_t* out, Opcode opcode, std::size_t n) {
  out[0] = static_cast<uint8_t>(0x80 | static_cast<uint8_t>(opcode));  // FIN, no RSV bits
  if (n < 126) {
    out[1] = static_cast<uint8_t>(n);
    return 2;
  }
  if (n <= 0xFFFF) {
    out[1] = 126;
    out[2] = static_cast<uint8_t>(n >> 8);
    out[3] = static_cast<uint8_t>(n);
    return 4;
  }
  out[1] = 127;
  for (int i = 0; i < 8; ++i) out[2 + i] = static_cast<uint8_t>(uint64_t(n) >> (56 - 8 * i));
  return 10;
}

std::string closeFrame(uint16_t code, std::string_view reason) {
  reason = reason.substr(0, kMaxControlPayload - 2);
  // Cutting may have split a UTF-8 sequence: drop continuation bytes and the lead byte they belong to.
  while (!reason.empty() && !validUtf8(reason)) reason.remove_suffix(1);
  uint8_t header[kMaxHeaderBytes];
  std::size_t h = writeHeader(header, Opcode::kClose, 2 + reason.size());
  std::string frame(reinterpret_cast<const char*>(header), h);
  frame.push_back(static_cast<char>(code >> 8));
  frame.push_back(static_cast<char>(code & 0xFF));
  frame.append(reason);
  return frame;
}

bool validUtf8(std::string_view text) {
  const auto* s = reinterpret_cast<const uint8_t*>(text.data());
  std::size_t n = text.size(), i = 0;
  while (i < n) {
    // ASCII runs, eight bytes at a time.
    while (i + 8 <= n) {
      uint64_t w;
      std::memcpy(&w, s + i, 8);
      if (w & 0x8080808080808080ULL) break;
      i += 8;
    }
    if (i >= n) break;
    uint8_t c = s[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    std::size_t len;
    uint8_t lo = 0x80, hi = 0xBF;  // allowed range of the second byte (RFC 3629 section 4)
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      if (c == 0xE0) lo = 0xA0;  // no overlong forms
      if (c == 0xED) hi = 0x9F;  // no surrogates
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      if (c == 0xF0) lo = 0x90;  // no overlong forms
      if (c == 0xF4) hi = 0x8F;  // nothing above U+10FFFF
    } else {
      return false;
    }
    if (i + len > n) return false;
    if (s[i + 1] < lo || s[i + 1] > hi) return false;
    for (std::size_t k = 2; k < len; ++k) {
      if ((s[i + k] & 0xC0) != 0x80) return false;
    }
    i += len;
  }
  return true;
}

std::size_t FrameReader::read(char* data, std::size_t size, FrameSink& sink) {
  std::size_t pos = 0;
  while (!error_ && !closed_) {
    const auto* h = reinterpret_cast<const uint8_t*>(data + pos);
    std::size_t avail = size - pos;
    if (avail < 2) break;
    bool fin = h[0] & 0x80;
    uint8_t rsv = h[0] & 0x70;
    auto opcode = static_cast<uint8_t>(h[0] & 0x0F);
    bool masked = h[1] & 0x80;
    uint64_t len = h[1] & 0x7F;
    std::size_t headerBytes = 2;
    if (len == 126) {
      if (avail < 4) break;
      len = (uint64_t(h[2]) << 8) | h[3];
      headerBytes = 4;
      if (len < 126) return failAt(pos, kCloseProtocolError);  // not the shortest form
    } else if (len == 127) {
      if (avail < 10) break;
      len = 0;
      for (int i = 0; i < 8; ++i) len = (len << 8) | h[2 + i];
      headerBytes = 10;
      if (len >> 63) return failAt(pos, kCloseProtocolError);
      if (len <= 0xFFFF) return failAt(pos, kCloseProtocolError);
    }
    // No extension is negotiated, so RSV bits must be 0; client frames must be masked.
    if (rsv || !masked) return failAt(pos, kCloseProtocolError);
    bool control = opcode & 0x08;
    if (control) {
      if (!fin || len > kMaxControlPayload) return failAt(pos, kCloseProtocolError);
      if (opcode != 0x8 && opcode != 0x9 && opcode != 0xA) return failAt(pos, kCloseProtocolError);
    } else {
      if (opcode > 0x2) return failAt(pos, kCloseProtocolError);
      if (opcode == 0x0 && !inFragments_) return failAt(pos, kCloseProtocolError);  // continuation of nothing
      if (opcode != 0x0 && inFragments_) return failAt(pos, kCloseProtocolError);   // a new message inside one
      // The size check comes at the header: an oversized message is refused before its payload is read.
      uint64_t total = len + (inFragments_ ? fragments_.size() : 0);
      if (total > maxMessage_) return failAt(pos, kCloseTooBig);
    }
    if (avail < headerBytes + 4 + len) break;  // the whole frame is not here yet
    uint8_t key[4];
    std::memcpy(key, h + headerBytes, 4);
    char* payload = data + pos + headerBytes + 4;
    unmask(payload, len, key);
    pos += headerBytes + 4 + len;
    std::string_view body(payload, len);

    if (control) {
      if (opcode == 0x9) {
        sink.onPing(body);
      } else if (opcode == 0xA) {
        sink.onPong(body);
      } else {
        uint16_t code = kCloseNoStatus;
        std::string_view reason;
        if (len == 1) return failAt(pos, kCloseProtocolError);
        if (len >= 2) {
          code = static_cast<uint16_t>((uint8_t(body[0]) << 8) | uint8_t(body[1]));
          reason = body.substr(2);
          if (!validPeerCloseCode(code)) return failAt(pos, kCloseProtocolError);
          if (!validUtf8(reason)) return failAt(pos, kCloseBadData);
        }
        closed_ = true;
        sink.onClose(code, reason);
      }
      continue;
    }

    bool binary;
    std::string_view message;
    if (opcode != 0x0 && fin) {  // the common case: one frame, handed out in place
      binary = opcode == 0x2;
      message = body;
    } else {
      if (opcode != 0x0) {
        inFragments_ = true;
        fragmentsBinary_ = opcode == 0x2;
      }
      fragments_.append(body);
      if (!fin) continue;
      binary = fragmentsBinary_;
      message = fragments_;
    }
    if (!binary && !validUtf8(message)) return failAt(pos, kCloseBadData);
    bool more = sink.onMessage(message, binary);
    if (inFragments_) {
      inFragments_ = false;
      std::string().swap(fragments_);  // no buffer kept once the message is out
    }
    if (!more) break;
  }
  return pos;
}

}  // namespace kaiwa::ws

#include "signal/names.hpp"

#include <cstddef>

namespace kaiwa::signal {
namespace {

// The code points of `s`, which is valid UTF-8 (the JSON parser checked it), one after the other.
template <typename F>
void forEachCodePoint(std::string_view s, F&& f) {
  for (std::size_t i = 0; i < s.size();) {
    auto c = static_cast<unsigned char>(s[i]);
    int len = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
    char32_t cp = len == 1 ? c : len == 2 ? (c & 0x1F) : len == 3 ? (c & 0x0F) : (c & 0x07);
    for (int k = 1; k < len && i + k < s.size(); ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
    f(cp);
    i += static_cast<std::size_t>(len);
  }
}

// Code points a name may not hold at all: controls (C0, DEL, C1), line and paragraph separators, and the bidi
// embeddings, overrides and isolates that make text read differently from how it is stored ("alice\u202Etxt.exe").
bool forbiddenInName(char32_t c) {
  return c < 0x20 || (c >= 0x7F && c <= 0x9F) || c == 0x2028 || c == 0x2029 || (c >= 0x202A && c <= 0x202E) ||
         (c >= 0x2066 && c <= 0x2069);
}

// Code points that show nothing by themselves: spaces, zero-width and other invisible format characters, fillers,
// variation selectors, tags and combining marks. A name must hold at least one code point that is none of these.
bool invisible(char32_t c) {
  return c == 0x20 || c == 0xA0 || c == 0xAD || c == 0x034F || (c >= 0x0300 && c <= 0x036F) || c == 0x061C ||
         c == 0x115F || c == 0x1160 || c == 0x1680 || c == 0x17B4 || c == 0x17B5 || c == 0x180E ||
         (c >= 0x2000 && c <= 0x200F) || c == 0x202F || (c >= 0x205F && c <= 0x2064) || c == 0x3000 || c == 0x3164 ||
         (c >= 0xFE00 && c <= 0xFE0F) || c == 0xFEFF || c == 0xFFA0 || (c >= 0xE0000 && c <= 0xE0FFF);
}

// Counts UTF-8 code points.
std::size_t codePoints(std::string_view s) {
  std::size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

bool hasControl(std::string_view s) {
  for (unsigned char c : s) {
    if (c < 0x20 || c == 0x7F) return true;
  }
  return false;
}

}  // namespace

bool validRoomName(std::string_view room) {
  if (room.empty() || room.size() > 64) return false;
  for (char c : room) {
    bool ok =
        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.';
    if (!ok) return false;
  }
  return true;
}

bool validDisplayName(std::string_view name) {
  std::size_t n = codePoints(name);
  if (n < 1 || n > kMaxNameChars || hasControl(name)) return false;
  bool forbidden = false, visible = false;
  forEachCodePoint(name, [&](char32_t c) {
    forbidden = forbidden || forbiddenInName(c);
    visible = visible || !invisible(c);
  });
  return !forbidden && visible;
}

}  // namespace kaiwa::signal

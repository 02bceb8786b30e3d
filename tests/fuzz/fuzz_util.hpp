#pragma once
// Helpers shared by the fuzz targets: invariant checks that abort (libFuzzer then saves the input as a crash).
#include <boost/json.hpp>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>

namespace kaiwa::fuzz {

[[noreturn]] inline void fail(const char* file, int line, const char* cond, std::string_view detail) {
  std::fprintf(stderr, "%s:%d: invariant violated: %s\n", file, line, cond);
  if (!detail.empty()) {
    // Printable ASCII as is, anything else as \xNN (details often hold the odd bytes that caused the failure).
    std::string shown;
    for (unsigned char c : detail.substr(0, 2000)) {
      if (c >= 0x20 && c < 0x7F) {
        shown.push_back(static_cast<char>(c));
      } else {
        char esc[5];
        std::snprintf(esc, sizeof esc, "\\x%02x", c);
        shown += esc;
      }
    }
    std::fprintf(stderr, "  detail: %s\n", shown.c_str());
  }
  std::abort();
}

// FUZZ_CHECK(cond) / FUZZ_CHECK(cond, detail): detail is something convertible to std::string_view.
#define FUZZ_CHECK(cond, ...)                                                                   \
  do {                                                                                          \
    if (!(cond)) ::kaiwa::fuzz::fail(__FILE__, __LINE__, #cond, std::string_view{__VA_ARGS__}); \
  } while (0)

// Strict JSON parse (Boost.JSON defaults: valid UTF-8, no comments, no trailing commas). `storage`: where the value's
// memory comes from (a monotonic_resource over a buffer of the caller spares a heap block per node, which under ASan
// is most of a session fuzzer's time); the value must not outlive it.
inline std::optional<boost::json::value> parseJson(std::string_view text, boost::json::storage_ptr storage = {}) {
  boost::system::error_code ec;
  boost::json::value v = boost::json::parse(boost::json::string_view(text.data(), text.size()), ec, std::move(storage));
  if (ec) return std::nullopt;
  return v;
}

// True when `s` is well-formed UTF-8 (RFC 3629: no overlongs, no surrogates, at most U+10FFFF).
inline bool validUtf8(std::string_view s) {
  std::size_t i = 0;
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  while (i < s.size()) {
    unsigned char c = p[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    std::size_t n;
    uint32_t cp;
    if ((c & 0xE0) == 0xC0) {
      n = 1;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      n = 2;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      n = 3;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + n >= s.size()) return false;  // the sequence runs past the end
    for (std::size_t k = 1; k <= n; ++k) {
      if ((p[i + k] & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (p[i + k] & 0x3F);
    }
    static constexpr uint32_t kMin[] = {0, 0x80, 0x800, 0x10000};
    if (cp < kMin[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += n + 1;
  }
  return true;
}

inline std::string_view str(const boost::json::value& v) {
  const auto& s = v.as_string();
  return {s.data(), s.size()};
}

}  // namespace kaiwa::fuzz

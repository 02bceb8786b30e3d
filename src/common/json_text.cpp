#include "common/json_text.hpp"

#include <algorithm>
#include <cstdint>
#include <cstring>

namespace kaiwa::common {
using namespace std::string_view_literals;
namespace {

// True if one of the 8 bytes in `w` needs an escape in a JSON string: a control character, '"' or '\\'.
bool anyToEscape(uint64_t w) {
  constexpr uint64_t kOnes = 0x0101010101010101ULL;
  constexpr uint64_t kHigh = 0x8080808080808080ULL;
  const uint64_t control = (w - kOnes * 0x20) & ~w;  // a byte below 0x20
  const uint64_t q = w ^ (kOnes * '"');
  const uint64_t b = w ^ (kOnes * '\\');
  return ((control | ((q - kOnes) & ~q) | ((b - kOnes) & ~b)) & kHigh) != 0;
}

}  // namespace

// Plain runs are copied whole; eight bytes are checked at a time.
void appendJsonEscaped(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  const char* p = s.data();
  const std::size_t n = s.size();
  std::size_t run = 0;  // start of the pending run of plain bytes
  std::size_t i = 0;
  while (i < n) {
    if (i + 8 <= n) {
      uint64_t w;
      std::memcpy(&w, p + i, 8);
      if (!anyToEscape(w)) {
        i += 8;
        continue;
      }
    }
    for (const std::size_t stop = std::min(i + 8, n); i < stop; ++i) {
      const auto c = static_cast<unsigned char>(p[i]);
      if (c >= 0x20 && c != '"' && c != '\\') continue;
      out.append(p + run, i - run);
      run = i + 1;
      switch (c) {
        case '"':
          out += "\\\""sv;
          break;
        case '\\':
          out += "\\\\"sv;
          break;
        case '\n':
          out += "\\n"sv;
          break;
        case '\r':
          out += "\\r"sv;
          break;
        case '\t':
          out += "\\t"sv;
          break;
        default:
          out += "\\u00"sv;
          out.push_back(kHex[c >> 4]);
          out.push_back(kHex[c & 15]);
      }
    }
  }
  out.append(p + run, n - run);
}

void appendJsonString(std::string& out, std::string_view s) {
  out.push_back('"');
  appendJsonEscaped(out, s);
  out.push_back('"');
}

void JsonEcho::appendDecoded(std::string_view s) {
  const auto begin = reinterpret_cast<std::uintptr_t>(input_.data());
  const auto at = reinterpret_cast<std::uintptr_t>(s.data());
  if (at >= begin && at + s.size() <= begin + input_.size()) {
    out_.append(s);
  } else {
    appendJsonEscaped(out_, s);
  }
}

}  // namespace kaiwa::common

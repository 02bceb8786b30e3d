#include "cluster/load.hpp"

#include <charconv>

namespace kaiwa::cluster {
namespace {

constexpr std::string_view kHeader = "L1 ";
constexpr char kHex[] = "0123456789abcdef";

int hexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

// A decimal number up to the next '\n' (which it consumes).
template <typename T>
std::optional<T> numberLine(std::string_view& text) {
  auto end = text.find('\n');
  if (end == std::string_view::npos || end == 0) return std::nullopt;
  T value{};
  auto [p, ec] = std::from_chars(text.data(), text.data() + end, value);
  if (ec != std::errc() || p != text.data() + end) return std::nullopt;
  text.remove_prefix(end + 1);
  return value;
}

}  // namespace

std::string encodeLoad(const Load& load) {
  std::string out(kHeader);
  out += std::to_string(load.rooms);
  out += '\n';
  out.reserve(out.size() + load.addresses.size() * 40);
  for (const auto& [address, count] : load.addresses) {
    for (uint8_t b : address) {
      out += kHex[b >> 4];
      out += kHex[b & 0xf];
    }
    out += ' ';
    out += std::to_string(count);
    out += '\n';
  }
  return out;
}

std::optional<Load> parseLoad(std::string_view text, std::size_t maxAddresses) {
  if (!text.starts_with(kHeader)) return std::nullopt;
  text.remove_prefix(kHeader.size());
  Load load;
  auto rooms = numberLine<uint64_t>(text);
  if (!rooms) return std::nullopt;
  load.rooms = *rooms;
  while (!text.empty()) {
    if (load.addresses.size() >= maxAddresses || text.size() < 34 || text[32] != ' ') return std::nullopt;
    common::Address16 address{};
    for (std::size_t i = 0; i < address.size(); ++i) {
      int hi = hexValue(text[2 * i]), lo = hexValue(text[2 * i + 1]);
      if (hi < 0 || lo < 0) return std::nullopt;
      address[i] = static_cast<uint8_t>(hi << 4 | lo);
    }
    text.remove_prefix(33);
    auto count = numberLine<uint32_t>(text);
    if (!count) return std::nullopt;
    load.addresses.emplace_back(address, *count);
  }
  return load;
}

}  // namespace kaiwa::cluster

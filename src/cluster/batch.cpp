#include "cluster/batch.hpp"

#include <charconv>
#include <utility>

#include <fmt/format.h>

namespace kaiwa::cluster {

bool validNodeId(std::string_view id) {
  if (id.empty() || id.size() > 128) return false;
  for (char c : id) {
    if (c <= ' ' || c > '~') return false;  // printable ASCII without spaces: it is a line of the batch header
  }
  return true;
}

BatchWriter::BatchWriter(std::string_view from) : from_(from) {}

void BatchWriter::add(ItemKind kind, uint64_t link, std::string_view body) {
  if (out_.empty()) {
    out_ += "K1 ";
    out_ += from_;
    out_ += '\n';
  }
  fmt::format_to(std::back_inserter(out_), "{}{:x} {}\n", static_cast<char>(kind), link, body.size());
  out_ += body;
  ++items_;
}

std::string BatchWriter::take() {
  items_ = 0;
  return std::exchange(out_, {});
}

namespace {

template <typename T>
bool number(std::string_view text, T& value, int base) {
  if (text.empty()) return false;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value, base);
  return ec == std::errc{} && end == text.data() + text.size();
}

bool knownKind(char c) {
  switch (static_cast<ItemKind>(c)) {
    case ItemKind::kOpen:
    case ItemKind::kFrame:
    case ItemKind::kClose:
    case ItemKind::kDeliver:
    case ItemKind::kEnd:
      return true;
  }
  return false;
}

}  // namespace

std::optional<Batch> parseBatch(std::string_view payload) {
  if (!payload.starts_with("K1 ")) return std::nullopt;
  auto eol = payload.find('\n');
  if (eol == std::string_view::npos) return std::nullopt;
  Batch batch;
  batch.from = payload.substr(3, eol - 3);
  if (!validNodeId(batch.from)) return std::nullopt;
  std::string_view rest = payload.substr(eol + 1);
  while (!rest.empty()) {
    eol = rest.find('\n');
    if (eol == std::string_view::npos || eol < 4) return std::nullopt;
    std::string_view head = rest.substr(0, eol);
    if (!knownKind(head[0])) return std::nullopt;
    auto space = head.find(' ');
    if (space == std::string_view::npos) return std::nullopt;
    Item item{static_cast<ItemKind>(head[0]), 0, {}};
    std::size_t length = 0;
    if (!number(head.substr(1, space - 1), item.link, 16) || !number(head.substr(space + 1), length, 10)) {
      return std::nullopt;
    }
    rest.remove_prefix(eol + 1);
    if (length > rest.size()) return std::nullopt;
    item.body = rest.substr(0, length);
    rest.remove_prefix(length);
    batch.items.push_back(item);
  }
  return batch;
}

}  // namespace kaiwa::cluster

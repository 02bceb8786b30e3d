#pragma once
// Short ids held inline (Engine.IO sids, socket ids, client addresses): a std::string of more than 15 characters
// costs a heap block besides itself, and every session keeps a few of these.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace kaiwa::signal::socketio {

// An id of at most N characters; a longer one is cut to N.
template <std::size_t N>
class InlineId {
 public:
  InlineId() = default;
  explicit InlineId(std::string_view s) : len_(static_cast<uint8_t>(std::min(s.size(), sizeof(buf_)))) {
    std::memcpy(buf_, s.data(), len_);
  }
  std::string_view view() const { return {buf_, len_}; }
  std::string str() const { return std::string(view()); }
  bool empty() const { return len_ == 0; }

 private:
  char buf_[N] = {};
  uint8_t len_ = 0;
  static_assert(N < 256);
};

using Sid = InlineId<63>;       // "<worker>.<20 characters>", in a cluster "<node>~<worker>.<20 characters>"
using SocketId = InlineId<20>;  // randomSocketId(): always 20 characters
using Address = InlineId<45>;   // an IP address in text form (IPv4-mapped IPv6 is the longest)

}  // namespace kaiwa::signal::socketio

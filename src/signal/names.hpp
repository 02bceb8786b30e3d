#pragma once
// What a room name and a display name may be, the same for every front door (native, PeerJS, Socket.IO) and for the
// app's /room/NAME route.
#include <cstddef>
#include <string_view>

namespace kaiwa::signal {

inline constexpr std::size_t kMaxNameChars = 64;

// Room names: 1-64 of [A-Za-z0-9_.-]. Display names: 1-64 characters of valid UTF-8 with at least one visible
// character, and no control characters, line separators or bidi overrides, embeddings and isolates.
bool validRoomName(std::string_view room);
bool validDisplayName(std::string_view name);

}  // namespace kaiwa::signal

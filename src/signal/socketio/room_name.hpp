#pragma once
// Socket.IO's rooms are room-core rooms under a prefix of their own, so that they never meet native rooms of the same
// name. The app places a WebSocket whose handshake names room R on the worker that owns coreRoomName(R).
#include <string>
#include <string_view>

namespace kaiwa::signal::socketio {

inline constexpr std::string_view kCoreRoomPrefix = "sio:";
inline std::string coreRoomName(std::string_view room) { return std::string(kCoreRoomPrefix).append(room); }

}  // namespace kaiwa::signal::socketio

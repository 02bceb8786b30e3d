#pragma once
// WebSocket close codes (RFC 6455 section 7.4.1): the one set the connection (http/), the frame reader and the
// front doors close with.
#include <cstdint>

namespace kaiwa::ws {

inline constexpr uint16_t kCloseNormal = 1000;
inline constexpr uint16_t kCloseGoingAway = 1001;  // server shutdown; from a browser: it left the page
inline constexpr uint16_t kCloseProtocolError = 1002;
inline constexpr uint16_t kCloseNoStatus = 1005;  // never sent: what a close frame without a code means
inline constexpr uint16_t kCloseBadData = 1007;   // text that is not UTF-8
inline constexpr uint16_t kClosePolicy = 1008;    // a protocol above WebSocket was broken, or a message was too slow
inline constexpr uint16_t kCloseTooBig = 1009;

}  // namespace kaiwa::ws

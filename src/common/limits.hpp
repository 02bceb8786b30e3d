#pragma once
// Defaults that more than one module's options share, written once.
#include <cstddef>

namespace kaiwa::common {

// Outgoing bytes queued for one slow connection (a WebSocket's send queue, a long poll's) before it is closed as a
// slow consumer: --max-queued-bytes, which sets all of them.
inline constexpr std::size_t kMaxQueuedBytes = 4 * 1024 * 1024;

}  // namespace kaiwa::common

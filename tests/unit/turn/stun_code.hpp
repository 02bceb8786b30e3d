#pragma once
// Shared by the TURN unit tests: a response's outcome as one number.
#include <optional>

#include "stun/message.hpp"

namespace kaiwa::turn::test_util {

// 200 for a success response, the error code of an error response (-2 if it has none), -1 for no response.
inline int responseCode(const std::optional<stun::Message>& m) {
  if (!m) return -1;
  if (m->messageClass() == stun::Class::kSuccess) return 200;
  return m->errorCode().value_or(-2);
}

}  // namespace kaiwa::turn::test_util

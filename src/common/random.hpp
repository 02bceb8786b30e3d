#pragma once
// Unpredictable identifiers: peer ids, resume tokens, socket ids. Drawn from OpenSSL's CSPRNG.
#include <cstddef>
#include <string>

namespace kaiwa::common {

// `length` characters of [A-Za-z0-9], ~5.95 bits each.
std::string randomToken(std::size_t length);

}  // namespace kaiwa::common

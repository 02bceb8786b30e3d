#include "stun/saslprep.hpp"

#include <idn-free.h>
#include <stringprep.h>

#include <memory>

namespace kaiwa::stun {

bool saslprepIdentity(std::string_view in) {
  for (char c : in)
    if (c < 0x20 || c > 0x7E) return false;
  return true;
}

std::optional<std::string> saslprep(std::string_view in, PrepMode mode) {
  if (saslprepIdentity(in)) return std::string(in);
  // U+0000 is prohibited output (a control character); libidn takes NUL-terminated text, so catch it here.
  if (in.find('\0') != std::string_view::npos) return std::nullopt;
  std::string text(in);
  char* out = nullptr;
  auto flags = mode == PrepMode::kStored ? STRINGPREP_NO_UNASSIGNED : Stringprep_profile_flags(0);
  if (stringprep_profile(text.c_str(), &out, "SASLprep", flags) != STRINGPREP_OK) {
    idn_free(out);
    return std::nullopt;
  }
  std::unique_ptr<char, void (*)(void*)> owned(out, idn_free);
  return std::string(out);
}

}  // namespace kaiwa::stun

#pragma once
// Small checks on parsed JSON that several codecs share.
#include <boost/json/value.hpp>

#include <cmath>

namespace kaiwa::common {

// False if `v` holds a number with no JSON text (1e400 parses as infinity). Recursion depth is bounded by the
// parser's max_depth.
inline bool finiteNumbers(const boost::json::value& v) {
  switch (v.kind()) {
    case boost::json::kind::double_:
      return std::isfinite(v.get_double());
    case boost::json::kind::array:
      for (const auto& e : v.get_array()) {
        if (!finiteNumbers(e)) return false;
      }
      return true;
    case boost::json::kind::object:
      for (const auto& kv : v.get_object()) {
        if (!finiteNumbers(kv.value())) return false;
      }
      return true;
    default:
      return true;
  }
}

}  // namespace kaiwa::common

#pragma once
// The captured browser descriptions in tests/unit/sdp/vectors/ (see capture.mjs), read for the tests.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

namespace kaiwa::sdp::test {

inline std::string vectorPath(const std::string& name) { return std::string(KAIWA_SDP_VECTORS) + "/" + name; }

inline std::string readVector(const std::string& name) {
  std::ifstream in(vectorPath(name), std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Every *.sdp file name, sorted.
inline std::vector<std::string> vectorNames() {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(KAIWA_SDP_VECTORS)) {
    if (e.path().extension() == ".sdp") out.push_back(e.path().filename().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

// The vectors that are offers (the rest are answers a browser wrote).
inline std::vector<std::string> offerNames() {
  std::vector<std::string> out;
  for (auto& n : vectorNames()) {
    if (n.find("answer") == std::string::npos) out.push_back(n);
  }
  return out;
}

}  // namespace kaiwa::sdp::test

#pragma once
// What a node forwards to the node that holds a Socket.IO session (docs/socketio.md, "Across nodes"), on a cluster
// link of Door::kSocketIo. The link's first frame says what it carries:
//
//   "H" method "\n" query "\n" body      an Engine.IO HTTP request (handshake, long poll, POST), answered by one frame:
//                                        status " " content-type "\n" *(name ": " value "\n") "\n" body
//   "W" query                            a WebSocket (direct, or an upgrade naming a sid); then its frames both ways,
//                                        "T" text or "B" binary, then the bytes
//
// The frames come from another kaiwa through Redis; still, a decoder never trusts them: nullopt for anything
// malformed (tests/fuzz/fuzz_socketio_forward).
#include <optional>
#include <string>
#include <string_view>

#include "http/handler.hpp"

namespace kaiwa::signal::socketio {

struct ForwardedRequest {
  enum class Kind : uint8_t { kHttp, kWebSocket } kind = Kind::kHttp;
  std::string_view method;  // kHttp only
  std::string_view query;
  std::string_view body;  // kHttp only
};

std::string encodeHttpForward(std::string_view method, std::string_view query, std::string_view body);
std::string encodeWsForward(std::string_view query);
std::optional<ForwardedRequest> decodeForward(std::string_view frame);

std::string encodeForwardedResponse(const http::Response& r);
std::optional<http::Response> decodeForwardedResponse(std::string_view frame);

// A WebSocket frame on the link: "T"/"B" and the bytes.
std::string wrapWsFrame(std::string_view frame, bool binary);
struct WsFrame {
  std::string_view data;
  bool binary = false;
};
std::optional<WsFrame> unwrapWsFrame(std::string_view frame);

}  // namespace kaiwa::signal::socketio

// fuzz_socketio_forward: what a node forwards to the node holding a Socket.IO session, and the answer it gets back
// (signal/socketio/forward.hpp). The bytes come through Redis from another kaiwa, and are parsed as untrusted.
//  1. decodeForward, decodeForwardedResponse and unwrapWsFrame never crash on any input.
//  2. What decodes is encoded again and decodes back to the same request, response or frame.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "signal/socketio/forward.hpp"

using namespace kaiwa::signal::socketio;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  if (auto r = decodeForward(input)) {
    std::string again = r->kind == ForwardedRequest::Kind::kHttp ? encodeHttpForward(r->method, r->query, r->body)
                                                                 : encodeWsForward(r->query);
    auto back = decodeForward(again);
    if (!back || back->kind != r->kind || back->method != r->method || back->query != r->query ||
        back->body != r->body) {
      std::abort();
    }
  }
  if (auto r = decodeForwardedResponse(input)) {
    auto back = decodeForwardedResponse(encodeForwardedResponse(*r));
    if (!back || back->status != r->status || back->contentType != r->contentType || back->body != r->body ||
        back->headers != r->headers) {
      std::abort();
    }
  }
  if (auto f = unwrapWsFrame(input)) {
    std::string again = wrapWsFrame(f->data, f->binary);  // the views of `back` point into it
    auto back = unwrapWsFrame(again);
    if (!back || back->data != f->data || back->binary != f->binary) std::abort();
  }
  return 0;
}

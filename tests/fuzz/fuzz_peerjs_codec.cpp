// fuzz_peerjs_codec: signal::peerjs::decode() on arbitrary bytes, then the encoders with what it decoded.
// Invariants: decode never crashes; an accepted message had a string "type" and maps it consistently; its payload
// is valid JSON; every relay encoded from decoded fields is a JSON object whose type, src and dst round-trip exactly
// and that carries the payload text unchanged; ERROR texts round-trip; validId accepts only printable ASCII without
// '"' and '\'; a link's first message (decodeLinkHello) is "peers", or an "open" query's parameters, or nothing.
// (Payload text is not compared after a second parse: Boost.JSON 1.81 parses doubles imprecisely, so the last digit
// of a double may change once; see docs/peerjs.md.)
#include <boost/json.hpp>

#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_util.hpp"
#include "signal/peerjs/codec.hpp"

namespace json = boost::json;
using namespace kaiwa::signal::peerjs;
using kaiwa::fuzz::parseJson;
using kaiwa::fuzz::str;
using kaiwa::fuzz::validUtf8;

namespace {

void checkRelay(std::string_view type, std::string_view src, std::string_view dst, std::string_view payload) {
  std::string text = encodeRelay(type, src, dst, payload);
  auto v = parseJson(text);
  FUZZ_CHECK(v && v->is_object(), text);
  const json::object& o = v->as_object();
  FUZZ_CHECK(o.contains("type") && str(o.at("type")) == type, text);
  FUZZ_CHECK(o.contains("src") && str(o.at("src")) == src, text);
  FUZZ_CHECK(o.contains("dst") && str(o.at("dst")) == dst, text);
  if (payload.empty()) {
    FUZZ_CHECK(!o.contains("payload"), text);
  } else {
    std::string tail = ",\"payload\":" + std::string(payload) + "}";
    FUZZ_CHECK(o.contains("payload") && text.ends_with(tail), text);
  }
  // What the server sends decodes again (a client could echo it) to the same fields.
  auto again = decode(text);
  FUZZ_CHECK(again.has_value(), text);
  FUZZ_CHECK(again->typeName == type && again->dst && *again->dst == dst, text);
  FUZZ_CHECK(again->payload.empty() == payload.empty(), text);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  auto m = decode(input);
  if (m) {
    auto v = parseJson(input);
    FUZZ_CHECK(v && v->is_object(), input);
    const json::value* t = v->as_object().if_contains("type");
    FUZZ_CHECK(t && t->is_string() && str(*t) == m->typeName, input);
    std::string_view name = toString(m->type);
    if (relayed(m->type)) {
      FUZZ_CHECK(name == m->typeName, m->typeName);
    } else {
      FUZZ_CHECK(name.empty(), m->typeName);
    }
    FUZZ_CHECK(!heldForAbsent(m->type) || relayed(m->type), m->typeName);
    if (!m->payload.empty()) {
      FUZZ_CHECK(parseJson(m->payload).has_value(), m->payload);
    }
    if (m->dst && relayed(m->type)) checkRelay(m->typeName, "src-id", *m->dst, m->payload);
  }
  if (validId(input)) {
    FUZZ_CHECK(!input.empty() && input.size() <= 256, input);
    for (unsigned char c : input) FUZZ_CHECK(c >= 0x20 && c < 0x7F && c != '"' && c != '\\', input);
    checkRelay("OFFER", input, input, "");
  }
  // A link's first message (from another node, through Redis): "peers", or "open " and a query whose parameters
  // decode as the query has them.
  if (auto hello = decodeLinkHello(input)) {
    FUZZ_CHECK(hello->peers == (input == kLinkPeers), input);
    FUZZ_CHECK(hello->peers || input.starts_with(kLinkOpen), input);
    if (hello->peers) FUZZ_CHECK(!hello->key && !hello->id && !hello->token, input);
  } else {
    FUZZ_CHECK(input != kLinkPeers && !input.starts_with(kLinkOpen), input);
  }
  if (validUtf8(input)) {
    std::string text = encodeError(input);
    auto e = parseJson(text);
    FUZZ_CHECK(e && e->is_object(), text);
    FUZZ_CHECK(str(e->as_object().at("payload").as_object().at("msg")) == input, text);
  }
  return 0;
}

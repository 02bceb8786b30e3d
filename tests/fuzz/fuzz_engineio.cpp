// fuzz_engineio: the Engine.IO v4 framing of signal/socketio/codec.hpp on arbitrary bytes.
// - decodeFrame as a text frame: accepted exactly when the first byte is a type digit '0'..'6'; the packet
//   encodes back to the same frame, byte for byte, and decodes again to the same packet.
// - decodeFrame as a binary frame: always a binary message carrying the bytes unchanged.
// - decodePayload: text data never holds the separator; the packets re-encoded with appendToPayload decode to
//   the same packets, and that body is canonical (encoding the packets a second time gives the same text); a
//   body with only text parts re-encodes to the input itself; maxPackets below the count refuses the body.
//   Each packet also survives the WebSocket framing (encodeFrame, then decodeFrame with the binary flag).
// - encodeOpenData with the input as sid (when it is UTF-8) is JSON giving the sid back.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_util.hpp"
#include "signal/socketio/codec.hpp"

using namespace kaiwa::signal::socketio;
using kaiwa::fuzz::parseJson;
using kaiwa::fuzz::str;
using kaiwa::fuzz::validUtf8;

namespace {

bool same(const EioPacket& a, const EioPacket& b) {
  return a.type == b.type && a.binary == b.binary && a.data == b.data;
}

void checkWebSocketFraming(const EioPacket& p) {
  std::string frame = encodeFrame(p);
  auto back = decodeFrame(frame, p.binary);
  FUZZ_CHECK(back && same(*back, p), frame);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);

  // A text frame.
  auto text = decodeFrame(input, false);
  bool digit = !input.empty() && input[0] >= '0' && input[0] <= '6';
  FUZZ_CHECK(text.has_value() == digit, input);
  if (text) {
    FUZZ_CHECK(!text->binary && static_cast<char>('0' + static_cast<int>(text->type)) == input[0], input);
    FUZZ_CHECK(text->data == input.substr(1), input);
    FUZZ_CHECK(encodeFrame(*text) == input, input);
    checkWebSocketFraming(*text);
  }

  // A binary frame.
  auto bin = decodeFrame(input, true);
  FUZZ_CHECK(bin && bin->binary && bin->type == EioType::kMessage && bin->data == input, input);
  FUZZ_CHECK(encodeFrame(*bin) == input, input);

  // A polling body.
  if (auto packets = decodePayload(input)) {
    FUZZ_CHECK(!packets->empty(), input);
    bool allText = true;
    for (const auto& p : *packets) {
      FUZZ_CHECK(static_cast<int>(p.type) <= 6, input);
      FUZZ_CHECK(!p.binary || p.type == EioType::kMessage, input);
      if (p.binary) {
        allText = false;
      } else {
        FUZZ_CHECK(p.data.find('\x1e') == std::string::npos, input);
      }
      checkWebSocketFraming(p);
    }
    std::string body;
    for (const auto& p : *packets) appendToPayload(body, p);
    if (allText) FUZZ_CHECK(body == input, body);
    auto again = decodePayload(body);
    FUZZ_CHECK(again && again->size() == packets->size(), body);
    for (std::size_t i = 0; i < packets->size(); ++i) FUZZ_CHECK(same((*again)[i], (*packets)[i]), body);
    std::string body2;
    for (const auto& p : *again) appendToPayload(body2, p);
    FUZZ_CHECK(body2 == body, body2);
    FUZZ_CHECK(!decodePayload(input, packets->size() - 1).has_value(), input);
    FUZZ_CHECK(decodePayload(input, packets->size()).has_value(), input);
  }

  if (validUtf8(input)) {
    std::string open = encodeOpenData(input, (size & 1) != 0, 25000, 20000, size);
    auto v = parseJson(open);
    FUZZ_CHECK(v && v->is_object(), open);
    const auto& o = v->as_object();
    FUZZ_CHECK(str(o.at("sid")) == input, open);
    FUZZ_CHECK(o.at("upgrades").as_array().size() == (size & 1), open);
    FUZZ_CHECK(o.at("maxPayload").to_number<uint64_t>() == size, open);
  }
  return 0;
}

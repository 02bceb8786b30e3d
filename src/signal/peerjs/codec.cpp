#include "signal/peerjs/codec.hpp"

#include <openssl/rand.h>

#include <array>
#include <cmath>
#include <stdexcept>

#include <boost/json.hpp>

#include "common/json.hpp"
#include "common/json_text.hpp"
#include "http/handler.hpp"

namespace kaiwa::signal::peerjs {
namespace json = boost::json;
namespace {

constexpr std::size_t kMaxIdBytes = 256;

MessageType typeOf(std::string_view name) {
  if (name == "HEARTBEAT") return MessageType::kHeartbeat;
  if (name == "OFFER") return MessageType::kOffer;
  if (name == "ANSWER") return MessageType::kAnswer;
  if (name == "CANDIDATE") return MessageType::kCandidate;
  if (name == "LEAVE") return MessageType::kLeave;
  if (name == "EXPIRE") return MessageType::kExpire;
  return MessageType::kUnknown;
}

}  // namespace

std::optional<Message> decode(std::string_view text) {
  json::parse_options opts;
  opts.max_depth = 32;
  std::error_code ec;
  json::monotonic_resource mr;
  json::value root = json::parse(json::string_view(text.data(), text.size()), ec, &mr, opts);
  if (ec || !root.is_object()) return std::nullopt;
  const json::object& obj = root.get_object();
  const json::value* type = obj.if_contains("type");
  if (!type || !type->is_string()) return std::nullopt;
  Message m;
  m.typeName.assign(type->get_string().data(), type->get_string().size());
  m.type = typeOf(m.typeName);
  if (const json::value* dst = obj.if_contains("dst"); dst && dst->is_string()) {
    m.dst.emplace(dst->get_string().data(), dst->get_string().size());
  }
  if (const json::value* payload = obj.if_contains("payload")) {
    // A number JSON cannot write back (1e400 parses as infinity) would be relayed as something else: drop it.
    if (!common::finiteNumbers(*payload)) return std::nullopt;
    m.payload = json::serialize(*payload);
  }
  return m;
}

std::string_view toString(MessageType type) {
  switch (type) {
    case MessageType::kOffer:
      return "OFFER";
    case MessageType::kAnswer:
      return "ANSWER";
    case MessageType::kCandidate:
      return "CANDIDATE";
    case MessageType::kLeave:
      return "LEAVE";
    case MessageType::kExpire:
      return "EXPIRE";
    case MessageType::kHeartbeat:
    case MessageType::kUnknown:
      return {};
  }
  return {};
}

std::string encodeOpen() { return R"({"type":"OPEN"})"; }

std::string encodeIdTaken() { return R"({"type":"ID-TAKEN","payload":{"msg":"ID is taken"}})"; }

std::string encodeError(std::string_view msg) {
  std::string out = R"({"type":"ERROR","payload":{"msg":)";
  common::appendJsonString(out, msg);
  out += "}}";
  return out;
}

std::string encodeRelay(std::string_view type, std::string_view src, std::string_view dst, std::string_view payload) {
  std::string out;
  out.reserve(40 + type.size() + src.size() + dst.size() + payload.size());
  out += R"({"type":)";
  common::appendJsonString(out, type);
  out += R"(,"src":)";
  common::appendJsonString(out, src);
  out += R"(,"dst":)";
  common::appendJsonString(out, dst);
  if (!payload.empty()) {
    out += R"(,"payload":)";
    out += payload;
  }
  out += '}';
  return out;
}

bool validId(std::string_view id) {
  if (id.empty() || id.size() > kMaxIdBytes) return false;
  for (unsigned char c : id) {
    if (c < 0x20 || c >= 0x7F || c == '"' || c == '\\') return false;
  }
  return true;
}

std::string randomId() {
  std::array<uint8_t, 16> b{};
  if (RAND_bytes(b.data(), static_cast<int>(b.size())) != 1) throw std::runtime_error("RAND_bytes failed");
  b[6] = static_cast<uint8_t>((b[6] & 0x0F) | 0x40);  // version 4
  b[8] = static_cast<uint8_t>((b[8] & 0x3F) | 0x80);  // variant 10
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(36);
  for (std::size_t i = 0; i < b.size(); ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) out += '-';
    out += kHex[b[i] >> 4];
    out += kHex[b[i] & 0x0F];
  }
  return out;
}

std::optional<LinkHello> decodeLinkHello(std::string_view text) {
  if (text == kLinkPeers) return LinkHello{true, {}, {}, {}};
  if (!text.starts_with(kLinkOpen)) return std::nullopt;
  http::Request req;
  req.query = text.substr(kLinkOpen.size());
  return LinkHello{false, req.queryParam("key"), req.queryParam("id"), req.queryParam("token")};
}

}  // namespace kaiwa::signal::peerjs

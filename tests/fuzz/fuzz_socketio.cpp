// fuzz_socketio: the Socket.IO v5 packet codec of signal/socketio/codec.hpp on arbitrary bytes.
// The input is the text of one packet, optionally followed by "\n" and attachments (split at each further
// "\n"), which go through a BinaryAssembler (maxBytes 64). Checks:
// - an accepted packet obeys the header's rules (type; "<n>-" only for binary types, 1 <= n <= max;
//   namespace starting with '/' without ',' (it ends at one, or with the packet); ack id < 2^53; the data shape
//   of its type; finite numbers);
// - what small limits (2 attachments, depth 4) accept, the default limits accept too, as the same packet;
// - the assembler completes a binary packet with exactly its declared attachments, in order, within maxBytes,
//   and refuses an attachment with nothing waiting;
// - the completed packet, encoded with encodePacket, decodes to an equal packet (doubles within a few ULPs:
//   Boost.JSON 1.81 parses doubles imprecisely, docs/fuzzing.md), with the promised type digit and "<n>-";
// - an EVENT (ACK) in the default namespace encoded with encodeEvent (encodeAck) from its re-serialized
//   arguments decodes to the same packet;
// - encodeEvent with the packet text as event name (when UTF-8) decodes back to that name and ack id;
// - decodeRelayEvent (the one-pass hot path) takes only what decodePacket accepts, as an EVENT of the default
//   namespace with the same ack id, and writes for the receivers exactly what the DOM path would relay (parsed
//   and compared); and it takes every directed or broadcast event that it should.
#include <boost/json.hpp>

#include <bit>
#include <cmath>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/json.hpp"
#include "fuzz_util.hpp"
#include "signal/socketio/codec.hpp"

namespace json = boost::json;
using namespace kaiwa::signal::socketio;
using kaiwa::fuzz::validUtf8;

namespace {

constexpr uint64_t kMaxAckId = (uint64_t{1} << 53) - 1;

bool closeDoubles(double a, double b) {
  if (a == b) return true;
  if (std::signbit(a) != std::signbit(b)) return false;
  auto ia = std::bit_cast<int64_t>(a);
  auto ib = std::bit_cast<int64_t>(b);
  return (ia > ib ? ia - ib : ib - ia) <= 4;
}

bool sameJson(const json::value& a, const json::value& b) {
  if (a.kind() != b.kind()) return false;
  switch (a.kind()) {
    case json::kind::double_:
      return closeDoubles(a.get_double(), b.get_double());
    case json::kind::array: {
      const auto& x = a.get_array();
      const auto& y = b.get_array();
      if (x.size() != y.size()) return false;
      for (std::size_t i = 0; i < x.size(); ++i) {
        if (!sameJson(x[i], y[i])) return false;
      }
      return true;
    }
    case json::kind::object: {
      const auto& x = a.get_object();
      const auto& y = b.get_object();
      if (x.size() != y.size()) return false;
      auto i = x.begin();
      auto j = y.begin();
      for (; i != x.end(); ++i, ++j) {
        if (i->key() != j->key() || !sameJson(i->value(), j->value())) return false;
      }
      return true;
    }
    default:
      return a == b;
  }
}

bool samePacket(const SioPacket& a, const SioPacket& b) {
  if (a.type != b.type || a.nsp != b.nsp || a.ackId != b.ackId || a.attachments != b.attachments) {
    return false;
  }
  if (a.buffers != b.buffers || a.data.has_value() != b.data.has_value()) return false;
  return !a.data || sameJson(*a.data, *b.data);
}

bool isBinary(SioType t) { return t == SioType::kBinaryEvent || t == SioType::kBinaryAck; }

void checkRules(const SioPacket& p, const SioLimits& limits, std::string_view input) {
  FUZZ_CHECK(static_cast<int>(p.type) <= 6, input);
  if (isBinary(p.type)) {
    FUZZ_CHECK(p.attachments >= 1 && p.attachments <= limits.maxAttachments, input);
  } else {
    FUZZ_CHECK(p.attachments == 0, input);
  }
  FUZZ_CHECK(p.buffers.empty(), input);
  FUZZ_CHECK(!p.nsp.empty() && p.nsp[0] == '/' && p.nsp.find(',') == std::string::npos, input);
  FUZZ_CHECK(!p.ackId || *p.ackId <= kMaxAckId, input);
  if (p.data) FUZZ_CHECK(kaiwa::common::finiteNumbers(*p.data), input);
  const auto& d = p.data;
  switch (p.type) {
    case SioType::kConnect:
      FUZZ_CHECK(!d || d->is_object(), input);
      break;
    case SioType::kDisconnect:
      FUZZ_CHECK(!d, input);
      break;
    case SioType::kEvent:
    case SioType::kBinaryEvent:
      FUZZ_CHECK(d && d->is_array() && !d->get_array().empty() && d->get_array()[0].is_string(), input);
      break;
    case SioType::kAck:
    case SioType::kBinaryAck:
      FUZZ_CHECK(d && d->is_array(), input);
      break;
    case SioType::kConnectError:
      FUZZ_CHECK(d && (d->is_object() || d->is_string()), input);
      break;
  }
}

void checkRoundTrip(const SioPacket& p, std::string_view input) {
  std::string text = encodePacket(p);
  FUZZ_CHECK(!text.empty() && text[0] == static_cast<char>('0' + static_cast<int>(p.type)), text);
  if (isBinary(p.type)) {
    std::string count = std::to_string(p.buffers.size()) + "-";
    FUZZ_CHECK(text.compare(1, count.size(), count) == 0, text);
  }
  SioLimits wide;
  wide.maxAttachments = p.buffers.size() + 16;
  auto back = decodePacket(text, wide);
  FUZZ_CHECK(back.has_value(), text);
  back->buffers = p.buffers;
  FUZZ_CHECK(samePacket(*back, p), text);

  // The hot-path encoders agree with encodePacket's reading.
  if (p.type == SioType::kEvent && p.nsp == "/") {
    const auto& args = p.data->get_array();
    std::string rest;
    for (std::size_t i = 1; i < args.size(); ++i) {
      if (i > 1) rest.push_back(',');
      rest += json::serialize(args[i]);
    }
    const auto& name = args[0].get_string();
    std::string ev = encodeEvent(std::string_view(name.data(), name.size()), rest, p.ackId);
    auto e = decodePacket(ev, wide);
    FUZZ_CHECK(e && samePacket(*e, p), ev);
  }
  if (p.type == SioType::kAck && p.nsp == "/" && p.ackId) {
    std::string args;
    for (const auto& v : p.data->get_array()) {
      if (!args.empty()) args.push_back(',');
      args += json::serialize(v);
    }
    std::string ack = encodeAck(*p.ackId, args);
    auto a = decodePacket(ack, wide);
    FUZZ_CHECK(a && samePacket(*a, p), ack);
  }
}

// What the DOM path relays for the packet `p` under `rule`: the arguments with the name as relayed and `from` set.
json::array relayedArgs(const SioPacket& p, const EventRule& rule, std::string_view from) {
  json::array args = p.data->get_array();
  args[0] = json::string(rule.relayedAs);
  if (args.size() < 2 || !args[1].is_object()) return args;
  const json::object& body = args[1].get_object();
  json::object out;
  if (rule.route == EventRoute::kDirected) out.emplace("from", from);
  for (const auto& kv : body) {
    if (kv.key() == "from" || (kv.key() == "to" && rule.route == EventRoute::kDirected)) continue;
    out.emplace(kv.key(), kv.value());
  }
  if (rule.route == EventRoute::kBroadcast) out.emplace("from", from);
  args[1] = std::move(out);
  return args;
}

void checkRelay(std::string_view text, const std::optional<SioPacket>& p, bool relayUnknown) {
  constexpr std::string_view kFrom = "AAAAAAAAAAAAAAAAAAA_";
  auto r = decodeRelayEvent(text, kFrom, relayUnknown);
  if (r) {
    FUZZ_CHECK(p && p->type == SioType::kEvent && p->nsp == "/" && p->attachments == 0, text);
    FUZZ_CHECK(r->ackId == p->ackId, text);
    const auto& args = p->data->get_array();
    FUZZ_CHECK(r->event == std::string_view(args[0].get_string()), text);
    EventRule rule = ruleOf(r->event, relayUnknown);
    FUZZ_CHECK(rule.route != EventRoute::kOther && rule.route == r->route && rule.relayedAs == r->relayedAs, text);
    if (rule.route == EventRoute::kDirected) {
      const json::value* to =
          args.size() >= 2 && args[1].is_object() ? args[1].get_object().if_contains("to") : nullptr;
      FUZZ_CHECK(to && to->is_string() && r->target == std::string_view(to->get_string()), text);
    }
    FUZZ_CHECK(r->frame.size() > 2 && r->frame.compare(0, 2, "42") == 0, r->frame);
    auto relayed = decodePacket(std::string_view(r->frame).substr(1));
    FUZZ_CHECK(relayed && relayed->type == SioType::kEvent && relayed->nsp == "/" && !relayed->ackId, r->frame);
    FUZZ_CHECK(sameJson(*relayed->data, relayedArgs(*p, rule, kFrom)), r->frame);
    return;
  }
  // Refused: then it was not a plain relayed event, or not one the fast path takes.
  if (!p || p->type != SioType::kEvent || p->nsp != "/" || text.size() < 2 || text[1] == '/') return;
  std::size_t i = 1;
  while (i < text.size() && text[i] >= '0' && text[i] <= '9') ++i;
  if (i >= text.size() || text[i] != '[') return;
  const auto& args = p->data->get_array();
  EventRule rule = ruleOf(std::string_view(args[0].get_string()), relayUnknown);
  const json::object* body = args.size() >= 2 ? args[1].if_object() : nullptr;
  if (rule.route == EventRoute::kDirected) {
    const json::value* to = body ? body->if_contains("to") : nullptr;
    FUZZ_CHECK(!to || !to->is_string(), text);
  } else if (rule.route == EventRoute::kBroadcast) {
    FUZZ_CHECK(body && body->contains("_placeholder"), text);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  std::size_t nl = input.find('\n');
  std::string_view text = input.substr(0, nl);
  std::vector<std::string> attachments;
  if (nl != std::string_view::npos) {
    std::string_view rest = input.substr(nl + 1);
    while (true) {
      std::size_t next = rest.find('\n');
      attachments.emplace_back(rest.substr(0, next));
      if (next == std::string_view::npos) break;
      rest.remove_prefix(next + 1);
    }
  }

  SioLimits defaults;
  SioLimits small;
  small.maxAttachments = 2;
  small.maxJsonDepth = 4;
  auto p = decodePacket(text, defaults);
  auto q = decodePacket(text, small);
  FUZZ_CHECK(!q || p, text);
  if (q) {
    checkRules(*q, small, text);
    FUZZ_CHECK(samePacket(*p, *q), text);
  }

  // The assembler with a byte budget of 64: attachments from the input, then one stray attachment.
  BinaryAssembler assembler(64);
  SioPacket done;
  FUZZ_CHECK(assembler.add("stray", done) == BinaryAssembler::Result::kError, text);
  if (p) {
    checkRules(*p, defaults, text);
    std::optional<SioPacket> complete = assembler.start(*p);
    FUZZ_CHECK(complete.has_value() == (p->attachments == 0), text);
    FUZZ_CHECK(assembler.waiting() == (p->attachments != 0), text);
    std::size_t bytes = 0;
    std::size_t used = 0;
    for (const std::string& a : attachments) {
      if (!assembler.waiting()) break;
      ++used;
      bytes += a.size();
      auto r = assembler.add(a, done);
      if (bytes > 64) {
        FUZZ_CHECK(r == BinaryAssembler::Result::kError && !assembler.waiting(), text);
        break;
      }
      if (used < p->attachments) {
        FUZZ_CHECK(r == BinaryAssembler::Result::kNeedMore && assembler.waiting(), text);
      } else {
        FUZZ_CHECK(r == BinaryAssembler::Result::kComplete && !assembler.waiting(), text);
        FUZZ_CHECK(done.buffers.size() == p->attachments, text);
        for (std::size_t i = 0; i < used; ++i) FUZZ_CHECK(done.buffers[i] == attachments[i], text);
        complete = std::move(done);
      }
    }
    if (complete) {
      FUZZ_CHECK(complete->buffers.size() == complete->attachments, text);
      checkRoundTrip(*complete, text);
    }
    if (!assembler.waiting()) FUZZ_CHECK(assembler.add("after", done) == BinaryAssembler::Result::kError, text);
  }

  checkRelay(text, p, false);
  checkRelay(text, p, true);

  if (validUtf8(text)) {
    std::string ev = encodeEvent(text, "1,null", size);
    auto e = decodePacket(ev);
    FUZZ_CHECK(e && e->type == SioType::kEvent && e->data->get_array().size() == 3, ev);
    const auto& name = e->data->get_array()[0].get_string();
    FUZZ_CHECK(std::string_view(name.data(), name.size()) == text, ev);
    FUZZ_CHECK(e->ackId == uint64_t{size}, ev);
  }
  return 0;
}

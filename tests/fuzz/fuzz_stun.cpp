// fuzz_stun: the STUN message parser (stun/message).
//  1. Message::parse on the raw input never crashes; a parsed message's attributes lie inside the input, and every
//     accessor (text, u32, xorAddress, errorCode, integrity checks) stays in bounds.
//  2. Re-building the parsed attributes (those before MESSAGE-INTEGRITY) with the Builder gives a message that
//     parses again with the same type, transaction id and attribute values (decode → encode → decode).
//  3. SASLprep (stun/saslprep) of USERNAME and REALM never crashes and never lets a NUL through.
#include <array>
#include <cstdint>
#include <cstring>
#include <span>

#include "fuzz_util.hpp"
#include "stun/message.hpp"
#include "stun/saslprep.hpp"

using namespace kaiwa;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const uint8_t> in(data, size);
  (void)stun::Message::framedLength(in);
  auto m = stun::Message::parse(in);
  if (!m) return 0;
  FUZZ_CHECK(m->bytes().size() == size);
  for (const auto& a : m->attributes()) {
    FUZZ_CHECK(a.offset + a.length <= size);
    (void)m->xorAddressAt(a);
  }
  // SASLprep of USERNAME/REALM, as the TURN server does it.
  for (uint16_t type : {stun::attr::kUsername, stun::attr::kRealm}) {
    auto text = m->text(type);
    if (!text) continue;
    auto prepped = stun::saslprep(*text);
    if (prepped) FUZZ_CHECK(prepped->find('\0') == std::string::npos);
  }
  (void)m->u32(stun::attr::kLifetime);
  (void)m->errorCode();
  const uint8_t key[] = {'k', 'e', 'y'};
  (void)m->verifyIntegrity(key);
  (void)m->verifyIntegritySha256(key);

  static std::array<uint8_t, 70000> out;
  stun::Builder b(out, m->type(), m->transactionId());
  size_t kept = 0;
  for (const auto& a : m->attributes()) {
    if (a.type == stun::attr::kMessageIntegrity || a.type == stun::attr::kMessageIntegritySha256 ||
        a.type == stun::attr::kFingerprint)
      break;
    b.attribute(a.type, m->bytes().subspan(a.offset, a.length));
    ++kept;
  }
  FUZZ_CHECK(b.ok());
  auto again = stun::Message::parse(b.bytes());
  FUZZ_CHECK(again.has_value());
  FUZZ_CHECK(again->type() == m->type() && again->transactionId() == m->transactionId());
  FUZZ_CHECK(again->attributes().size() == kept);
  for (size_t i = 0; i < kept; ++i) {
    const auto& x = m->attributes()[i];
    const auto& y = again->attributes()[i];
    FUZZ_CHECK(x.type == y.type && x.length == y.length);
    FUZZ_CHECK(std::memcmp(m->bytes().data() + x.offset, again->bytes().data() + y.offset, x.length) == 0);
  }
  return 0;
}

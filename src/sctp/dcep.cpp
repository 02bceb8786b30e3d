#include "sctp/dcep.hpp"

namespace kaiwa::sctp {

namespace {

uint16_t read16(std::span<const uint8_t> b, size_t at) { return static_cast<uint16_t>(b[at] << 8 | b[at + 1]); }
uint32_t read32(std::span<const uint8_t> b, size_t at) {
  return uint32_t{b[at]} << 24 | uint32_t{b[at + 1]} << 16 | uint32_t{b[at + 2]} << 8 | b[at + 3];
}

}  // namespace

std::optional<ChannelParams> parseOpen(std::span<const uint8_t> m) {
  if (m.size() < 12 || m[0] != kDataChannelOpen) return std::nullopt;
  ChannelParams p;
  const uint8_t type = m[1];
  p.ordered = (type & 0x80) == 0;
  switch (type & 0x7F) {
    case 0x00:
      p.reliability = Reliability::kReliable;
      break;
    case 0x01:
      p.reliability = Reliability::kMaxRetransmits;
      break;
    case 0x02:
      p.reliability = Reliability::kMaxLifetime;
      break;
    default:
      return std::nullopt;
  }
  p.priority = read16(m, 2);
  p.reliabilityParameter = read32(m, 4);
  const size_t labelLength = read16(m, 8);
  const size_t protocolLength = read16(m, 10);
  if (m.size() - 12 < labelLength + protocolLength) return std::nullopt;
  p.label.assign(reinterpret_cast<const char*>(m.data() + 12), labelLength);
  p.protocol.assign(reinterpret_cast<const char*>(m.data() + 12 + labelLength), protocolLength);
  return p;
}

std::vector<uint8_t> writeOpen(const ChannelParams& p) {
  const auto labelLength = static_cast<uint16_t>(std::min<size_t>(p.label.size(), 0xFFFF));
  const auto protocolLength = static_cast<uint16_t>(std::min<size_t>(p.protocol.size(), 0xFFFF));
  uint8_t type = p.reliability == Reliability::kReliable         ? 0x00
                 : p.reliability == Reliability::kMaxRetransmits ? 0x01
                                                                 : 0x02;
  if (!p.ordered) type |= 0x80;
  const uint32_t r = p.reliability == Reliability::kReliable ? 0 : p.reliabilityParameter;
  std::vector<uint8_t> m{kDataChannelOpen,
                         type,
                         static_cast<uint8_t>(p.priority >> 8),
                         static_cast<uint8_t>(p.priority),
                         static_cast<uint8_t>(r >> 24),
                         static_cast<uint8_t>(r >> 16),
                         static_cast<uint8_t>(r >> 8),
                         static_cast<uint8_t>(r),
                         static_cast<uint8_t>(labelLength >> 8),
                         static_cast<uint8_t>(labelLength),
                         static_cast<uint8_t>(protocolLength >> 8),
                         static_cast<uint8_t>(protocolLength)};
  m.insert(m.end(), p.label.begin(), p.label.begin() + labelLength);
  m.insert(m.end(), p.protocol.begin(), p.protocol.begin() + protocolLength);
  return m;
}

}  // namespace kaiwa::sctp

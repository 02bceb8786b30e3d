#pragma once
// The Data Channel Establishment Protocol (RFC 8832) and the payload protocol identifiers of WebRTC data channels
// (RFC 8831 section 8): what a browser sends on a new SCTP stream to open a channel, and kaiwa's acknowledgement.
// Sans-I/O; a parse of untrusted bytes returns nullopt, never throws.
//
//   0                   1                   2                   3
//   0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |  Message Type |  Channel Type |            Priority           |
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |                    Reliability Parameter                      |
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |         Label Length          |       Protocol Length         |
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |  Label ...  |  Protocol ...                                    |
//
// DATA_CHANNEL_OPEN is message type 0x03; DATA_CHANNEL_ACK is the single byte 0x02.
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace kaiwa::sctp {

// Payload protocol identifiers (RFC 8831 section 8). An empty message travels as one byte with an "empty" PPID.
enum class Ppid : uint32_t {
  kDcep = 50,
  kString = 51,
  kBinary = 53,
  kStringEmpty = 56,
  kBinaryEmpty = 57,
};

enum class Reliability : uint8_t {
  kReliable,        // retransmitted until delivered
  kMaxRetransmits,  // given up after `reliabilityParameter` retransmissions
  kMaxLifetime,     // given up after `reliabilityParameter` milliseconds
};

struct ChannelParams {
  bool ordered = true;
  Reliability reliability = Reliability::kReliable;
  uint32_t reliabilityParameter = 0;
  uint16_t priority = 0;
  std::string label{};
  std::string protocol{};
};

inline constexpr uint8_t kDataChannelOpen = 0x03;
inline constexpr uint8_t kDataChannelAck = 0x02;

// A DATA_CHANNEL_OPEN; nullopt if the bytes are not one (wrong type, unknown channel type, lengths past the end).
std::optional<ChannelParams> parseOpen(std::span<const uint8_t> message);
std::vector<uint8_t> writeOpen(const ChannelParams& params);
inline bool isAck(std::span<const uint8_t> message) { return message.size() >= 1 && message[0] == kDataChannelAck; }

}  // namespace kaiwa::sctp

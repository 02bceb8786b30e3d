#pragma once
// RTP packets (RFC 3550 section 5.1) with header extensions (RFC 8285): a bounds-checked view over received bytes,
// in-place rewrites for forwarding, the first-byte demultiplexer of RFC 7983 / RFC 5761, and the values of the
// header extensions an SFU routes by. Nothing here allocates or throws.
//
//   0                   1                   2                   3
//   0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |V=2|P|X|  CC   |M|     PT      |       sequence number         |
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |                           timestamp                           |
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |           synchronization source (SSRC) identifier            |
//  +=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+
//  |            contributing source (CSRC) identifiers             |
//  |                             ....                              |
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |   profile (0xBEDE or 0x100x)  |     length (32-bit words)     |  if X
//  |                  extension elements ....                      |
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |  payload ...                  |  padding, last byte = count   |  padding if P
//
// One-byte elements (profile 0xBEDE): a byte `ID(4) L(4)` then L+1 value bytes; a byte with ID 0 is one byte of
// padding, ID 15 stops the walk. Two-byte elements (profile 0x100 in the top 12 bits, "appbits" below): `ID(8)
// length(8)` then length value bytes; ID 0 is a padding byte.
#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

namespace kaiwa::rtp {

inline constexpr size_t kFixedHeaderSize = 12;
inline constexpr uint16_t kOneByteProfile = 0xBEDE;
inline constexpr uint16_t kTwoByteProfileMask = 0xFFF0;
inline constexpr uint16_t kTwoByteProfile = 0x1000;
// More elements than this make the packet malformed for kaiwa: Chromium sends at most about eight, and a bound keeps
// the view a fixed size (a rewrite must see every element, so they are not silently cut off either).
inline constexpr size_t kMaxExtensions = 16;

enum class ParseError : uint8_t {
  kTooShort,          // shorter than the fixed header
  kTooLong,           // longer than 65535 bytes, which no UDP datagram is
  kBadVersion,        // V != 2
  kCsrcOverrun,       // the CSRC list runs past the end
  kExtensionOverrun,  // the extension header or block runs past the end
  kBadExtension,      // an element runs past its block, or more than kMaxExtensions
  kBadPadding,        // P set with a count of 0 or more than the payload holds
};
std::string_view toString(ParseError e);

enum class ExtensionForm : uint8_t { kNone, kOneByte, kTwoByte, kOther };

struct ExtensionElement {
  uint8_t id;
  uint8_t length;   // of the value, in bytes
  uint16_t offset;  // of the value, from the start of the packet
};

// A parsed packet: where each part is; the bytes stay the caller's and must outlive the view.
class Packet {
 public:
  static std::optional<Packet> parse(std::span<const uint8_t> bytes, ParseError* error = nullptr);

  std::span<const uint8_t> bytes() const { return bytes_; }
  bool hasPadding() const { return (bytes_[0] & 0x20) != 0; }
  bool hasExtension() const { return (bytes_[0] & 0x10) != 0; }
  uint8_t csrcCount() const { return bytes_[0] & 0x0F; }
  uint32_t csrc(size_t i) const;
  bool marker() const { return (bytes_[1] & 0x80) != 0; }
  uint8_t payloadType() const { return bytes_[1] & 0x7F; }
  uint16_t sequenceNumber() const { return uint16_t(bytes_[2] << 8 | bytes_[3]); }
  uint32_t timestamp() const;
  uint32_t ssrc() const;

  // Header size including CSRCs and the extension block.
  size_t headerSize() const { return payloadOffset_; }
  std::span<const uint8_t> payload() const { return bytes_.subspan(payloadOffset_, payloadSize_); }
  size_t paddingSize() const { return bytes_.size() - payloadOffset_ - payloadSize_; }

  ExtensionForm extensionForm() const { return form_; }
  // The profile field of the extension header (0 without one): the "defined by profile" bits of non-8285 forms.
  uint16_t extensionProfile() const { return profile_; }
  std::span<const ExtensionElement> extensions() const { return {elements_.data(), count_}; }
  // The value of the element with that id (the first one if repeated); nullopt if absent or no RFC 8285 form.
  std::optional<std::span<const uint8_t>> extension(uint8_t id) const;

 private:
  friend class MutablePacket;
  std::span<const uint8_t> bytes_;
  uint16_t payloadOffset_ = 0;
  uint16_t payloadSize_ = 0;
  uint16_t profile_ = 0;
  ExtensionForm form_ = ExtensionForm::kNone;
  uint8_t count_ = 0;
  std::array<ExtensionElement, kMaxExtensions> elements_{};
};

// Extension id translation for one forwarding leg: the publisher's ids to the subscriber's. Identity by default;
// an id mapped to 0 is dropped (its bytes become padding, which RFC 8285 allows anywhere in the block).
class ExtensionIdMap {
 public:
  ExtensionIdMap();
  void set(uint8_t from, uint8_t to) { to_[from] = to; }
  void drop(uint8_t id) { to_[id] = 0; }
  uint8_t operator[](uint8_t from) const { return to_[from]; }

 private:
  std::array<uint8_t, 256> to_;
};

// A packet parsed over writable bytes, rewritten in place for forwarding: no size change, no allocation.
class MutablePacket {
 public:
  static std::optional<MutablePacket> parse(std::span<uint8_t> bytes, ParseError* error = nullptr);

  const Packet& view() const { return packet_; }
  std::span<uint8_t> bytes() const { return bytes_; }

  void setMarker(bool m);
  void setPayloadType(uint8_t pt);  // the low 7 bits
  void setSequenceNumber(uint16_t seq);
  void setTimestamp(uint32_t ts);
  void setSsrc(uint32_t ssrc);
  // Rewrites every element's id through `map`. False, and nothing changed, if a new id does not fit the packet's
  // form (one-byte ids are 1..14) — the caller then drops the packet or forwards it unmapped.
  bool remapExtensionIds(const ExtensionIdMap& map);
  // The writable value of an element (to rewrite e.g. a transport-wide sequence number); nullopt if absent.
  std::optional<std::span<uint8_t>> extension(uint8_t id);

 private:
  std::span<uint8_t> bytes_;
  Packet packet_;
};

// RFC 7983 (with RFC 5764's ranges) on the first byte, and RFC 5761 on the second for rtcp-mux.
enum class DatagramKind : uint8_t { kStun, kDtls, kRtp, kRtcp, kOther };
DatagramKind classify(std::span<const uint8_t> datagram);

// Header extension values (the element's value bytes, as Packet::extension returns them).
// sdes:mid (RFC 8843 section 15.2): the identification tag as sent; nullopt if empty.
std::optional<std::string_view> parseMid(std::span<const uint8_t> value);
// rtp-stream-id and repaired-rtp-stream-id (RFC 8852): one or more characters of RFC 8851's rid-id (letters,
// digits, '-' and '_'); nullopt otherwise.
std::optional<std::string_view> parseRid(std::span<const uint8_t> value);
// ssrc-audio-level (RFC 6464): the V flag and the level in -dBov (0 loudest, 127 silence).
struct AudioLevel {
  bool voiceActivity;
  uint8_t level;
};
std::optional<AudioLevel> parseAudioLevel(std::span<const uint8_t> value);
// transport-wide-cc-01 (draft-holmer-rmcat-transport-wide-cc-extensions): a 16-bit transport sequence number.
std::optional<uint16_t> parseTransportSequenceNumber(std::span<const uint8_t> value);

// RTX (RFC 4588 section 4): writes the retransmission of `original` into `out` — same header and extensions with
// the RTX SSRC, payload type and sequence number, the original sequence number (OSN) before the payload, no
// padding. Returns the length, or nullopt if `out` is too small.
std::optional<size_t> writeRtx(const Packet& original, uint32_t rtxSsrc, uint8_t rtxPayloadType, uint16_t rtxSequence,
                               std::span<uint8_t> out);
// The original sequence number and payload of an RTX packet (nullopt if the payload is shorter than the OSN).
struct RtxPayload {
  uint16_t originalSequence;
  std::span<const uint8_t> payload;
};
std::optional<RtxPayload> parseRtx(const Packet& rtx);
// The reverse of writeRtx (RFC 4588 section 4): writes the original packet an RTX packet carries into `out` — the
// RTX packet's header and extensions with the original SSRC, the OSN as sequence number, the associated payload type
// (the RTX type's apt), no padding. Returns the length, or nullopt if the RTX payload is shorter than the OSN or
// `out` is too small.
std::optional<size_t> unwrapRtx(const Packet& rtx, uint32_t ssrc, uint8_t payloadType, std::span<uint8_t> out);

}  // namespace kaiwa::rtp

#pragma once
// H.264 for recordings: RTP payloads (RFC 6184, packetization mode 1 and mode 0: single NAL units, STAP-A, FU-A) back
// into access units in the form Matroska's V_MPEG4/ISO/AVC and MP4's avc1 carry (each NAL unit behind a 4-byte
// big-endian length, no Annex-B start codes), the sequence parameter set's picture size, and the decoder
// configuration record (`avcC`, ISO/IEC 14496-15 section 5.3.3) built from the stream's SPS and PPS. Every input is a
// publisher's bytes: a malformed payload is refused, never read past its end.
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

namespace kaiwa::record::h264 {

enum NalType : uint8_t {
  kNalSlice = 1,
  kNalIdr = 5,
  kNalSei = 6,
  kNalSps = 7,
  kNalPps = 8,
  kNalStapA = 24,
  kNalFuA = 28,
};

// What one RTP payload is, without copying it.
struct PayloadInfo {
  bool nalStart = false;  // it begins a NAL unit: a single NAL unit, a STAP-A, or an FU-A with the S bit
};

// Checks one payload: a single NAL unit (types 1-23), a STAP-A whose aggregated units fill it exactly, or an FU-A
// (a fragment of a unit of types 1-23). Other types (STAP-B, MTAP, FU-B: interleaved mode; 0 and 29-31) and empty
// or truncated payloads are nullopt.
std::optional<PayloadInfo> inspect(std::span<const uint8_t> payload);

// Builds one access unit from its packets' payloads, in sequence order.
class AccessUnitBuilder {
 public:
  void clear();
  // Appends a payload; false if it does not fit what came before (a fragment with no start, a new unit while a
  // fragmented one is open) or is malformed. The unit is then broken: drop it.
  bool add(std::span<const uint8_t> payload);
  // Closes the unit; false if a fragmented NAL unit was left without its end or the unit holds no NAL unit.
  bool finish();
  // Length-prefixed NAL units (valid after finish()).
  std::span<const uint8_t> data() const { return out_; }
  // An IDR picture with its SPS and PPS in the same unit: a file (or a decoder) can start at it.
  bool keyframe() const { return idr_ && sps_ && pps_; }

 private:
  void startNal(uint8_t header);
  void endNal();
  void note(uint8_t type);

  std::vector<uint8_t> out_;
  bool fragmentOpen_ = false;
  size_t nalAt_ = 0;  // where the open NAL unit's length goes
  bool idr_ = false;
  bool sps_ = false;
  bool pps_ = false;
  size_t nals_ = 0;
};

struct PictureSize {
  uint16_t width = 0;
  uint16_t height = 0;
};

// The cropped picture size a sequence parameter set (a whole NAL unit, its header byte first) declares
// (ITU-T H.264 section 7.3.2.1.1); nullopt if it is malformed or not an SPS.
std::optional<PictureSize> spsPictureSize(std::span<const uint8_t> sps);

// What a file's header needs from a keyframe: the decoder configuration record and the picture size.
struct AvcConfig {
  std::vector<uint8_t> avcC;
  PictureSize size;
};

// From an access unit as AccessUnitBuilder writes it: the first SPS and PPS in it; nullopt if either is missing or
// the SPS cannot be read.
std::optional<AvcConfig> configOf(std::span<const uint8_t> accessUnit);

}  // namespace kaiwa::record::h264

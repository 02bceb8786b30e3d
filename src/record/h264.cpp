#include "record/h264.hpp"

namespace kaiwa::record::h264 {

namespace {

constexpr uint8_t kForbiddenAndNri = 0xE0;  // the NAL header's F bit and NRI, kept when a fragmented unit is rebuilt
constexpr uint8_t kTypeMask = 0x1F;
constexpr uint8_t kFuStart = 0x80;
constexpr uint8_t kFuEnd = 0x40;
constexpr size_t kLengthSize = 4;  // the avcC's lengthSizeMinusOne is 3

uint8_t typeOf(uint8_t header) { return header & kTypeMask; }
bool isSingle(uint8_t type) { return type >= 1 && type <= 23; }

void putLength(std::vector<uint8_t>& out, size_t at, size_t length) {
  for (size_t i = 0; i < kLengthSize; ++i) out[at + i] = static_cast<uint8_t>(length >> (8 * (kLengthSize - 1 - i)));
}

// Walks a STAP-A's units (each a 16-bit size, then the unit); false if one is empty, of a type that cannot be
// aggregated, or runs past the payload's end.
template <typename Fn>
bool forEachAggregated(std::span<const uint8_t> payload, Fn&& fn) {
  size_t at = 1;
  size_t count = 0;
  while (at < payload.size()) {
    if (payload.size() - at < 2) return false;
    const size_t size = (size_t(payload[at]) << 8) | payload[at + 1];
    at += 2;
    if (size == 0 || size > payload.size() - at || !isSingle(typeOf(payload[at]))) return false;
    fn(payload.subspan(at, size));
    at += size;
    ++count;
  }
  return count > 0;
}

// Reads an RBSP (emulation prevention bytes removed) bit by bit; a read past the end fails the reader.
class BitReader {
 public:
  explicit BitReader(std::span<const uint8_t> bytes) : bytes_(bytes) {}
  bool ok() const { return ok_; }
  uint32_t bits(int n) {
    uint32_t v = 0;
    for (int i = 0; i < n; ++i) v = (v << 1) | bit();
    return v;
  }
  uint32_t bit() {
    if (at_ >= bytes_.size() * 8) {
      ok_ = false;
      return 0;
    }
    const uint32_t b = (bytes_[at_ / 8] >> (7 - at_ % 8)) & 1;
    ++at_;
    return b;
  }
  // ue(v): Exp-Golomb; more than 31 leading zeros is malformed.
  uint32_t ue() {
    int zeros = 0;
    while (ok_ && bit() == 0) {
      if (++zeros > 31) {
        ok_ = false;
        return 0;
      }
    }
    if (!ok_) return 0;
    return static_cast<uint32_t>((uint64_t{1} << zeros) - 1 + bits(zeros));
  }
  int32_t se() {
    const uint32_t k = ue();
    return (k & 1) != 0 ? static_cast<int32_t>((k + 1) / 2) : -static_cast<int32_t>(k / 2);
  }

 private:
  std::span<const uint8_t> bytes_;
  size_t at_ = 0;
  bool ok_ = true;
};

void skipScalingList(BitReader& r, int size) {
  int last = 8;
  int next = 8;
  for (int j = 0; j < size && r.ok(); ++j) {
    if (next != 0) next = (last + r.se() + 256) % 256;
    last = next == 0 ? last : next;
  }
}

}  // namespace

std::optional<PayloadInfo> inspect(std::span<const uint8_t> payload) {
  if (payload.empty() || (payload[0] & 0x80) != 0) return std::nullopt;  // the forbidden bit
  const uint8_t type = typeOf(payload[0]);
  if (isSingle(type)) return PayloadInfo{true};
  if (type == kNalStapA) {
    if (!forEachAggregated(payload, [](std::span<const uint8_t>) {})) return std::nullopt;
    return PayloadInfo{true};
  }
  if (type == kNalFuA) {
    if (payload.size() < 3) return std::nullopt;  // indicator, header, at least one byte of the unit
    const uint8_t fu = payload[1];
    if (!isSingle(typeOf(fu)) || ((fu & kFuStart) != 0 && (fu & kFuEnd) != 0)) return std::nullopt;
    return PayloadInfo{(fu & kFuStart) != 0};
  }
  return std::nullopt;
}

void AccessUnitBuilder::clear() {
  out_.clear();
  fragmentOpen_ = false;
  idr_ = sps_ = pps_ = false;
  nals_ = 0;
}

void AccessUnitBuilder::note(uint8_t type) {
  idr_ = idr_ || type == kNalIdr;
  sps_ = sps_ || type == kNalSps;
  pps_ = pps_ || type == kNalPps;
  ++nals_;
}

void AccessUnitBuilder::startNal(uint8_t header) {
  nalAt_ = out_.size();
  out_.insert(out_.end(), kLengthSize, 0);
  out_.push_back(header);
  note(typeOf(header));
}

void AccessUnitBuilder::endNal() { putLength(out_, nalAt_, out_.size() - nalAt_ - kLengthSize); }

bool AccessUnitBuilder::add(std::span<const uint8_t> payload) {
  if (!inspect(payload)) return false;
  const uint8_t type = typeOf(payload[0]);
  if (type == kNalFuA) {
    const uint8_t fu = payload[1];
    if ((fu & kFuStart) != 0) {
      if (fragmentOpen_) return false;
      startNal(static_cast<uint8_t>((payload[0] & kForbiddenAndNri) | typeOf(fu)));
      fragmentOpen_ = true;
    } else if (!fragmentOpen_ || typeOf(out_[nalAt_ + kLengthSize]) != typeOf(fu)) {
      return false;
    }
    out_.insert(out_.end(), payload.begin() + 2, payload.end());
    if ((fu & kFuEnd) != 0) {
      endNal();
      fragmentOpen_ = false;
    }
    return true;
  }
  if (fragmentOpen_) return false;
  if (type == kNalStapA) {
    forEachAggregated(payload, [this](std::span<const uint8_t> nal) {
      startNal(nal[0]);
      out_.insert(out_.end(), nal.begin() + 1, nal.end());
      endNal();
    });
    return true;
  }
  startNal(payload[0]);
  out_.insert(out_.end(), payload.begin() + 1, payload.end());
  endNal();
  return true;
}

bool AccessUnitBuilder::finish() { return !fragmentOpen_ && nals_ > 0; }

std::optional<PictureSize> spsPictureSize(std::span<const uint8_t> sps) {
  if (sps.size() < 4 || typeOf(sps[0]) != kNalSps) return std::nullopt;
  // The RBSP: emulation prevention bytes (0x03 after two zero bytes) removed. An SPS is small; bound the copy.
  constexpr size_t kMaxSps = 1024;
  std::vector<uint8_t> rbsp;
  rbsp.reserve(std::min(sps.size(), kMaxSps));
  int zeros = 0;
  for (size_t i = 1; i < sps.size() && rbsp.size() < kMaxSps; ++i) {
    if (zeros >= 2 && sps[i] == 3) {
      zeros = 0;
      continue;
    }
    zeros = sps[i] == 0 ? zeros + 1 : 0;
    rbsp.push_back(sps[i]);
  }
  BitReader r(rbsp);
  const uint32_t profile = r.bits(8);
  r.bits(16);  // constraint flags, level
  r.ue();      // seq_parameter_set_id
  uint32_t chroma = 1;
  bool separatePlanes = false;
  if (profile == 100 || profile == 110 || profile == 122 || profile == 244 || profile == 44 || profile == 83 ||
      profile == 86 || profile == 118 || profile == 128 || profile == 138 || profile == 139 || profile == 134 ||
      profile == 135) {
    chroma = r.ue();
    if (chroma > 3) return std::nullopt;
    if (chroma == 3) separatePlanes = r.bit() != 0;
    r.ue();              // bit_depth_luma_minus8
    r.ue();              // bit_depth_chroma_minus8
    r.bit();             // qpprime_y_zero_transform_bypass_flag
    if (r.bit() != 0) {  // seq_scaling_matrix_present_flag
      for (int i = 0; i < (chroma != 3 ? 8 : 12) && r.ok(); ++i) {
        if (r.bit() != 0) skipScalingList(r, i < 6 ? 16 : 64);
      }
    }
  }
  r.ue();  // log2_max_frame_num_minus4
  const uint32_t pocType = r.ue();
  if (pocType == 0) {
    r.ue();  // log2_max_pic_order_cnt_lsb_minus4
  } else if (pocType == 1) {
    r.bit();  // delta_pic_order_always_zero_flag
    r.se();   // offset_for_non_ref_pic
    r.se();   // offset_for_top_to_bottom_field
    const uint32_t cycle = r.ue();
    if (cycle > 255) return std::nullopt;
    for (uint32_t i = 0; i < cycle && r.ok(); ++i) r.se();
  } else if (pocType != 2) {
    return std::nullopt;
  }
  r.ue();   // max_num_ref_frames
  r.bit();  // gaps_in_frame_num_value_allowed_flag
  const uint64_t widthMbs = uint64_t{r.ue()} + 1;
  const uint64_t heightMapUnits = uint64_t{r.ue()} + 1;
  const uint64_t frameMbsOnly = r.bit();
  if (frameMbsOnly == 0) r.bit();  // mb_adaptive_frame_field_flag
  r.bit();                         // direct_8x8_inference_flag
  uint64_t left = 0, right = 0, top = 0, bottom = 0;
  if (r.bit() != 0) {
    left = r.ue();
    right = r.ue();
    top = r.ue();
    bottom = r.ue();
  }
  if (!r.ok()) return std::nullopt;
  // The crop is in units of chroma samples (section 7.4.2.1.1, table 6-1).
  const bool monochrome = chroma == 0 || separatePlanes;
  const uint64_t cropX = monochrome ? 1 : (chroma == 3 ? 1 : 2);
  const uint64_t cropY = (monochrome ? 1 : (chroma == 1 ? 2 : 1)) * (2 - frameMbsOnly);
  const uint64_t width = widthMbs * 16;
  const uint64_t height = (2 - frameMbsOnly) * heightMapUnits * 16;
  const uint64_t cropW = cropX * (left + right);
  const uint64_t cropH = cropY * (top + bottom);
  if (cropW >= width || cropH >= height || width - cropW > 0xFFFF || height - cropH > 0xFFFF) return std::nullopt;
  return PictureSize{static_cast<uint16_t>(width - cropW), static_cast<uint16_t>(height - cropH)};
}

std::optional<AvcConfig> configOf(std::span<const uint8_t> accessUnit) {
  std::span<const uint8_t> sps, pps;
  for (size_t at = 0; accessUnit.size() - at >= kLengthSize;) {
    size_t length = 0;
    for (size_t i = 0; i < kLengthSize; ++i) length = (length << 8) | accessUnit[at + i];
    at += kLengthSize;
    if (length == 0 || length > accessUnit.size() - at) return std::nullopt;
    auto nal = accessUnit.subspan(at, length);
    if (typeOf(nal[0]) == kNalSps && sps.empty()) sps = nal;
    if (typeOf(nal[0]) == kNalPps && pps.empty()) pps = nal;
    at += length;
  }
  if (sps.empty() || pps.empty() || sps.size() > 0xFFFF || pps.size() > 0xFFFF) return std::nullopt;
  auto size = spsPictureSize(sps);
  if (!size) return std::nullopt;
  AvcConfig config;
  config.size = *size;
  auto& c = config.avcC;
  // configurationVersion, profile, profile compatibility (the constraint flags), level, then 6 reserved bits and
  // lengthSizeMinusOne = 3, 3 reserved bits and one SPS, the SPS, one PPS, the PPS.
  constexpr uint8_t kLengthField = 0xFC | (kLengthSize - 1);
  constexpr uint8_t kOneSps = 0xE0 | 1;
  c = {1, sps[1], sps[2], sps[3], kLengthField, kOneSps};
  c.push_back(static_cast<uint8_t>(sps.size() >> 8));
  c.push_back(static_cast<uint8_t>(sps.size()));
  c.insert(c.end(), sps.begin(), sps.end());
  c.push_back(1);
  c.push_back(static_cast<uint8_t>(pps.size() >> 8));
  c.push_back(static_cast<uint8_t>(pps.size()));
  c.insert(c.end(), pps.begin(), pps.end());
  return config;
}

}  // namespace kaiwa::record::h264

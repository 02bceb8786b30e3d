#pragma once
// A synthetic VP8 simulcast stream as Chromium sends one (three RID layers on one MID, transport-wide numbers), for
// the router's simulcast tests and kaiwa-router-bench.
#include <cstdint>
#include <string>
#include <vector>

#include "common/bytes.hpp"
#include "sfu/router.hpp"

namespace kaiwa::sfu::test {

constexpr uint8_t kMidId = 4, kRidId = 10, kPubTccId = 3, kSubTccId = 5;
constexpr uint32_t kLayerSsrc[3] = {0x1000, 0x2000, 0x3000};
constexpr uint16_t kHeights[3] = {180, 360, 720};

// A VP8 packet of simulcast layer `layer`: MID, RID and transport-wide number extensions, a descriptor with a
// 15-bit picture id, TL0PICIDX and TID, and on a keyframe the frame header with its picture size.
inline std::vector<uint8_t> vp8Packet(int layer, uint16_t seq, uint32_t ts, uint16_t picture, bool keyframe,
                                      uint16_t transportSeq, size_t payload = 200) {
  std::vector<uint8_t> p(12);
  p[0] = 0x90;
  p[1] = 96;
  common::put16(&p[2], seq);
  common::put32(&p[4], ts);
  common::put32(&p[8], kLayerSsrc[layer]);
  const std::string rid = std::string(1, "qhf"[layer]);
  std::vector<uint8_t> ext = {uint8_t(kMidId << 4 | 0),    '1',
                              uint8_t(kRidId << 4 | 0),    uint8_t(rid[0]),
                              uint8_t(kPubTccId << 4 | 1), uint8_t(transportSeq >> 8),
                              uint8_t(transportSeq)};
  while (ext.size() % 4 != 0) ext.push_back(0);
  p.insert(p.end(), {0xBE, 0xDE, 0, uint8_t(ext.size() / 4)});
  p.insert(p.end(), ext.begin(), ext.end());
  // X S | I L T | M picture (15 bits) | TL0PICIDX | TID=0 Y=1
  p.insert(p.end(), {0x90, 0xE0, uint8_t(0x80 | (picture >> 8 & 0x7F)), uint8_t(picture), uint8_t(picture), 0x20});
  if (keyframe) {
    const uint16_t h = kHeights[layer], w = uint16_t(h * 16 / 9);
    p.insert(p.end(), {0x00, 0x00, 0x00, 0x9d, 0x01, 0x2a, uint8_t(w), uint8_t(w >> 8), uint8_t(h), uint8_t(h >> 8)});
  } else {
    p.insert(p.end(), {0x01, 0x00, 0x00});
  }
  p.insert(p.end(), payload, 0xab);
  return p;
}

// Adds `publisher` to `router` as Chromium's camera in the three layers above (VP8, MID/RID/transport-wide
// extensions, 512 packets kept for NACKs) and returns the group's id.
inline TrackId addSimulcastPublisher(Router& router, TransportId publisher) {
  router.addPublisher(publisher, {.midExtensionId = kMidId,
                                  .ridExtensionId = kRidId,
                                  .feedbackSsrc = 1,
                                  .reducedSize = true,
                                  .transportCcExtensionId = kPubTccId});
  std::vector<TrackConfig> layers;
  for (int l = 0; l < 3; ++l) {
    TrackConfig c{.kind = MediaKind::kVideo, .mid = "1", .rid = std::string(1, "qhf"[l])};
    c.payloadTypes.set(96);
    c.retransmission = {.maxPackets = 512, .maxBytes = 512 * 1500};
    c.vp8 = true;
    layers.push_back(c);
  }
  return *router.addSimulcastTrack(publisher, layers);
}

}  // namespace kaiwa::sfu::test

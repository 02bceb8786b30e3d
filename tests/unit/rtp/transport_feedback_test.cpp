// transport-cc feedback: the statuses and deltas of hand-laid messages (each chunk kind, small, large and negative
// deltas, the reference time), malformed messages refused, and the builder read back by the reader.
#include "rtp/transport_feedback.hpp"

#include <gtest/gtest.h>

#include <array>
#include <random>
#include <vector>

#include "vectors.hpp"

namespace kaiwa::rtp::rtcp {
namespace {

using test::hex;

// The view points into `bytes`, which the caller keeps alive.
std::optional<TransportFeedback> feedback(const std::vector<uint8_t>& bytes) {
  CompoundReader r(bytes);
  auto b = r.next();
  if (!b) return std::nullopt;
  return TransportFeedback::parse(*b);
}

// Keeps each test message alive for the rest of the test binary, so the views into it stay valid.
const std::vector<uint8_t>& keep(std::vector<uint8_t> bytes) {
  static std::vector<std::vector<uint8_t>> kept;
  kept.push_back(std::move(bytes));
  return kept.back();
}

std::vector<TccPacket> packets(const TransportFeedback& f, bool* failed = nullptr) {
  TransportFeedbackReader r(f);
  std::vector<TccPacket> out;
  while (auto p = r.next()) out.push_back(*p);
  if (failed) *failed = r.failed();
  return out;
}

TEST(TransportFeedback, RunLengthOfSmallDeltas) {
  // Base 1, 2 packets, reference -2 (x 64 ms), feedback count 5; a run of 2 "small delta", deltas 0 and 0.
  auto f = feedback(keep(hex("8fcd0005 00000001 a1b2c3d4 0001 0002 fffffe 05 20020000")));
  ASSERT_TRUE(f);
  bool failed = true;
  auto p = packets(*f, &failed);
  EXPECT_FALSE(failed);
  ASSERT_EQ(p.size(), 2u);
  EXPECT_EQ(p[0].sequence, 1);
  EXPECT_EQ(p[1].sequence, 2);
  EXPECT_TRUE(p[0].received && p[1].received);
  EXPECT_EQ(p[0].arrivalMicros, -2 * 64000);
  EXPECT_EQ(p[1].arrivalMicros, -2 * 64000);
}

TEST(TransportFeedback, VectorsAndLargeDeltas) {
  // Base 0xfffe (the sequence wraps), 10 packets, reference 0x000010 (1024 ms):
  //  - a two-bit vector 11 01 10 00 01 01 00: received small, received large, lost, small, small, lost, (7 used)
  //    = 0xC000 | 01<<12 | 10<<10 | 00<<8 | 01<<6 | 01<<4 | 00<<2 | 00 = 0xd850
  //  - a one-bit vector: 1 0 1 then zeros: 0x8000 | 1<<13 | 1<<11 = 0xa800 (3 of its 14 used)
  // Deltas: 4 (1 ms), -8 (large, -2 ms), 200 (50 ms), 1 (0.25 ms), 0, 255 (63.75 ms).
  auto f =
      feedback(keep(hex("8fcd0007 00000001 a1b2c3d4 fffe 000a 000010 00"
                        "d850 a800"
                        "04 fff8 c8 01 00 ff 00")));
  ASSERT_TRUE(f);
  bool failed = true;
  auto p = packets(*f, &failed);
  EXPECT_FALSE(failed);
  ASSERT_EQ(p.size(), 10u);
  const std::array<uint16_t, 10> seq{0xfffe, 0xffff, 0, 1, 2, 3, 4, 5, 6, 7};
  const std::array<bool, 10> received{true, true, false, true, true, false, false, true, false, true};
  const int64_t ref = 1024000;
  const std::array<int64_t, 10> arrival{ref + 1000, ref - 1000, 0,           ref + 49000, ref + 49250,
                                        0,          0,          ref + 49250, 0,           ref + 49250 + 63750};
  for (size_t i = 0; i < p.size(); ++i) {
    EXPECT_EQ(p[i].sequence, seq[i]) << i;
    EXPECT_EQ(p[i].received, received[i]) << i;
    if (received[i]) {
      EXPECT_EQ(p[i].arrivalMicros, arrival[i]) << i;
    }
  }
}

TEST(TransportFeedback, MalformedIsRefused) {
  // Deltas missing: a run of 3 small deltas with only 2 delta bytes.
  auto f = feedback(keep(hex("8fcd0005 00000001 a1b2c3d4 0001 0003 000000 00 20030102")));
  ASSERT_TRUE(f);
  EXPECT_FALSE(TransportFeedbackReader::valid(*f));
  bool failed = false;
  EXPECT_EQ(packets(*f, &failed).size(), 2u);
  EXPECT_TRUE(failed);
  // Chunks missing: 20 statuses, one run length chunk of 3.
  f = feedback(keep(hex("8fcd0005 00000001 a1b2c3d4 0001 0014 000000 00 60030000")));
  ASSERT_TRUE(f);
  EXPECT_FALSE(TransportFeedbackReader::valid(*f));
  EXPECT_TRUE(packets(*f).empty());
  // The reserved symbol 3 in a run length chunk.
  f = feedback(keep(hex("8fcd0005 00000001 a1b2c3d4 0001 0001 000000 00 60010000")));
  ASSERT_TRUE(f);
  EXPECT_FALSE(TransportFeedbackReader::valid(*f));
  // A large delta cut in half: the last byte is RTCP padding (P set, one byte), so the body ends after one delta byte.
  f = feedback(keep(hex("afcd0005 00000001 a1b2c3d4 0001 0001 000000 00 4001 01 01")));
  ASSERT_TRUE(f);
  EXPECT_FALSE(TransportFeedbackReader::valid(*f));
  // No statuses at all is valid and empty.
  f = feedback(keep(hex("8fcd0004 00000001 a1b2c3d4 0001 0000 000000 00")));
  ASSERT_TRUE(f);
  EXPECT_TRUE(TransportFeedbackReader::valid(*f));
  EXPECT_TRUE(packets(*f).empty());
}

struct Sent {
  uint16_t sequence;
  int64_t arrival;
};

// Builds, reads back, and checks every status: the packets added are received at their arrival time rounded down
// to 250 us, the ones skipped are not.
void roundTrip(const std::vector<Sent>& in, size_t expectAdded) {
  TransportFeedbackBuilder b({7, 9}, 3);
  size_t added = 0;
  for (const auto& s : in) {
    if (!b.add(s.sequence, s.arrival)) break;
    ++added;
  }
  ASSERT_EQ(added, expectAdded);
  std::vector<uint8_t> buf(b.size());
  auto n = b.write(buf);
  ASSERT_TRUE(n);
  EXPECT_EQ(*n, buf.size());
  auto f = feedback(buf);
  ASSERT_TRUE(f);
  EXPECT_EQ(f->header.senderSsrc, 7u);
  EXPECT_EQ(f->header.mediaSsrc, 9u);
  EXPECT_EQ(f->feedbackCount, 3);
  EXPECT_EQ(f->baseSequence, in[0].sequence);
  EXPECT_TRUE(TransportFeedbackReader::valid(*f));
  auto p = packets(*f);
  ASSERT_EQ(p.size(), b.statusCount());
  // The reference time is sent in 24 bits, so arrival times compare modulo that.
  const int64_t shift = (in[0].arrival / 64000 - f->referenceTime) * 64000;
  size_t next = 0;
  for (const auto& s : p) {
    if (next < added && s.sequence == in[next].sequence) {
      EXPECT_TRUE(s.received) << s.sequence;
      EXPECT_EQ(s.arrivalMicros + shift, in[next].arrival / 250 * 250) << s.sequence;
      ++next;
    } else {
      EXPECT_FALSE(s.received) << s.sequence;
    }
  }
  EXPECT_EQ(next, added);
}

TEST(TransportFeedbackBuilder, RoundTrips) {
  // Steady arrivals: one long run.
  std::vector<Sent> steady;
  for (uint16_t i = 0; i < 100; ++i) steady.push_back({uint16_t(65500 + i), 5'000'000 + i * 1000});
  roundTrip(steady, 100);
  // Losses, a large gap, reordered arrivals (negative deltas), and a sequence wrap.
  roundTrip({{65534, 1'000'000}, {65535, 1'000'300}, {2, 1'100'000}, {3, 1'090'000}, {40, 1'095'000}, {41, 1'400'000}},
            6);
  // A 24-bit reference time wraps (2^24 x 64 ms is about 12 days).
  roundTrip({{10, (int64_t(1) << 24) * 64000 + 12345}, {11, (int64_t(1) << 24) * 64000 + 99999}}, 2);
  // A delta over 8 s ends the message; so do an older packet and too many statuses.
  roundTrip({{1, 0}, {2, 9'000'000}}, 1);
  roundTrip({{5, 0}, {4, 10}}, 1);
  roundTrip({{5, 0}, {5, 10}}, 1);
  roundTrip({{0, 0}, {511, 10}, {512, 20}}, 2);
}

TEST(TransportFeedbackBuilder, RandomRoundTrips) {
  std::mt19937 rng(15);
  for (int trial = 0; trial < 300; ++trial) {
    std::vector<Sent> in;
    uint16_t seq = uint16_t(rng());
    int64_t t = int64_t(rng() % 100'000'000);
    const int n = 1 + int(rng() % 200);
    for (int i = 0; i < n; ++i) {
      in.push_back({seq, t});
      seq = uint16_t(seq + 1 + (rng() % 4 == 0 ? rng() % 5 : 0));
      t += int64_t(rng() % 80'000) - (rng() % 10 == 0 ? 20'000 : 0);
    }
    TransportFeedbackBuilder probe({7, 9}, 3);
    size_t fits = 0;
    for (const auto& s : in) {
      if (!probe.add(s.sequence, s.arrival)) break;
      ++fits;
    }
    roundTrip(in, fits);
    EXPECT_LE(probe.size(), 1212u);
  }
}

TEST(TransportFeedbackBuilder, WorstCaseSize) {
  // Every status alternates received-large and lost: two-bit vectors and two-byte deltas throughout.
  TransportFeedbackBuilder b({1, 2}, 0);
  int64_t t = 1'000'000;
  for (uint16_t s = 0; s < TransportFeedbackBuilder::kMaxStatuses; s += 2) {
    ASSERT_TRUE(b.add(s, t));
    t += 100'000;
  }
  EXPECT_LE(b.size(), 1212u);
  std::vector<uint8_t> small(b.size() - 4);
  EXPECT_FALSE(b.write(small));
}

}  // namespace
}  // namespace kaiwa::rtp::rtcp

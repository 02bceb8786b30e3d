// Two usrsctp associations in one process, wired back to back through memory (as two DTLS transports would carry
// their packets): connecting, channels opened with DCEP by either side, messages of each PPID both ways (empty and
// up to the size limit, and the limit refused), partial reliability and ordering carried in the DCEP open, closing a
// channel by stream reset, and every message of a reliable channel arriving in order through 10 % packet loss.
#include "sctp/association.hpp"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <thread>

namespace kaiwa::sctp {
namespace {

struct Message {
  uint16_t stream;
  Ppid ppid;
  std::vector<uint8_t> bytes;
};

struct Side final : Association::Listener {
  std::vector<std::vector<uint8_t>> out;
  bool connected = false;
  bool closed = false;
  std::vector<std::pair<uint16_t, ChannelParams>> opened;
  std::vector<Message> messages;
  std::vector<uint16_t> closedChannels;

  void onPacket(std::span<const uint8_t> p) override { out.emplace_back(p.begin(), p.end()); }
  void onConnected() override { connected = true; }
  void onChannelOpen(uint16_t stream, const ChannelParams& params) override { opened.emplace_back(stream, params); }
  void onMessage(uint16_t stream, Ppid ppid, std::span<const uint8_t> m) override {
    messages.push_back({stream, ppid, std::vector<uint8_t>(m.begin(), m.end())});
  }
  void onChannelClosed(uint16_t stream) override { closedChannels.push_back(stream); }
  void onClosed() override { closed = true; }
};

std::span<const uint8_t> bytesOf(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}
std::string textOf(const std::vector<uint8_t>& b) { return {b.begin(), b.end()}; }

class AssociationTest : public ::testing::Test {
 protected:
  AssociationTest() : AssociationTest(0) {}
  explicit AssociationTest(size_t mtu)
      : client({.mtu = mtu, .dtlsClient = true}, a), server({.mtu = mtu, .dtlsClient = false}, b) {}

  // Moves packets both ways until none is left, dropping each with probability `loss`. When nothing moves, lets
  // 10 ms of real time pass and advances usrsctp's timers by it (retransmissions need the real clock to move, see
  // tickTimers); gives up after `patience` such pauses in a row. Bounded: at most `rounds` rounds.
  void pump(double loss = 0, int patience = 5, int rounds = 20000) {
    int idle = 0;
    for (int i = 0; i < rounds && idle < patience; ++i) {
      if (a.out.empty() && b.out.empty()) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
        Association::tickTimers(std::chrono::milliseconds(10));
        ++idle;
        continue;
      }
      idle = 0;
      auto fromA = std::move(a.out);
      a.out.clear();
      auto fromB = std::move(b.out);
      b.out.clear();
      for (auto& p : fromA) {
        largest = std::max(largest, p.size());
        if (loss == 0 || coin(rng) >= loss) server.receive(p);
      }
      for (auto& p : fromB) {
        largest = std::max(largest, p.size());
        if (loss == 0 || coin(rng) >= loss) client.receive(p);
      }
    }
  }
  void connect() {
    ASSERT_TRUE(client.connect());
    ASSERT_TRUE(server.connect());
    pump();
    ASSERT_TRUE(a.connected);
    ASSERT_TRUE(b.connected);
  }

  Side a;
  Side b;
  Association client;
  Association server;
  std::mt19937 rng{7};
  std::uniform_real_distribution<double> coin{0.0, 1.0};
  size_t largest = 0;  // the largest packet either side sent
};

TEST_F(AssociationTest, ConnectsAndTheClientOpensAChannelWithDcep) {
  connect();
  auto stream = client.openChannel({.label = "chat", .protocol = "kaiwa-chat"});
  ASSERT_TRUE(stream);
  EXPECT_EQ(*stream % 2, 0) << "the DTLS client opens even streams";
  pump();
  ASSERT_EQ(b.opened.size(), 1u);
  EXPECT_EQ(b.opened[0].first, *stream);
  EXPECT_EQ(b.opened[0].second.label, "chat");
  EXPECT_EQ(b.opened[0].second.protocol, "kaiwa-chat");
  EXPECT_TRUE(b.opened[0].second.ordered);
  EXPECT_EQ(server.channels(), 1u);
  EXPECT_TRUE(a.opened.empty()) << "the opener hears no open of its own";
}

TEST_F(AssociationTest, TheServerOpensOddStreamsAndOptionsTravelInTheOpen) {
  connect();
  auto stream = server.openChannel(
      {.ordered = false, .reliability = Reliability::kMaxRetransmits, .reliabilityParameter = 3, .label = "game"});
  ASSERT_TRUE(stream);
  EXPECT_EQ(*stream % 2, 1);
  auto second = server.openChannel({.reliability = Reliability::kMaxLifetime, .reliabilityParameter = 150});
  ASSERT_TRUE(second);
  EXPECT_EQ(*second, *stream + 2);
  pump();
  ASSERT_EQ(a.opened.size(), 2u);
  EXPECT_FALSE(a.opened[0].second.ordered);
  EXPECT_EQ(a.opened[0].second.reliability, Reliability::kMaxRetransmits);
  EXPECT_EQ(a.opened[0].second.reliabilityParameter, 3u);
  EXPECT_EQ(a.opened[1].second.reliability, Reliability::kMaxLifetime);
  EXPECT_EQ(a.opened[1].second.reliabilityParameter, 150u);
}

TEST_F(AssociationTest, MessagesOfEveryKindBothWays) {
  connect();
  auto stream = *client.openChannel({.label = "files"});
  pump();
  const std::string text = "こんにちは";
  std::vector<uint8_t> big(200 * 1024);
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<uint8_t>(i * 7);
  EXPECT_EQ(client.send(stream, Ppid::kString, bytesOf(text)), Association::SendResult::kSent);
  EXPECT_EQ(client.send(stream, Ppid::kBinary, big), Association::SendResult::kSent);
  EXPECT_EQ(client.send(stream, Ppid::kString, {}), Association::SendResult::kSent);
  EXPECT_EQ(client.send(stream, Ppid::kBinary, {}), Association::SendResult::kSent);
  EXPECT_EQ(server.send(stream, Ppid::kString, bytesOf("back")), Association::SendResult::kSent);
  pump();
  ASSERT_EQ(b.messages.size(), 4u);
  EXPECT_EQ(b.messages[0].ppid, Ppid::kString);
  EXPECT_EQ(textOf(b.messages[0].bytes), text);
  EXPECT_EQ(b.messages[1].ppid, Ppid::kBinary);
  EXPECT_EQ(b.messages[1].bytes, big);
  EXPECT_EQ(b.messages[2].ppid, Ppid::kStringEmpty);
  EXPECT_TRUE(b.messages[2].bytes.empty());
  EXPECT_EQ(b.messages[3].ppid, Ppid::kBinaryEmpty);
  ASSERT_EQ(a.messages.size(), 1u);
  EXPECT_EQ(textOf(a.messages[0].bytes), "back");
  EXPECT_EQ(server.counters().messagesIn, 4u);
}

TEST_F(AssociationTest, LimitsAreRefusedWithAReason) {
  EXPECT_EQ(client.send(0, Ppid::kString, bytesOf("x")), Association::SendResult::kClosed) << "not connected";
  EXPECT_FALSE(client.openChannel({}));
  connect();
  auto stream = *client.openChannel({});
  std::vector<uint8_t> tooBig(256 * 1024 + 1);
  EXPECT_EQ(client.send(stream, Ppid::kBinary, tooBig), Association::SendResult::kTooBig);
  EXPECT_EQ(client.send(stream + 2, Ppid::kBinary, bytesOf("x")), Association::SendResult::kNoChannel);
  EXPECT_EQ(client.send(stream, Ppid::kDcep, bytesOf("x")), Association::SendResult::kNoChannel);
  // The send buffer (1 MiB) fills before the peer acknowledges anything: the caller hears kBufferFull.
  std::vector<uint8_t> chunk(200 * 1024);
  Association::SendResult r = Association::SendResult::kSent;
  int sent = 0;
  for (; sent < 20 && r == Association::SendResult::kSent; ++sent) r = client.send(stream, Ppid::kBinary, chunk);
  EXPECT_EQ(r, Association::SendResult::kBufferFull);
  EXPECT_LE(sent, 7);
  pump();
  EXPECT_EQ(b.messages.size(), static_cast<size_t>(sent - 1)) << "what was accepted arrives";
}

TEST(AssociationLimitTest, AMessageOverTheReceiversLimitIsDroppedAndCountedAndTheChannelGoesOn) {
  Side a;
  Side b;
  Association client({.dtlsClient = true}, a);
  Association server({.maxMessageSize = 64 * 1024, .dtlsClient = false}, b);
  ASSERT_TRUE(client.connect());
  ASSERT_TRUE(server.connect());
  auto pump = [&] {
    for (int i = 0; i < 200 && (!a.out.empty() || !b.out.empty()); ++i) {
      auto fromA = std::move(a.out);
      a.out.clear();
      auto fromB = std::move(b.out);
      b.out.clear();
      for (auto& p : fromA) server.receive(p);
      for (auto& p : fromB) client.receive(p);
    }
  };
  pump();
  ASSERT_TRUE(b.connected);
  auto stream = *client.openChannel({.label = "big"});
  pump();
  std::vector<uint8_t> big(100 * 1024, 7);  // within the client's limit, over the server's
  ASSERT_EQ(client.send(stream, Ppid::kBinary, big), Association::SendResult::kSent);
  ASSERT_EQ(client.send(stream, Ppid::kString, bytesOf("after")), Association::SendResult::kSent);
  pump();
  EXPECT_EQ(server.counters().dropped, 1u);
  ASSERT_EQ(b.messages.size(), 1u);
  EXPECT_EQ(textOf(b.messages[0].bytes), "after");
}

TEST_F(AssociationTest, ClosingAChannelResetsItsStreamsOnBothSides) {
  connect();
  auto stream = *client.openChannel({.label = "a"});
  auto other = *client.openChannel({.label = "b"});
  pump();
  client.closeChannel(stream);
  pump();
  EXPECT_EQ(b.closedChannels, std::vector<uint16_t>{stream});
  EXPECT_EQ(a.closedChannels, std::vector<uint16_t>{stream});
  EXPECT_EQ(client.channels(), 1u);
  EXPECT_EQ(server.channels(), 1u);
  EXPECT_EQ(client.send(stream, Ppid::kString, bytesOf("late")), Association::SendResult::kNoChannel);
  EXPECT_EQ(client.send(other, Ppid::kString, bytesOf("still open")), Association::SendResult::kSent);
  pump();
  ASSERT_EQ(b.messages.size(), 1u);
  EXPECT_EQ(b.messages[0].stream, other);
}

TEST_F(AssociationTest, AReliableChannelDeliversEverythingInOrderThroughLoss) {
  connect();
  auto stream = *client.openChannel({.label = "reliable"});
  pump(0.1, 300);
  ASSERT_EQ(b.opened.size(), 1u);
  constexpr int kMessages = 60;
  for (int i = 0; i < kMessages; ++i) {
    const std::string m = "message " + std::to_string(i) + std::string(static_cast<size_t>(i * 37 % 3000), '.');
    ASSERT_EQ(client.send(stream, Ppid::kString, bytesOf(m)), Association::SendResult::kSent);
    if (i % 20 == 19) pump(0.1, 1);
  }
  // At most 3 s of real time without a packet moving (a retransmission waits one RTO, 200 ms to 1 s here).
  pump(0.1, 300);
  ASSERT_EQ(b.messages.size(), static_cast<size_t>(kMessages));
  for (int i = 0; i < kMessages; ++i) {
    const std::string prefix = "message " + std::to_string(i);
    EXPECT_EQ(textOf(b.messages[i].bytes).substr(0, prefix.size()), prefix);
  }
}

TEST_F(AssociationTest, AssociationsAreCountedAndForgotten) {
  const size_t before = Association::live();
  {
    Side s;
    Association extra({}, s);
    EXPECT_EQ(Association::live(), before + 1);
  }
  EXPECT_EQ(Association::live(), before);
}

// Every packet must fit one DTLS record: with Options::mtu set, no packet either side sends is larger, and a
// 200 KiB message still arrives whole.
constexpr size_t kMtu = 1100;
class AssociationMtuTest : public AssociationTest {
 protected:
  AssociationMtuTest() : AssociationTest(kMtu) {}
};

TEST_F(AssociationMtuTest, NoPacketIsLargerThanTheMtu) {
  connect();
  auto stream = *client.openChannel({.label = "kaiwa"});
  pump();
  std::vector<uint8_t> big(200 * 1024, 7);
  ASSERT_EQ(server.send(stream, Ppid::kBinary, big), Association::SendResult::kSent);
  ASSERT_EQ(client.send(stream, Ppid::kBinary, big), Association::SendResult::kSent);
  pump();
  ASSERT_EQ(a.messages.size(), 1u);
  ASSERT_EQ(b.messages.size(), 1u);
  EXPECT_EQ(a.messages[0].bytes, big);
  EXPECT_GT(largest, kMtu - 100);
  EXPECT_LE(largest, kMtu);
}

}  // namespace
}  // namespace kaiwa::sctp

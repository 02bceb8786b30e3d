#include "sfu/data_relay.hpp"

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

namespace kaiwa::sfu {
namespace {

using Bytes = std::vector<uint8_t>;

// The members' channels: what each was sent, and what the next send to each answers.
struct FakeChannels final : DataRelayIo {
  std::map<std::string, std::vector<Bytes>> sent;
  std::map<std::string, DataSendResult> answer;
  // Set: a send to "c" closes "b" and hands the relay a message from "c" (what c's association had received).
  DataRelay* reenter = nullptr;
  DataSendResult sendData(std::string_view member, std::span<const uint8_t> message) override {
    std::string m(member);
    auto it = answer.find(m);
    DataSendResult r = it == answer.end() ? DataSendResult::kSent : it->second;
    if (r == DataSendResult::kSent) sent[m].emplace_back(message.begin(), message.end());
    if (reenter != nullptr && m == "c") {
      DataRelay* relay = reenter;
      reenter = nullptr;
      relay->close("b");
      relay->receive("c", envelope(DataRelay::kToAll, "", "late"));
    }
    return r;
  }
  static Bytes envelope(uint8_t kind, std::string_view id, std::string_view payload) {
    Bytes b{kind, uint8_t(id.size())};
    b.insert(b.end(), id.begin(), id.end());
    b.insert(b.end(), payload.begin(), payload.end());
    return b;
  }
};

Bytes fromMember(std::string_view id, std::string_view payload) {
  return FakeChannels::envelope(DataRelay::kToAll, id, payload);
}
Bytes notice(std::string_view id) { return FakeChannels::envelope(DataRelay::kDropped, id, ""); }

struct DataRelayTest : ::testing::Test {
  FakeChannels io;
  DataRelay relay{io, 1024};
  void SetUp() override {
    for (const char* m : {"a", "b", "c"}) relay.open(m);
  }
};

TEST_F(DataRelayTest, ToEveryoneGoesOnceToEachOtherMemberNamedByItsTransport) {
  relay.receive("a", FakeChannels::envelope(DataRelay::kToAll, "", "hello"));
  EXPECT_EQ(io.sent["b"], std::vector<Bytes>{fromMember("a", "hello")});
  EXPECT_EQ(io.sent["c"], std::vector<Bytes>{fromMember("a", "hello")});
  EXPECT_TRUE(io.sent["a"].empty());
  EXPECT_EQ(relay.counters().messagesIn, 1u);
  EXPECT_EQ(relay.counters().delivered, 2u);
  EXPECT_EQ(relay.counters().bytesDelivered, 2 * fromMember("a", "hello").size());
}

TEST_F(DataRelayTest, ToOneGoesOnlyThereAndTheSenderCannotPretendToBeSomeoneElse) {
  // The payload may say anything; the id on the forwarded message is the sender's transport's member.
  relay.receive("a", FakeChannels::envelope(DataRelay::kToOne, "c",
                                            "\x01\x01"
                                            "b secret"));
  EXPECT_TRUE(io.sent["b"].empty());
  ASSERT_EQ(io.sent["c"].size(), 1u);
  EXPECT_EQ(io.sent["c"][0], fromMember("a",
                                        "\x01\x01"
                                        "b secret"));
}

TEST_F(DataRelayTest, MalformedAndUnknownTargetsAreDroppedAndCounted) {
  relay.receive("a", Bytes{});
  relay.receive("a", Bytes{9, 0});                                          // unknown kind
  relay.receive("a", Bytes{DataRelay::kToOne, 5, 'b'});                     // id longer than the message
  relay.receive("a", Bytes{DataRelay::kToAll, 1, 'b'});                     // to everyone with an id
  relay.receive("a", Bytes{DataRelay::kToOne, 0});                          // to one without an id
  relay.receive("a", FakeChannels::envelope(DataRelay::kToOne, "a", "x"));  // to itself
  relay.receive("a", FakeChannels::envelope(DataRelay::kToOne, "z", "x"));  // to nobody in the room
  relay.receive("z", FakeChannels::envelope(DataRelay::kToAll, "", "x"));   // from a member without a channel
  relay.receive("a", FakeChannels::envelope(DataRelay::kToOne, std::string(65, 'b'), "x"));  // id too long
  // Only the one to a member without a channel is answered: with a notice naming it.
  EXPECT_EQ(io.sent, (std::map<std::string, std::vector<Bytes>>{{"a", {notice("z")}}}));
  EXPECT_EQ(relay.counters().malformed, 7u);
  EXPECT_EQ(relay.counters().unknownTarget, 2u);
  EXPECT_EQ(relay.counters().delivered, 0u);
}

TEST_F(DataRelayTest, AClosedMemberReceivesNothingMore) {
  relay.close("b");
  relay.receive("a", FakeChannels::envelope(DataRelay::kToAll, "", "x"));
  EXPECT_TRUE(io.sent["b"].empty());
  EXPECT_EQ(io.sent["c"].size(), 1u);
  EXPECT_FALSE(relay.isOpen("b"));
  relay.open("b");
  relay.open("b");  // twice is once
  EXPECT_EQ(relay.members(), 3u);
}

TEST_F(DataRelayTest, AFullReceiverLosesTheMessageAndBothEndsAreTold) {
  io.answer["b"] = DataSendResult::kBufferFull;
  relay.receive("a", FakeChannels::envelope(DataRelay::kToAll, "", "chunk"));
  // c is not held back by b.
  EXPECT_EQ(io.sent["c"], std::vector<Bytes>{fromMember("a", "chunk")});
  // The sender hears which receiver missed it; the receiver's notice could not be sent either (its buffer is full).
  EXPECT_EQ(io.sent["a"], std::vector<Bytes>{notice("b")});
  EXPECT_EQ(relay.counters().bufferFull, 1u);
  EXPECT_EQ(relay.counters().noticesLost, 1u);
  // Once b drains, the next message's loss would be told to it too: here it gets the next message.
  io.answer.erase("b");
  relay.receive("a", FakeChannels::envelope(DataRelay::kToOne, "b", "next"));
  EXPECT_EQ(io.sent["b"], std::vector<Bytes>{fromMember("a", "next")});
}

TEST_F(DataRelayTest, AMessageTooBigForTheForwardedFormIsDropped) {
  // 1024 bytes at most out: the header names the sender (2 + 1 bytes here).
  relay.receive("a", FakeChannels::envelope(DataRelay::kToAll, "", std::string(1021, 'x')));
  EXPECT_EQ(relay.counters().delivered, 2u);
  relay.receive("a", FakeChannels::envelope(DataRelay::kToAll, "", std::string(1022, 'x')));
  EXPECT_EQ(relay.counters().tooBig, 1u);
  EXPECT_EQ(relay.counters().delivered, 2u);
}

TEST_F(DataRelayTest, CallsMadeWhileForwardingWaitTheirTurn) {
  // A send may hand the relay what that receiver's association had received, or close a member; neither may
  // disturb the message being forwarded, and both happen after it.
  io.reenter = &relay;
  relay.receive("a", FakeChannels::envelope(DataRelay::kToAll, "", "first"));
  EXPECT_EQ(io.sent["b"], std::vector<Bytes>{fromMember("a", "first")});
  EXPECT_EQ(io.sent["c"], std::vector<Bytes>{fromMember("a", "first")});
  // "late" from c went out after b was closed: to a only.
  EXPECT_EQ(io.sent["a"], std::vector<Bytes>{fromMember("c", "late")});
  EXPECT_FALSE(relay.isOpen("b"));
}

}  // namespace
}  // namespace kaiwa::sfu

#include "common/domain/event_codec.h"

#include "gtest/gtest.h"

namespace bank::domain {
namespace {

TEST(EventCodecTest, RoundTripsEveryEventType) {
  events::v1::AccountOpened opened;
  opened.set_account_id("a");
  opened.set_owner("Zoë");
  opened.set_currency("EUR");
  opened.set_initial_deposit(9223372036854775807);
  events::v1::TransferSent sent;
  sent.set_transfer_id("t");
  sent.set_to_account_id("b");
  sent.set_amount(5);
  std::vector<AccountEvent> all = {
      opened, events::v1::MoneyDeposited(),   events::v1::MoneyWithdrawn(),
      sent,   events::v1::TransferReceived(), events::v1::AccountClosed()};
  for (const AccountEvent& e : all) {
    EncodedEvent enc = EncodeEvent(e);
    absl::StatusOr<AccountEvent> dec =
        DecodeEvent(enc.type, enc.schema_version, enc.json);
    ASSERT_TRUE(dec.ok()) << enc.type << ": " << dec.status();
    EXPECT_EQ(dec->index(), e.index());
    EXPECT_EQ(EncodeEvent(*dec).json, enc.json);
  }
  EXPECT_EQ(EncodeEvent(opened).schema_version, 2);
  EXPECT_EQ(std::get<events::v1::AccountOpened>(
                *DecodeEvent("AccountOpened", 2, EncodeEvent(opened).json))
                .initial_deposit(),
            9223372036854775807);
}

TEST(EventCodecTest, UpcastsAccountOpenedVersion1) {
  absl::StatusOr<AccountEvent> dec = DecodeEvent(
      "AccountOpened", 1,
      R"({"account_id":"a","holder":"Old Owner","currency":"GBP","initial_deposit":"12"})");
  ASSERT_TRUE(dec.ok()) << dec.status();
  const auto& e = std::get<events::v1::AccountOpened>(*dec);
  EXPECT_EQ(e.owner(), "Old Owner");
  EXPECT_EQ(e.currency(), "GBP");
  EXPECT_EQ(e.initial_deposit(), 12);
}

TEST(EventCodecTest, RejectsPoison) {
  EXPECT_EQ(DecodeEvent("Nope", 1, "{}").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(
      DecodeEvent("MoneyDeposited", 2, R"({"amount":"1"})").status().code(),
      absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(DecodeEvent("MoneyDeposited", 1, "not json").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(
      DecodeEvent("MoneyDeposited", 1, R"({"amount":"x"})").status().code(),
      absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(DecodeEvent("MoneyDeposited", 1, R"({"bogus":1})").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(DecodeEvent("AccountOpened", 1, "[]").status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(EventCodecTest, SnapshotsRoundTripAndOldVersionsAreRefused) {
  AccountState s{"id", "Alice", "EUR", 42, 7, AccountStatus::kClosed};
  std::string json = EncodeSnapshot(s);
  absl::StatusOr<AccountState> back =
      DecodeSnapshot(kSnapshotSchemaVersion, json);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, s);
  EXPECT_EQ(DecodeSnapshot(kSnapshotSchemaVersion + 1, json).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_FALSE(DecodeSnapshot(kSnapshotSchemaVersion, "{").ok());
}

}  // namespace
}  // namespace bank::domain

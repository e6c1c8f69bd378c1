#include "common/domain/bank_account.h"

#include <cstdint>
#include <limits>

#include "gtest/gtest.h"

namespace bank::domain {
namespace {

constexpr char kA[] = "11111111-1111-4111-8111-111111111111";
constexpr char kB[] = "22222222-2222-4222-8222-222222222222";

BankAccount Opened(const char* id, int64_t balance, const char* cur = "EUR") {
  BankAccount a{std::string(id)};
  EXPECT_TRUE(a.Open("Alice", cur, balance).ok());
  a.ClearPending();
  return a;
}

TEST(BankAccountTest, OpenRecordsAccountOpened) {
  BankAccount a{std::string(kA)};
  ASSERT_TRUE(a.Open("Alice", "EUR", 500).ok());
  ASSERT_EQ(a.pending().size(), 1u);
  EXPECT_TRUE(
      std::holds_alternative<events::v1::AccountOpened>(a.pending()[0]));
  EXPECT_EQ(a.state().balance, 500);
  EXPECT_EQ(a.state().version, 1);
  EXPECT_EQ(a.committed_version(), 0);
  EXPECT_EQ(a.state().status, AccountStatus::kOpen);
}

TEST(BankAccountTest, RejectsOpeningTwice) {
  BankAccount a = Opened(kA, 0);
  EXPECT_EQ(a.Open("Bob", "EUR", 0).code(), absl::StatusCode::kAlreadyExists);
  EXPECT_TRUE(a.pending().empty());
}

TEST(BankAccountTest, RejectsBadOwnerCurrencyAndNegativeInitialDeposit) {
  BankAccount a{std::string(kA)};
  EXPECT_EQ(a.Open("", "EUR", 0).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(a.Open("   ", "EUR", 0).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(a.Open(std::string(201, 'x'), "EUR", 0).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(a.Open("bad\xff", "EUR", 0).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(a.Open("tab\there", "EUR", 0).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(a.Open("Alice", "eur", 0).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(a.Open("Alice", "EURO", 0).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(a.Open("Alice", "EUR", -1).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(a.pending().empty());
  EXPECT_EQ(a.state().version, 0);
  // 200 characters of multi-byte UTF-8 are fine.
  std::string owner;
  for (int i = 0; i < 200; ++i) owner += "\xc3\xa9";
  EXPECT_TRUE(a.Open(owner, "EUR", 0).ok());
}

TEST(BankAccountTest, DepositAndWithdrawChangeTheBalance) {
  BankAccount a = Opened(kA, 100);
  ASSERT_TRUE(a.Deposit(50).ok());
  ASSERT_TRUE(a.Withdraw(30).ok());
  EXPECT_EQ(a.state().balance, 120);
  EXPECT_EQ(a.state().version, 3);
  EXPECT_EQ(a.pending().size(), 2u);
}

TEST(BankAccountTest, RejectsNonPositiveAmounts) {
  BankAccount a = Opened(kA, 100);
  EXPECT_EQ(a.Deposit(0).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(a.Deposit(-5).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(a.Withdraw(0).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(a.Withdraw(std::numeric_limits<int64_t>::min()).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(a.pending().empty());
}

TEST(BankAccountTest, RejectsOverdraft) {
  BankAccount a = Opened(kA, 100);
  absl::Status s = a.Withdraw(101);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(s.message().find("insufficient funds"), absl::string_view::npos);
  EXPECT_EQ(a.state().balance, 100);
  EXPECT_TRUE(a.Withdraw(100).ok());
  EXPECT_EQ(a.state().balance, 0);
}

TEST(BankAccountTest, RejectsOverflow) {
  BankAccount a = Opened(kA, std::numeric_limits<int64_t>::max() - 1);
  EXPECT_EQ(a.Deposit(2).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(a.Deposit(1).ok());
  EXPECT_EQ(a.state().balance, std::numeric_limits<int64_t>::max());
}

TEST(BankAccountTest, UnopenedAccountIsNotFound) {
  BankAccount a{std::string(kA)};
  EXPECT_EQ(a.Deposit(1).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(a.Withdraw(1).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(a.Close().code(), absl::StatusCode::kNotFound);
}

TEST(BankAccountTest, CloseNeedsZeroBalanceAndThenAcceptsNothing) {
  BankAccount a = Opened(kA, 10);
  EXPECT_EQ(a.Close().code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(a.Withdraw(10).ok());
  ASSERT_TRUE(a.Close().ok());
  EXPECT_EQ(a.state().status, AccountStatus::kClosed);
  EXPECT_EQ(a.Deposit(1).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(a.Withdraw(1).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(a.Close().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(a.Open("Alice", "EUR", 0).code(), absl::StatusCode::kAlreadyExists);
}

TEST(BankAccountTest, TransferMovesMoneyBetweenTwoAccounts) {
  BankAccount a = Opened(kA, 100);
  BankAccount b = Opened(kB, 5);
  ASSERT_TRUE(Transfer(a, b, "t1", 40).ok());
  EXPECT_EQ(a.state().balance, 60);
  EXPECT_EQ(b.state().balance, 45);
  ASSERT_EQ(a.pending().size(), 1u);
  ASSERT_EQ(b.pending().size(), 1u);
  const auto& sent = std::get<events::v1::TransferSent>(a.pending()[0]);
  EXPECT_EQ(sent.to_account_id(), kB);
  const auto& recv = std::get<events::v1::TransferReceived>(b.pending()[0]);
  EXPECT_EQ(recv.from_account_id(), kA);
  EXPECT_EQ(recv.amount(), 40);
}

TEST(BankAccountTest, FailedTransferRecordsNothingOnEitherSide) {
  BankAccount a = Opened(kA, 100);
  BankAccount b = Opened(kB, 0);
  BankAccount usd = Opened("33333333-3333-4333-8333-333333333333", 0, "USD");
  EXPECT_EQ(Transfer(a, b, "t", 101).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(Transfer(a, usd, "t", 1).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(Transfer(a, a, "t", 1).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Transfer(a, b, "t", 0).code(), absl::StatusCode::kInvalidArgument);
  BankAccount none{std::string("44444444-4444-4444-8444-444444444444")};
  EXPECT_EQ(Transfer(a, none, "t", 1).code(), absl::StatusCode::kNotFound);
  BankAccount full = Opened("55555555-5555-4555-8555-555555555555",
                            std::numeric_limits<int64_t>::max());
  EXPECT_EQ(Transfer(a, full, "t", 1).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(a.pending().empty());
  EXPECT_TRUE(b.pending().empty());
  EXPECT_EQ(a.state().balance, 100);
}

TEST(BankAccountTest, ReplayingRecordedEventsRebuildsTheSameState) {
  BankAccount a{std::string(kA)};
  std::vector<AccountEvent> all;
  ASSERT_TRUE(a.Open("Alice", "EUR", 7).ok());
  ASSERT_TRUE(a.Deposit(100).ok());
  ASSERT_TRUE(a.Withdraw(30).ok());
  BankAccount b = Opened(kB, 0);
  ASSERT_TRUE(Transfer(a, b, "t", 77).ok());
  ASSERT_TRUE(a.Close().ok());
  BankAccount replayed{std::string(kA)};
  for (const AccountEvent& e : a.pending()) ASSERT_TRUE(replayed.Apply(e).ok());
  EXPECT_EQ(replayed.state(), a.state());
  EXPECT_EQ(replayed.state().status, AccountStatus::kClosed);
  EXPECT_EQ(replayed.state().version, 5);
}

// A stored event no command can have recorded (a hand-inserted or corrupt
// row) is refused with INTERNAL naming the account, the state unchanged.
TEST(BankAccountTest, ApplyRefusesEventsNoCommandCanRecord) {
  auto deposit = [](int64_t amount) {
    events::v1::MoneyDeposited e;
    e.set_amount(amount);
    return AccountEvent(e);
  };
  auto withdrawal = [](int64_t amount) {
    events::v1::MoneyWithdrawn e;
    e.set_amount(amount);
    return AccountEvent(e);
  };
  auto received = [](int64_t amount) {
    events::v1::TransferReceived e;
    e.set_amount(amount);
    return AccountEvent(e);
  };
  events::v1::AccountOpened negative_open;
  negative_open.set_owner("Alice");
  negative_open.set_currency("EUR");
  negative_open.set_initial_deposit(-1);
  const int64_t max = std::numeric_limits<int64_t>::max();
  BankAccount a = Opened(kA, 100);
  const AccountState before = a.state();
  for (const AccountEvent& e : {deposit(-5), withdrawal(-5), withdrawal(101),
                                received(max), AccountEvent(negative_open)}) {
    absl::Status s = a.Apply(e);
    EXPECT_EQ(s.code(), absl::StatusCode::kInternal);
    EXPECT_NE(s.message().find(kA), std::string::npos) << s;
    EXPECT_EQ(a.state(), before);
  }
  BankAccount fresh{std::string(kB)};
  EXPECT_EQ(fresh.Apply(AccountEvent(negative_open)).code(),
            absl::StatusCode::kInternal);
  EXPECT_EQ(fresh.state().version, 0);
  // At the edges: the whole balance, and up to the largest balance.
  EXPECT_TRUE(a.Apply(withdrawal(100)).ok());
  EXPECT_TRUE(a.Apply(deposit(max)).ok());
  EXPECT_EQ(a.state().balance, max);
  EXPECT_EQ(a.Apply(deposit(1)).code(), absl::StatusCode::kInternal);
}

}  // namespace
}  // namespace bank::domain

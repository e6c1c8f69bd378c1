// bankctl's amounts: parsing and formatting decimals, and the command
// service's refusals shown in decimals. The refusals come from the domain
// itself, so a change of its wording that the CLI no longer recognizes fails
// here.
#include "cli/money_format.h"

#include <cstdint>
#include <limits>

#include "common/domain/bank_account.h"
#include "gtest/gtest.h"

namespace bank::cli {
namespace {

using domain::BankAccount;

constexpr char kA[] = "0b3c0f4e-2d4c-4e7e-9a53-3f3c1f0e0a01";
constexpr char kB[] = "7d1f2a90-5b6e-4c1a-8f0d-2e9b7c4a5d02";

BankAccount Opened(const char* id, int64_t balance, const char* currency) {
  BankAccount a(id);
  EXPECT_TRUE(a.Open("Alice", currency, balance).ok());
  return a;
}

TEST(MoneyFormatTest, ParsesAndFormatsInTheCurrencysDecimals) {
  EXPECT_EQ(*ParseAmount("100.50", "EUR"), 10050);
  EXPECT_EQ(*ParseAmount("7", "JPY"), 7);
  EXPECT_FALSE(ParseAmount("1.005", "EUR").ok());
  EXPECT_FALSE(ParseAmount("1.5", "JPY").ok());
  EXPECT_EQ(FormatAmount(10050, "EUR"), "100.50");
  EXPECT_EQ(FormatAmount(-5, "EUR"), "-0.05");
  EXPECT_EQ(FormatAmount(7, "JPY"), "7");
}

TEST(MoneyFormatTest, InsufficientFundsInDecimals) {
  BankAccount a = Opened(kA, 5955, "EUR");
  absl::Status s = a.Withdraw(100000);
  ASSERT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(AmountsAsDecimals(s.message(), "EUR"),
            absl::StrCat("insufficient funds: account ", kA,
                         " has 59.55 EUR, 1000.00 EUR requested"));
  BankAccount b = Opened(kB, 0, "EUR");
  s = domain::Transfer(a, b, "t1", 6000);
  ASSERT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(AmountsAsDecimals(s.message(), "EUR"),
            absl::StrCat("insufficient funds: account ", kA,
                         " has 59.55 EUR, 60.00 EUR requested"));
}

TEST(MoneyFormatTest, CloseAndOverflowRefusalsInDecimals) {
  BankAccount a = Opened(kA, 5955, "EUR");
  absl::Status s = a.Close();
  ASSERT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(AmountsAsDecimals(s.message(), "EUR"),
            absl::StrCat("account ", kA,
                         " has a balance of 59.55 EUR; only an account with a "
                         "zero balance can be closed"));
  BankAccount full = Opened(kB, std::numeric_limits<int64_t>::max(), "JPY");
  s = full.Deposit(3);
  ASSERT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(AmountsAsDecimals(s.message(), "JPY"),
            absl::StrCat("depositing 3 JPY would overflow the balance of "
                         "account ",
                         kB));
}

TEST(MoneyFormatTest, LeavesOtherNumbersAlone) {
  const std::string m =
      "expected_version 5 but account 12 is at version 7; reload and retry";
  EXPECT_EQ(AmountsAsDecimals(m, "EUR"), m);
  EXPECT_EQ(AmountsAsDecimals("", "EUR"), "");
}

}  // namespace
}  // namespace bank::cli

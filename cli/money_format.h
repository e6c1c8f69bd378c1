#ifndef BANK_CLI_MONEY_FORMAT_H_
#define BANK_CLI_MONEY_FORMAT_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace bank::cli {

// Digits after the decimal point of a currency's minor unit (ISO 4217):
// 0 for JPY, KRW, ..., 3 for BHD, KWD, ..., 2 otherwise.
int MinorUnitDigits(absl::string_view currency);

// "100.5" in EUR -> 10050. Exact: no floating point; INVALID_ARGUMENT for
// signs, more decimals than the currency has, junk or overflow.
absl::StatusOr<int64_t> ParseAmount(absl::string_view text,
                                    absl::string_view currency);

// 10050 in EUR -> "100.50"; negative amounts get a leading '-'.
std::string FormatAmount(int64_t minor, absl::string_view currency);

// A command service message with its amounts (minor units) shown as
// decimals of `currency`: "account A has 4000, 100000 requested" in EUR ->
// "account A has 40.00 EUR, 1000.00 EUR requested"; likewise "depositing N",
// "transferring N" and "a balance of N". Other text is left as it is.
std::string AmountsAsDecimals(absl::string_view message,
                              absl::string_view currency);

}  // namespace bank::cli

#endif  // BANK_CLI_MONEY_FORMAT_H_

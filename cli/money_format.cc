#include "cli/money_format.h"

#include <regex>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace bank::cli {

int MinorUnitDigits(absl::string_view currency) {
  for (absl::string_view c :
       {"BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF",
        "UGX", "UYI", "VND", "VUV", "XAF", "XOF", "XPF"}) {
    if (currency == c) return 0;
  }
  for (absl::string_view c :
       {"BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"}) {
    if (currency == c) return 3;
  }
  return 2;
}

absl::StatusOr<int64_t> ParseAmount(absl::string_view text,
                                    absl::string_view currency) {
  const int digits = MinorUnitDigits(currency);
  const auto bad = [&](absl::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat("amount \"", text, "\" ", why));
  };
  if (text.empty()) return bad("is empty");
  size_t dot = text.find('.');
  absl::string_view whole = text.substr(0, dot);
  absl::string_view frac = dot == absl::string_view::npos
                               ? absl::string_view()
                               : text.substr(dot + 1);
  if (whole.empty() && frac.empty()) return bad("has no digits");
  if (static_cast<int>(frac.size()) > digits) {
    return bad(
        absl::StrCat("has more than ", digits, " decimals for ", currency));
  }
  int64_t out = 0;
  auto push = [&](char c) -> bool {
    if (c < '0' || c > '9') return false;
    if (__builtin_mul_overflow(out, int64_t{10}, &out)) return false;
    return !__builtin_add_overflow(out, int64_t{c - '0'}, &out);
  };
  for (char c : whole) {
    if (!push(c)) return bad("is not a plain decimal number or is too large");
  }
  for (int i = 0; i < digits; ++i) {
    char c = i < static_cast<int>(frac.size()) ? frac[i] : '0';
    if (!push(c)) return bad("is not a plain decimal number or is too large");
  }
  return out;
}

std::string FormatAmount(int64_t minor, absl::string_view currency) {
  const int digits = MinorUnitDigits(currency);
  bool negative = minor < 0;
  // Work in unsigned to print INT64_MIN correctly.
  uint64_t v = negative ? 0 - static_cast<uint64_t>(minor) : minor;
  std::string s = std::to_string(v);
  if (digits > 0) {
    if (static_cast<int>(s.size()) <= digits) {
      s.insert(0, digits + 1 - s.size(), '0');
    }
    s.insert(s.size() - digits, ".");
  }
  return negative ? "-" + s : s;
}

std::string AmountsAsDecimals(absl::string_view message,
                              absl::string_view currency) {
  // The command service's words around an amount (common/domain/).
  static const std::regex kAmounts(
      R"re((has |depositing |withdrawing |transferring |balance of |, )(-?\d+)(?= requested| would|,|;))re");
  const std::string text(message);
  std::string out;
  auto last = text.cbegin();
  for (std::sregex_iterator it(text.begin(), text.end(), kAmounts), end;
       it != end; ++it) {
    const std::smatch& m = *it;
    out.append(last, m[0].first);
    int64_t minor = 0;
    if (absl::SimpleAtoi(m[2].str(), &minor)) {
      absl::StrAppend(&out, m[1].str(), FormatAmount(minor, currency), " ",
                      currency);
    } else {
      out.append(m[0].first, m[0].second);
    }
    last = m[0].second;
  }
  out.append(last, text.cend());
  return out;
}

}  // namespace bank::cli

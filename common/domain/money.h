#ifndef BANK_COMMON_DOMAIN_MONEY_H_
#define BANK_COMMON_DOMAIN_MONEY_H_

#include <cstdint>
#include <optional>

namespace bank::domain {

// Amounts are int64 minor units. These return nullopt instead of overflowing.
inline std::optional<int64_t> CheckedAdd(int64_t a, int64_t b) {
  int64_t out;
  if (__builtin_add_overflow(a, b, &out)) return std::nullopt;
  return out;
}

inline std::optional<int64_t> CheckedSub(int64_t a, int64_t b) {
  int64_t out;
  if (__builtin_sub_overflow(a, b, &out)) return std::nullopt;
  return out;
}

}  // namespace bank::domain

#endif  // BANK_COMMON_DOMAIN_MONEY_H_

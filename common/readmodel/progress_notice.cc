#include "common/readmodel/progress_notice.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace bank::readmodel {
namespace {

// "b <applied> <account>:<version>:<balance>:<status>:<updated_us> ..."
// The format before it, "a <applied> <account>:<version> ...", named the
// versions only; it is still read (from a projector of the previous
// version during a rolling upgrade), as accounts without rows.
constexpr absl::string_view kRowsTag = "b";
constexpr absl::string_view kVersionsTag = "a";
constexpr absl::string_view kResetTag = "reset";

bool ParseVersion(absl::string_view text, int64_t* version) {
  return absl::SimpleAtoi(text, version) && *version >= 1;
}

// One "<account>:<version>[:<balance>:<status>:<updated_us>]" item.
bool ParseItem(absl::string_view item, bool rows, MovedAccount* out) {
  std::vector<absl::string_view> f = absl::StrSplit(item, ':');
  if (f.size() != (rows ? 5u : 2u) || f[0].empty()) return false;
  out->account_id = std::string(f[0]);
  if (!ParseVersion(f[1], &out->version)) return false;
  if (!rows) return true;
  out->has_row = true;
  return absl::SimpleAtoi(f[2], &out->balance) &&
         absl::SimpleAtoi(f[3], &out->status) && out->status > 0 &&
         absl::SimpleAtoi(f[4], &out->updated_us);
}

}  // namespace

std::string EncodeReset() { return std::string(kResetTag); }

std::vector<std::string> EncodeProgress(
    int64_t applied, const std::vector<MovedAccount>& accounts,
    size_t max_payload, size_t max_notices) {
  std::vector<std::string> out;
  const std::string head = absl::StrCat(kRowsTag, " ", applied);
  out.push_back(head);
  for (const MovedAccount& a : accounts) {
    std::string item = absl::StrCat(" ", a.account_id, ":", a.version, ":",
                                    a.balance, ":", a.status, ":",
                                    a.updated_us);
    if (out.back().size() + item.size() > max_payload) {
      if (out.size() == max_notices ||
          head.size() + item.size() > max_payload) {
        return {EncodeReset()};
      }
      out.push_back(head);
    }
    out.back() += item;
  }
  return out;
}

ProgressNotice DecodeProgress(absl::string_view payload) {
  ProgressNotice reset;
  reset.reset = true;
  std::vector<absl::string_view> parts =
      absl::StrSplit(payload, ' ', absl::SkipEmpty());
  if (parts.size() < 2 || (parts[0] != kRowsTag && parts[0] != kVersionsTag)) {
    return reset;
  }
  const bool rows = parts[0] == kRowsTag;
  ProgressNotice n;
  if (!absl::SimpleAtoi(parts[1], &n.applied) || n.applied < 0) return reset;
  n.accounts.resize(parts.size() - 2);
  for (size_t i = 2; i < parts.size(); ++i) {
    if (!ParseItem(parts[i], rows, &n.accounts[i - 2])) return reset;
  }
  return n;
}

}  // namespace bank::readmodel

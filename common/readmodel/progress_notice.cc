#include "common/readmodel/progress_notice.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace bank::readmodel {
namespace {

// "a <applied> <account>:<version> <account>:<version> ..."
constexpr absl::string_view kBatchTag = "a";
constexpr absl::string_view kResetTag = "reset";

}  // namespace

std::string EncodeReset() { return std::string(kResetTag); }

std::vector<std::string> EncodeProgress(
    int64_t applied,
    const std::vector<std::pair<std::string, int64_t>>& accounts,
    size_t max_payload, size_t max_notices) {
  std::vector<std::string> out;
  const std::string head = absl::StrCat(kBatchTag, " ", applied);
  out.push_back(head);
  for (const auto& [id, version] : accounts) {
    std::string item = absl::StrCat(" ", id, ":", version);
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
  if (parts.size() < 2 || parts[0] != kBatchTag) return reset;
  ProgressNotice n;
  if (!absl::SimpleAtoi(parts[1], &n.applied) || n.applied < 0) return reset;
  n.accounts.reserve(parts.size() - 2);
  for (size_t i = 2; i < parts.size(); ++i) {
    size_t colon = parts[i].rfind(':');
    if (colon == absl::string_view::npos || colon == 0) return reset;
    int64_t version = 0;
    if (!absl::SimpleAtoi(parts[i].substr(colon + 1), &version) ||
        version < 1) {
      return reset;
    }
    n.accounts.emplace_back(std::string(parts[i].substr(0, colon)), version);
  }
  return n;
}

}  // namespace bank::readmodel

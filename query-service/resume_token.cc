#include "query-service/resume_token.h"

#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "query-service/page_token.h"

namespace bank::query {
namespace {

constexpr char kField[] = "resume_token";

std::string Scope(const std::string& deployment) {
  return absl::StrCat("entries:", deployment);
}

}  // namespace

std::string EncodeResumeToken(const std::string& deployment,
                              EntryPosition at) {
  return EncodePageToken(Scope(deployment),
                         absl::StrCat(at.transaction_id, ".", at.position));
}

absl::StatusOr<EntryPosition> DecodeResumeToken(const std::string& deployment,
                                                const std::string& token) {
  if (token.empty()) return EntryPosition{};
  absl::StatusOr<std::string> key =
      DecodePageToken(Scope(deployment), token, kField);
  if (!key.ok()) return key.status();
  std::vector<std::string> parts = absl::StrSplit(*key, '.');
  EntryPosition at;
  if (parts.size() != 2 || !absl::SimpleAtoi(parts[0], &at.transaction_id) ||
      !absl::SimpleAtoi(parts[1], &at.position) || at.transaction_id < 0 ||
      at.position < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(kField, " names no position in the stream"));
  }
  return at;
}

}  // namespace bank::query

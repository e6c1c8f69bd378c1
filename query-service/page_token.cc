#include "query-service/page_token.h"

#include <cstdint>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace bank::query {
namespace {

constexpr char kVersion[] = "p1";

uint64_t Fnv1a(const std::string& s) {
  uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  return h;
}

std::string Body(const std::string& scope, const std::string& key) {
  return absl::StrCat(kVersion, "|", scope, "|", key);
}

}  // namespace

std::string EncodePageToken(const std::string& scope, const std::string& key) {
  std::string body = Body(scope, key);
  return absl::WebSafeBase64Escape(
      absl::StrCat(body, "|", Fnv1a(absl::StrCat("bank-page-token|", body))));
}

absl::StatusOr<std::string> DecodePageToken(const std::string& scope,
                                            const std::string& token,
                                            const std::string& field) {
  const auto bad = [&] {
    return absl::InvalidArgumentError(absl::StrCat(
        field,
        " is not a token this listing returned; start again with an "
        "empty ",
        field));
  };
  std::string raw;
  if (token.size() > 512 || !absl::WebSafeBase64Unescape(token, &raw)) {
    return bad();
  }
  size_t bar = raw.rfind('|');
  if (bar == std::string::npos) return bad();
  std::string body = raw.substr(0, bar);
  uint64_t sum = 0;
  if (!absl::SimpleAtoi(raw.substr(bar + 1), &sum) ||
      sum != Fnv1a(absl::StrCat("bank-page-token|", body))) {
    return bad();
  }
  std::string prefix = absl::StrCat(kVersion, "|", scope, "|");
  if (body.rfind(prefix, 0) != 0) return bad();
  return body.substr(prefix.size());
}

}  // namespace bank::query

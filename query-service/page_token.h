#ifndef BANK_QUERY_SERVICE_PAGE_TOKEN_H_
#define BANK_QUERY_SERVICE_PAGE_TOKEN_H_

#include <string>

#include "absl/status/statusor.h"

namespace bank::query {

// Opaque keyset page tokens: "where the previous page ended", scoped to one
// listing (e.g. "accounts" or "history:<account id>"), with a checksum so a
// changed or made-up token is refused (INVALID_ARGUMENT) instead of misread.
std::string EncodePageToken(const std::string& scope, const std::string& key);
// The key of a token made for `scope`; INVALID_ARGUMENT naming `field`
// (the request field that carried it) for any other.
absl::StatusOr<std::string> DecodePageToken(
    const std::string& scope, const std::string& token,
    const std::string& field = "page_token");

}  // namespace bank::query

#endif  // BANK_QUERY_SERVICE_PAGE_TOKEN_H_

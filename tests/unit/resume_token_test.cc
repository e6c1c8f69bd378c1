// StreamEntries' resume tokens: opaque, scoped to one deployment, refused
// when mangled or made up.
#include "query-service/resume_token.h"

#include <gtest/gtest.h>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"

namespace bank::query {
namespace {

TEST(ResumeTokenTest, RoundTripsAndEmptyIsTheStart) {
  const EntryPosition at{4'000'000'123, 987'654};
  const std::string token = EncodeResumeToken("bank-a", at);
  absl::StatusOr<EntryPosition> back = DecodeResumeToken("bank-a", token);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, at);
  absl::StatusOr<EntryPosition> start = DecodeResumeToken("bank-a", "");
  ASSERT_TRUE(start.ok());
  EXPECT_EQ(*start, EntryPosition{});
}

TEST(ResumeTokenTest, ForeignMangledAndMadeUpTokensAreRefused) {
  const std::string token = EncodeResumeToken("bank-a", {7, 9});
  std::string mangled = token;
  mangled[mangled.size() / 2] ^= 1;
  for (const std::string& bad :
       {token + "x", mangled, std::string("not a token"),
        absl::WebSafeBase64Escape("p1|entries:bank-a|7.9|1")}) {
    absl::StatusOr<EntryPosition> r = DecodeResumeToken("bank-a", bad);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_TRUE(absl::StrContains(r.status().message(), "resume_token"));
  }
  // Another deployment's token.
  EXPECT_EQ(DecodeResumeToken("bank-b", token).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace bank::query

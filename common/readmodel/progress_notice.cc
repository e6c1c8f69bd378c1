#include "common/readmodel/progress_notice.h"

#include <algorithm>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace bank::readmodel {
namespace {

// "b <applied>
// <account>:<version>:<balance>:<status>:<updated_us>[:<currency>:<owner>]
// ...", the owner percent-encoded (bytes up to ' ', ':', '%' and DEL).
// The format before it, "a <applied> <account>:<version> ...", named the
// versions only; it is still read (from a projector of the previous
// version during a rolling upgrade), as accounts without rows.
constexpr absl::string_view kRowsTag = "b";
constexpr absl::string_view kVersionsTag = "a";
constexpr absl::string_view kResetTag = "reset";

bool Escaped(unsigned char c) {
  return c <= ' ' || c == ':' || c == '%' || c == 0x7f;
}

void AppendEscaped(absl::string_view text, std::string* out) {
  constexpr char kHex[] = "0123456789ABCDEF";
  for (unsigned char c : text) {
    if (Escaped(c)) {
      out->push_back('%');
      out->push_back(kHex[c >> 4]);
      out->push_back(kHex[c & 15]);
    } else {
      out->push_back(static_cast<char>(c));
    }
  }
}

bool Unescape(absl::string_view text, std::string* out) {
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  out->clear();
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '%') {
      out->push_back(text[i]);
      continue;
    }
    if (i + 2 >= text.size() || hex(text[i + 1]) < 0 || hex(text[i + 2]) < 0) {
      return false;
    }
    const unsigned char c =
        static_cast<unsigned char>(hex(text[i + 1]) * 16 + hex(text[i + 2]));
    if (!Escaped(c)) return false;  // One encoding per text.
    out->push_back(static_cast<char>(c));
    i += 2;
  }
  return !out->empty();
}

bool ParseVersion(absl::string_view text, int64_t* version) {
  return absl::SimpleAtoi(text, version) && *version >= 1;
}

// One "<account>:<version>[:<balance>:<status>:<updated_us>[:<currency>:
// <owner>]]" item.
bool ParseItem(absl::string_view item, bool rows, MovedAccount* out) {
  std::vector<absl::string_view> f = absl::StrSplit(item, ':');
  const bool sized = rows ? f.size() == 5 || f.size() == 7 : f.size() == 2;
  if (!sized || f[0].empty()) return false;
  out->account_id = std::string(f[0]);
  if (!ParseVersion(f[1], &out->version)) return false;
  if (!rows) return true;
  out->has_row = true;
  if (!absl::SimpleAtoi(f[2], &out->balance) ||
      !absl::SimpleAtoi(f[3], &out->status) || out->status <= 0 ||
      !absl::SimpleAtoi(f[4], &out->updated_us)) {
    return false;
  }
  if (f.size() == 5) return true;
  out->currency = std::string(f[5]);
  return !out->currency.empty() &&
         out->currency.find('%') == std::string::npos &&
         Unescape(f[6], &out->owner);
}

std::string Item(const MovedAccount& a, bool with_owner) {
  std::string item = absl::StrCat(" ", a.account_id, ":", a.version, ":",
                                  a.balance, ":", a.status, ":", a.updated_us);
  if (with_owner) {
    absl::StrAppend(&item, ":", a.currency, ":");
    AppendEscaped(a.owner, &item);
  }
  return item;
}

// The payloads, or empty when they do not fit.
std::vector<std::string> Encode(int64_t applied,
                                const std::vector<MovedAccount>& accounts,
                                bool with_owners, size_t max_payload,
                                size_t max_notices) {
  std::vector<std::string> out;
  const std::string head = absl::StrCat(kRowsTag, " ", applied);
  out.push_back(head);
  for (const MovedAccount& a : accounts) {
    std::string item = Item(a, with_owners);
    if (out.back().size() + item.size() > max_payload) {
      if (out.size() == max_notices ||
          head.size() + item.size() > max_payload) {
        return {};
      }
      out.push_back(head);
    }
    out.back() += item;
  }
  return out;
}

}  // namespace

std::string EncodeReset() { return std::string(kResetTag); }

std::vector<std::string> EncodeProgress(
    int64_t applied, const std::vector<MovedAccount>& accounts,
    size_t max_payload, size_t max_notices) {
  const bool owners =
      std::all_of(accounts.begin(), accounts.end(), [](const MovedAccount& a) {
        return !a.currency.empty() && !a.owner.empty() &&
               a.currency.find_first_of(" :%") == std::string::npos;
      });
  std::vector<std::string> out;
  if (owners) out = Encode(applied, accounts, true, max_payload, max_notices);
  if (out.empty()) {
    out = Encode(applied, accounts, false, max_payload, max_notices);
  }
  if (out.empty()) return {EncodeReset()};
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

#include "common/db/array_literal.h"

namespace bank::db {

std::string ToArrayLiteral(const std::vector<std::string>& items) {
  return ToArrayLiteral(items, /*empty_is_null=*/false);
}

std::string ToArrayLiteral(const std::vector<std::string>& items,
                           bool empty_is_null) {
  std::string out = "{";
  for (size_t i = 0; i < items.size(); ++i) {
    if (i > 0) out.push_back(',');
    if (empty_is_null && items[i].empty()) {
      out.append("NULL");
      continue;
    }
    out.push_back('"');
    for (char c : items[i]) {
      if (c == '"' || c == '\\') out.push_back('\\');
      out.push_back(c);
    }
    out.push_back('"');
  }
  out.push_back('}');
  return out;
}

}  // namespace bank::db

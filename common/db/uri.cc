#include "common/db/uri.h"

#include <regex>

namespace bank::db {

std::string MaskPassword(absl::string_view conninfo) {
  std::string s(conninfo);
  // userinfo of a URI: scheme://user:password@
  static const std::regex kUserInfo(R"((postgres(?:ql)?://[^:/@?]*:)[^@/?]*@)");
  s = std::regex_replace(s, kUserInfo, "$1****@");
  // password=... as a URI query parameter or a key=value pair.
  static const std::regex kParam(
      R"((password\s*=\s*)('(?:[^'\\]|\\.)*'|[^&\s]*))", std::regex::icase);
  s = std::regex_replace(s, kParam, "$1****");
  return s;
}

}  // namespace bank::db

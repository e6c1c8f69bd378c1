#ifndef BANK_COMMON_DB_ARRAY_LITERAL_H_
#define BANK_COMMON_DB_ARRAY_LITERAL_H_

#include <string>
#include <vector>

namespace bank::db {

// Encodes strings as a PostgreSQL array literal ({"a","b"}), quoting every
// element, for passing arrays as a single text parameter. With
// empty_is_null, an empty string is written as NULL ({NULL,"b"}).
std::string ToArrayLiteral(const std::vector<std::string>& items);
std::string ToArrayLiteral(const std::vector<std::string>& items,
                           bool empty_is_null);

}  // namespace bank::db

#endif  // BANK_COMMON_DB_ARRAY_LITERAL_H_

#ifndef BANK_COMMON_DB_URI_H_
#define BANK_COMMON_DB_URI_H_

#include <string>

#include "absl/strings/string_view.h"

namespace bank::db {

// The connection string with any password replaced by "****", for logs.
// Handles URIs (postgresql://user:secret@host/db, ?password=...) and
// key=value strings (password=secret).
std::string MaskPassword(absl::string_view conninfo);

}  // namespace bank::db

#endif  // BANK_COMMON_DB_URI_H_

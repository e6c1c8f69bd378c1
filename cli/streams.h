#ifndef BANK_CLI_STREAMS_H_
#define BANK_CLI_STREAMS_H_

#include <cstdint>
#include <string>

#include "cli/client.h"

namespace bank::cli {

// `bankctl watch`: prints the account's entries after `after_version`, then
// each new one as it comes, until SIGINT or SIGTERM. A stream that ends
// UNAVAILABLE (the query service restarting, say) is opened again from the
// last version printed. Throws a Failure for any other error.
// REQUIRES: util::BlockTerminationSignals() was called.
void Watch(Client& c, const std::string& account, int64_t after_version);

// `bankctl tail`: prints every account's entries from `token` ("" for the
// first), then live, the same way; on the signal, prints the token to resume
// from on stderr ("resume: --resume TOKEN").
void Tail(Client& c, const std::string& token, int max_batch);

}  // namespace bank::cli

#endif  // BANK_CLI_STREAMS_H_

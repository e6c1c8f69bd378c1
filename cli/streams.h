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

// `bankctl consume`: joins `group` as `member`, prints each entry of the
// member's partitions and acknowledges it once printed, and says each new
// assignment on stderr; the same way until the signal. A stream that ends
// UNAVAILABLE joins again (and, after it had joined once, so does a join
// refused ALREADY_EXISTS: its former connection's lease has not yet run
// out).
void Consume(Client& c, const std::string& group, const std::string& member,
             bool from_now, int max_unacked);

}  // namespace bank::cli

#endif  // BANK_CLI_STREAMS_H_

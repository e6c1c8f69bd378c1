#ifndef BANK_COMMON_DOMAIN_EVENTS_H_
#define BANK_COMMON_DOMAIN_EVENTS_H_

#include <string>
#include <variant>

#include "bank/events/v1/events.pb.h"

namespace bank::domain {

// One event of an account's stream. The payload types are generated from
// proto/bank/events/v1/events.proto, the single definition of the events.
using AccountEvent = std::variant<
    bank::events::v1::AccountOpened, bank::events::v1::MoneyDeposited,
    bank::events::v1::MoneyWithdrawn, bank::events::v1::TransferSent,
    bank::events::v1::TransferReceived, bank::events::v1::AccountClosed>;

// The stored type name of an event ("AccountOpened", ...): its message name.
inline std::string EventTypeName(const AccountEvent& event) {
  return std::visit(
      [](const auto& e) { return std::string(e.GetDescriptor()->name()); },
      event);
}

}  // namespace bank::domain

#endif  // BANK_COMMON_DOMAIN_EVENTS_H_

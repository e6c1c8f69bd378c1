#ifndef BANK_COMMON_GRPC_CONTEXT_H_
#define BANK_COMMON_GRPC_CONTEXT_H_

#include <grpcpp/server_context.h>

#include <string>

#include "absl/time/time.h"

namespace bank::grpcutil {

// The longest a call may run when the client set no deadline.
inline constexpr absl::Duration kDefaultCallTimeout = absl::Seconds(30);

// The call's deadline, capped at now + kDefaultCallTimeout.
inline absl::Time DeadlineOf(const grpc::ServerContextBase& ctx) {
  absl::Time cap = absl::Now() + kDefaultCallTimeout;
  absl::Time d = absl::FromChrono(ctx.deadline());
  return d < cap ? d : cap;
}

// The client's "x-correlation-id" metadata, or "".
inline std::string CorrelationIdOf(const grpc::ServerContextBase& ctx) {
  const auto& md = ctx.client_metadata();
  auto it = md.find("x-correlation-id");
  if (it == md.end()) return "";
  std::string v(it->second.data(), it->second.size());
  if (v.size() > 128) v.resize(128);
  return v;
}

}  // namespace bank::grpcutil

#endif  // BANK_COMMON_GRPC_CONTEXT_H_

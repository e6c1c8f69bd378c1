#include "command-service/command_service.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "common/grpc/context.h"
#include "common/grpc/status.h"
#include "common/log/log.h"

namespace bank::command {

std::unique_ptr<metrics::RpcMetrics> CommandServiceImpl::Outcomes(
    metrics::Registry& metrics, const char* rpc) {
  return std::make_unique<metrics::RpcMetrics>(
      metrics, "bank_commands_total", "Commands by type and status code.",
      "bank_command_duration_seconds",
      "Command latency in the service, by type.", "type", rpc);
}

template <typename Resp, typename Fn>
grpc::Status CommandServiceImpl::Run(const grpc::ServerContextBase& ctx,
                                     const char* rpc,
                                     metrics::RpcMetrics& outcomes,
                                     const std::string& command_id, Resp* resp,
                                     Fn fn) {
  const absl::Time start = absl::Now();
  absl::Time deadline = grpcutil::DeadlineOf(ctx);
  // Load shedding: refuse at once rather than queue without bound.
  struct InFlight {
    std::atomic<int>& n;
    const int count = n.fetch_add(1) + 1;
    ~InFlight() { n.fetch_sub(1); }
  } in_flight{in_flight_};
  absl::StatusOr<Resp> out =
      in_flight.count > max_in_flight_
          ? absl::StatusOr<Resp>(absl::ResourceExhaustedError(
                absl::StrCat("command service overloaded (", max_in_flight_,
                             " commands in progress); retry with backoff")))
      : absl::Now() >= deadline
          ? absl::StatusOr<Resp>(absl::DeadlineExceededError(
                "deadline passed before the command started"))
          : fn(grpcutil::CorrelationIdOf(ctx), deadline);
  outcomes.Record(out.status().code(), absl::Now() - start);
  if (!out.ok()) {
    const auto code = out.status().code();
    if (code == absl::StatusCode::kInternal ||
        code == absl::StatusCode::kUnavailable) {
      spdlog::warn("{} command_id={} failed: {}", rpc, command_id,
                   out.status().ToString());
    } else {
      spdlog::debug("{} command_id={} rejected: {}", rpc, command_id,
                    out.status().ToString());
    }
    return grpcutil::ToGrpcStatus(out.status());
  }
  *resp = *std::move(out);
  return grpc::Status::OK;
}

grpc::Status CommandServiceImpl::OpenAccount(const grpc::ServerContextBase& ctx,
                                             const v1::OpenAccountRequest& req,
                                             v1::CommandResult* resp) {
  return Run(ctx, "OpenAccount", *open_account_metrics_, req.command_id(), resp,
             [&](const std::string& corr, absl::Time deadline) {
               return handler_.OpenAccount(req, corr, deadline);
             });
}

grpc::Status CommandServiceImpl::Deposit(const grpc::ServerContextBase& ctx,
                                         const v1::DepositRequest& req,
                                         v1::CommandResult* resp) {
  return Run(ctx, "Deposit", *deposit_metrics_, req.command_id(), resp,
             [&](const std::string& corr, absl::Time deadline) {
               return handler_.Deposit(req, corr, deadline);
             });
}

grpc::Status CommandServiceImpl::Withdraw(const grpc::ServerContextBase& ctx,
                                          const v1::WithdrawRequest& req,
                                          v1::CommandResult* resp) {
  return Run(ctx, "Withdraw", *withdraw_metrics_, req.command_id(), resp,
             [&](const std::string& corr, absl::Time deadline) {
               return handler_.Withdraw(req, corr, deadline);
             });
}

grpc::Status CommandServiceImpl::Transfer(const grpc::ServerContextBase& ctx,
                                          const v1::TransferRequest& req,
                                          v1::TransferResult* resp) {
  return Run(ctx, "Transfer", *transfer_metrics_, req.command_id(), resp,
             [&](const std::string& corr, absl::Time deadline) {
               return handler_.Transfer(req, corr, deadline);
             });
}

grpc::Status CommandServiceImpl::CloseAccount(
    const grpc::ServerContextBase& ctx, const v1::CloseAccountRequest& req,
    v1::CommandResult* resp) {
  return Run(ctx, "CloseAccount", *close_account_metrics_, req.command_id(),
             resp, [&](const std::string& corr, absl::Time deadline) {
               return handler_.CloseAccount(req, corr, deadline);
             });
}

}  // namespace bank::command

#include "command-service/command_rpcs.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "common/grpc/context.h"
#include "common/grpc/status.h"
#include "common/log/log.h"
#include "common/util/outcome.h"

namespace bank::command {

std::unique_ptr<metrics::RpcMetrics> CommandRpcs::Outcomes(
    metrics::Registry& metrics, const char* rpc) {
  return std::make_unique<metrics::RpcMetrics>(
      metrics, "bank_commands_total", "Commands by type and status code.",
      "bank_command_duration_seconds",
      "Command latency in the service, by type.", "type", rpc);
}

absl::Status CommandRpcs::OnTheWire(const absl::Status& s) {
  if (s.code() != absl::StatusCode::kUnavailable) return s;
  if (util::IsOutcomeUnknown(s)) {
    return absl::UnavailableError(
        absl::StrCat(kOutcomeUnknown, s.message(),
                     "; retrying with the same command_id is safe"));
  }
  return absl::UnavailableError(absl::StrCat(kNotApplied, s.message()));
}

template <typename Resp>
grpc::Status CommandRpcs::Conclude(const char* rpc,
                                   metrics::RpcMetrics& outcomes,
                                   const std::string& command_id,
                                   absl::Time start, absl::StatusOr<Resp> out,
                                   Resp* resp) {
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
    return grpcutil::ToGrpcStatus(OnTheWire(out.status()));
  }
  *resp = *std::move(out);
  return grpc::Status::OK;
}

template <typename Resp, typename StartFn>
void CommandRpcs::Begin(const grpc::ServerContextBase& ctx, const char* rpc,
                        metrics::RpcMetrics& outcomes,
                        const std::string& command_id, Resp* resp,
                        Finish finish, StartFn start) {
  const absl::Time begun = absl::Now();
  const absl::Time deadline = grpcutil::DeadlineOf(ctx);
  // Load shedding: refuse at once rather than queue without bound. A
  // command counts until it is answered.
  const int count = in_flight_.fetch_add(1) + 1;
  CommandHandler::Done<Resp> done =
      [this, rpc, &outcomes, command_id, begun, resp,
       finish = std::move(finish)](absl::StatusOr<Resp> out) {
        grpc::Status status =
            Conclude(rpc, outcomes, command_id, begun, std::move(out), resp);
        in_flight_.fetch_sub(1);
        finish(std::move(status));
      };
  if (count > max_in_flight_) {
    done(absl::ResourceExhaustedError(
        absl::StrCat("command service overloaded (", max_in_flight_,
                     " commands in progress); retry with backoff")));
  } else if (absl::Now() >= deadline) {
    done(absl::DeadlineExceededError(
        "deadline passed before the command started"));
  } else {
    start(grpcutil::CorrelationIdOf(ctx), deadline, std::move(done));
  }
}

void CommandRpcs::OpenAccountAsync(
    const grpc::ServerContextBase& ctx,
    std::shared_ptr<const v1::OpenAccountRequest> req, v1::CommandResult* resp,
    Finish finish) {
  Begin(ctx, "OpenAccount", *open_account_metrics_, req->command_id(), resp,
        std::move(finish),
        [&](const std::string& corr, absl::Time deadline,
            CommandHandler::Done<v1::CommandResult> done) {
          handler_.OpenAccount(std::move(req), corr, deadline, std::move(done));
        });
}

void CommandRpcs::DepositAsync(const grpc::ServerContextBase& ctx,
                               std::shared_ptr<const v1::DepositRequest> req,
                               v1::CommandResult* resp, Finish finish) {
  Begin(ctx, "Deposit", *deposit_metrics_, req->command_id(), resp,
        std::move(finish),
        [&](const std::string& corr, absl::Time deadline,
            CommandHandler::Done<v1::CommandResult> done) {
          handler_.Deposit(std::move(req), corr, deadline, std::move(done));
        });
}

void CommandRpcs::WithdrawAsync(const grpc::ServerContextBase& ctx,
                                std::shared_ptr<const v1::WithdrawRequest> req,
                                v1::CommandResult* resp, Finish finish) {
  Begin(ctx, "Withdraw", *withdraw_metrics_, req->command_id(), resp,
        std::move(finish),
        [&](const std::string& corr, absl::Time deadline,
            CommandHandler::Done<v1::CommandResult> done) {
          handler_.Withdraw(std::move(req), corr, deadline, std::move(done));
        });
}

void CommandRpcs::TransferAsync(const grpc::ServerContextBase& ctx,
                                std::shared_ptr<const v1::TransferRequest> req,
                                v1::TransferResult* resp, Finish finish) {
  Begin(ctx, "Transfer", *transfer_metrics_, req->command_id(), resp,
        std::move(finish),
        [&](const std::string& corr, absl::Time deadline,
            CommandHandler::Done<v1::TransferResult> done) {
          handler_.Transfer(std::move(req), corr, deadline, std::move(done));
        });
}

void CommandRpcs::CloseAccountAsync(
    const grpc::ServerContextBase& ctx,
    std::shared_ptr<const v1::CloseAccountRequest> req, v1::CommandResult* resp,
    Finish finish) {
  Begin(ctx, "CloseAccount", *close_account_metrics_, req->command_id(), resp,
        std::move(finish),
        [&](const std::string& corr, absl::Time deadline,
            CommandHandler::Done<v1::CommandResult> done) {
          handler_.CloseAccount(std::move(req), corr, deadline,
                                std::move(done));
        });
}

}  // namespace bank::command

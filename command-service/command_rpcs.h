#ifndef BANK_COMMAND_SERVICE_COMMAND_RPCS_H_
#define BANK_COMMAND_SERVICE_COMMAND_RPCS_H_

#include <atomic>
#include <functional>
#include <memory>
#include <string>

#include "bank/v1/bank.grpc.pb.h"
#include "command-service/command_handler.h"
#include "common/metrics/metrics.h"

namespace bank::command {

// bank.v1.CommandService over a CommandHandler: takes the call's deadline
// and correlation id (metadata "x-correlation-id") and converts statuses.
class CommandRpcs final {
 public:
  // Records bank_commands_total{type,code} and
  // bank_command_duration_seconds{type} in `metrics`.
  // At most max_in_flight commands run at once; more are refused at once
  // with RESOURCE_EXHAUSTED (load shedding).
  CommandRpcs(CommandHandler& handler, metrics::Registry& metrics,
              int max_in_flight = 256)
      : handler_(handler),
        metrics_(metrics),
        max_in_flight_(max_in_flight),
        open_account_metrics_(Outcomes(metrics, "OpenAccount")),
        deposit_metrics_(Outcomes(metrics, "Deposit")),
        withdraw_metrics_(Outcomes(metrics, "Withdraw")),
        transfer_metrics_(Outcomes(metrics, "Transfer")),
        close_account_metrics_(Outcomes(metrics, "CloseAccount")) {}

  // One per RPC of bank.v1.CommandService, through CommandHandler (which
  // never blocks the calling thread): `finish` is called once,
  // with *resp filled in when the status is OK, maybe on another thread; it
  // must not block. `ctx` is read at once.
  using Finish = std::function<void(grpc::Status)>;
  void OpenAccountAsync(const grpc::ServerContextBase& ctx,
                        std::shared_ptr<const v1::OpenAccountRequest> req,
                        v1::CommandResult* resp, Finish finish);
  void DepositAsync(const grpc::ServerContextBase& ctx,
                    std::shared_ptr<const v1::DepositRequest> req,
                    v1::CommandResult* resp, Finish finish);
  void WithdrawAsync(const grpc::ServerContextBase& ctx,
                     std::shared_ptr<const v1::WithdrawRequest> req,
                     v1::CommandResult* resp, Finish finish);
  void TransferAsync(const grpc::ServerContextBase& ctx,
                     std::shared_ptr<const v1::TransferRequest> req,
                     v1::TransferResult* resp, Finish finish);
  void CloseAccountAsync(const grpc::ServerContextBase& ctx,
                         std::shared_ptr<const v1::CloseAccountRequest> req,
                         v1::CommandResult* resp, Finish finish);

  // How an UNAVAILABLE answer begins: the command was not applied (nothing
  // of it was written, so any retry is safe), or it may have been (the
  // service could not learn it within the deadline; a retry with the same
  // command_id is safe and answers the command's true result). Clients may
  // rely on these prefixes. An UNAVAILABLE with neither came from the
  // transport (the service was unreachable, or went away during the call):
  // its outcome is unknown.
  static constexpr char kNotApplied[] = "not applied: ";
  static constexpr char kOutcomeUnknown[] = "outcome unknown: ";
  // `s` as the client sees it: an UNAVAILABLE gets one of the prefixes.
  static absl::Status OnTheWire(const absl::Status& s);

 private:
  // Takes the call's deadline and correlation id, sheds load, then
  // start(correlation_id, deadline, done) runs the command and calls done
  // once with its outcome.
  template <typename Resp, typename StartFn>
  void Begin(const grpc::ServerContextBase& ctx, const char* rpc,
             metrics::RpcMetrics& outcomes, const std::string& command_id,
             Resp* resp, Finish finish, StartFn start);
  // Records the outcome, logs a failure, fills *resp when OK.
  template <typename Resp>
  grpc::Status Conclude(const char* rpc, metrics::RpcMetrics& outcomes,
                        const std::string& command_id, absl::Time start,
                        absl::StatusOr<Resp> out, Resp* resp);
  static std::unique_ptr<metrics::RpcMetrics> Outcomes(
      metrics::Registry& metrics, const char* rpc);

  CommandHandler& handler_;
  metrics::Registry& metrics_;
  const int max_in_flight_;
  std::atomic<int> in_flight_{0};
  // bank_commands_total and bank_command_duration_seconds, per type.
  std::unique_ptr<metrics::RpcMetrics> open_account_metrics_;
  std::unique_ptr<metrics::RpcMetrics> deposit_metrics_;
  std::unique_ptr<metrics::RpcMetrics> withdraw_metrics_;
  std::unique_ptr<metrics::RpcMetrics> transfer_metrics_;
  std::unique_ptr<metrics::RpcMetrics> close_account_metrics_;
};

}  // namespace bank::command

#endif  // BANK_COMMAND_SERVICE_COMMAND_RPCS_H_

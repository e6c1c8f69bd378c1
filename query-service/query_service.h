#ifndef BANK_QUERY_SERVICE_QUERY_SERVICE_H_
#define BANK_QUERY_SERVICE_QUERY_SERVICE_H_

#include "absl/time/time.h"
#include "bank/v1/bank.grpc.pb.h"
#include "common/metrics/metrics.h"
#include "common/util/worker_pool.h"
#include "query-service/balance_batcher.h"
#include "query-service/balance_cache.h"
#include "query-service/progress_follower.h"
#include "query-service/read_model_reader.h"

namespace bank::query {

// The methods of bank.v1.QueryService, for gRPC's callback API
// (QueryGrpcService registers them): handlers never block; the database work
// runs on a WorkerPool (a full queue answers RESOURCE_EXHAUSTED at once), and
// GetBalance.min_version waits in a ProgressFollower without holding a thread.
// A GetBalance the BalanceCache can answer (no as_of; the account cached at
// min_version or later) is answered in the handler, on gRPC's thread.
// Each handler finishes its call through `reactor` exactly once (possibly
// before it returns); `req` and `resp` must live until the reactor is done.
// Thread-safe.
class QueryServiceImpl final {
 public:
  enum class Rpc { kGetBalance, kListAccounts, kGetHistory };

  struct Options {
    absl::Duration max_wait = absl::Seconds(5);  // Cap on min_version waits.
    int default_page_size = 50;
    int max_page_size = 1000;
  };

  // Records bank_queries_total{rpc,code}, bank_query_duration_seconds{rpc}
  // bank_min_version_waits_total{outcome}, bank_balance_cache_total{result}
  // and bank_balance_cache_rows in `metrics`.
  QueryServiceImpl(ReadModelReader& reader, BalanceCache& cache,
                   ProgressFollower& waiter, util::WorkerPool& pool,
                   metrics::Registry& metrics, Options options);

  void GetBalance(grpc::CallbackServerContext* ctx,
                  const v1::GetBalanceRequest* req, v1::AccountBalance* resp,
                  grpc::ServerUnaryReactor* reactor);
  void ListAccounts(grpc::CallbackServerContext* ctx,
                    const v1::ListAccountsRequest* req,
                    v1::ListAccountsResponse* resp,
                    grpc::ServerUnaryReactor* reactor);
  void GetHistory(grpc::CallbackServerContext* ctx,
                  const v1::GetHistoryRequest* req,
                  v1::GetHistoryResponse* resp,
                  grpc::ServerUnaryReactor* reactor);
  // Finishes a call of `rpc` whose request could not be decoded, recording it
  // like any other.
  void Refuse(Rpc rpc, const grpc::Status& status,
              grpc::ServerUnaryReactor* reactor);

 private:
  static metrics::Counter& WaitsCounter(metrics::Registry& metrics,
                                        const char* outcome);
  // Finishes one call and records it.
  class Finisher {
   public:
    Finisher(grpc::ServerUnaryReactor* reactor, metrics::RpcMetrics& rpc)
        : reactor_(reactor), rpc_(&rpc), start_(absl::Now()) {}
    void operator()(const grpc::Status& status) const;

   private:
    grpc::ServerUnaryReactor* reactor_;
    metrics::RpcMetrics* rpc_;
    absl::Time start_;
  };

  // Runs fn on the pool and finishes the call with its status (unless fn
  // returns nullopt: it then finishes the call itself through the Finisher).
  template <typename Fn>
  void Submit(grpc::CallbackServerContext* ctx,
              grpc::ServerUnaryReactor* reactor, metrics::RpcMetrics& rpc,
              Fn fn);
  absl::Status AnswerBalance(const v1::GetBalanceRequest& req,
                             const std::string& id, absl::Time deadline,
                             v1::AccountBalance* resp);
  void WaitThenAnswer(Finisher finish, const v1::GetBalanceRequest* req,
                      std::string id, absl::Time deadline,
                      v1::AccountBalance* resp);
  absl::StatusOr<int> PageSize(int requested) const;

  ReadModelReader& reader_;
  BalanceCache& cache_;
  ProgressFollower& waiter_;
  util::WorkerPool& pool_;
  metrics::Registry& metrics_;
  const Options options_;
  metrics::RpcMetrics get_balance_metrics_;
  metrics::RpcMetrics list_accounts_metrics_;
  metrics::RpcMetrics get_history_metrics_;
  metrics::Counter& cache_hits_;
  metrics::Counter& cache_misses_;
  // bank_min_version_waits_total by outcome, resolved once (a call costs an
  // atomic update, not a registry lookup).
  metrics::Counter& waits_reached_;
  metrics::Counter& waits_deadline_;
  metrics::Counter& waits_shutdown_;
  // Plain GetBalance reads (no min_version, no as_of): coalesced into one
  // query per batch, answered without a pool thread per call.
  BalanceBatcher batcher_;
};

}  // namespace bank::query

#endif  // BANK_QUERY_SERVICE_QUERY_SERVICE_H_

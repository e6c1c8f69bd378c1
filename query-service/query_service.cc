#include "query-service/query_service.h"

#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/grpc/status.h"
#include "common/log/log.h"
#include "common/util/uuid.h"
#include "query-service/page_token.h"

namespace bank::query {
namespace {

absl::Status ValidateId(const std::string& id) {
  if (!util::IsUuid(id)) {
    return absl::InvalidArgumentError(
        "account_id must be a UUID like 123e4567-e89b-12d3-a456-426614174000");
  }
  return absl::OkStatus();
}

absl::Time DeadlineOf(grpc::CallbackServerContext* ctx) {
  absl::Time cap = absl::Now() + absl::Seconds(30);
  absl::Time d = absl::FromChrono(ctx->deadline());
  return d < cap ? d : cap;
}

absl::StatusOr<absl::Time> AsOf(const google::protobuf::Timestamp& ts) {
  // The range google.protobuf.Timestamp allows: 0001-01-01 to 9999-12-31.
  if (ts.seconds() < -62135596800 || ts.seconds() > 253402300799 ||
      ts.nanos() < 0 || ts.nanos() > 999999999) {
    return absl::InvalidArgumentError("as_of is not a valid timestamp");
  }
  return absl::FromUnixSeconds(ts.seconds()) + absl::Nanoseconds(ts.nanos());
}

}  // namespace

metrics::Counter& QueryServiceImpl::WaitsCounter(metrics::Registry& metrics,
                                                 const char* outcome) {
  return metrics.GetCounter("bank_min_version_waits_total",
                            "GetBalance min_version waits by outcome.",
                            {{"outcome", outcome}});
}

QueryServiceImpl::QueryServiceImpl(ReadModelReader& reader, BalanceCache& cache,
                                   ProgressFollower& waiter,
                                   util::WorkerPool& pool,
                                   metrics::Registry& metrics, Options options)
    : reader_(reader),
      cache_(cache),
      waiter_(waiter),
      pool_(pool),
      metrics_(metrics),
      options_(options),
      get_balance_metrics_(metrics, "bank_queries_total",
                           "Queries by RPC and status code.",
                           "bank_query_duration_seconds",
                           "Query latency by RPC.", "rpc", "GetBalance"),
      list_accounts_metrics_(metrics, "bank_queries_total",
                             "Queries by RPC and status code.",
                             "bank_query_duration_seconds",
                             "Query latency by RPC.", "rpc", "ListAccounts"),
      get_history_metrics_(metrics, "bank_queries_total",
                           "Queries by RPC and status code.",
                           "bank_query_duration_seconds",
                           "Query latency by RPC.", "rpc", "GetHistory"),
      cache_hits_(metrics.GetCounter(
          "bank_balance_cache_total",
          "GetBalance calls (no as_of) by whether the cache answered them.",
          {{"result", "hit"}})),
      cache_misses_(metrics.GetCounter(
          "bank_balance_cache_total",
          "GetBalance calls (no as_of) by whether the cache answered them.",
          {{"result", "miss"}})),
      waits_reached_(WaitsCounter(metrics, "reached")),
      waits_deadline_(WaitsCounter(metrics, "deadline")),
      waits_shutdown_(WaitsCounter(metrics, "shutdown")),
      batcher_(reader, cache, /*threads=*/2, /*max_queue=*/4096) {
  metrics_.AddCallbackGauge(
      "bank_min_version_waiting", "GetBalance calls waiting for a version.",
      [this] { return static_cast<double>(waiter_.waiting()); });
  metrics_.AddCallbackGauge(
      "bank_balance_cache_rows", "Balances held by the query service's cache.",
      [this] { return static_cast<double>(cache_.size()); });
}

void QueryServiceImpl::Finisher::operator()(const grpc::Status& status) const {
  rpc_->Record(static_cast<absl::StatusCode>(status.error_code()),
               absl::Now() - start_);
  reactor_->Finish(status);
}

void QueryServiceImpl::Refuse(Rpc rpc, const grpc::Status& status,
                              grpc::ServerUnaryReactor* reactor) {
  metrics::RpcMetrics& m = rpc == Rpc::kGetBalance     ? get_balance_metrics_
                           : rpc == Rpc::kListAccounts ? list_accounts_metrics_
                                                       : get_history_metrics_;
  Finisher(reactor, m)(status);
}

template <typename Fn>
void QueryServiceImpl::Submit(grpc::CallbackServerContext* ctx,
                              grpc::ServerUnaryReactor* reactor,
                              metrics::RpcMetrics& rpc, Fn fn) {
  Finisher finish(reactor, rpc);
  absl::Time deadline = DeadlineOf(ctx);
  bool queued =
      pool_.TrySubmit([finish, deadline, fn = std::move(fn)]() mutable {
        if (absl::Now() >= deadline) {
          finish(grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED,
                              "deadline passed while queued"));
          return;
        }
        std::optional<absl::Status> s = fn(finish, deadline);
        if (s.has_value()) finish(grpcutil::ToGrpcStatus(*s));
      });
  if (!queued) {
    finish(grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                        "query service overloaded; retry with backoff"));
  }
}

absl::StatusOr<int> QueryServiceImpl::PageSize(int requested) const {
  if (requested < 0) {
    return absl::InvalidArgumentError("page_size must not be negative");
  }
  if (requested == 0) return options_.default_page_size;
  return std::min(requested, options_.max_page_size);
}

absl::Status QueryServiceImpl::AnswerBalance(const v1::GetBalanceRequest& req,
                                             const std::string& id,
                                             absl::Time deadline,
                                             v1::AccountBalance* resp) {
  absl::StatusOr<std::optional<v1::AccountBalance>> b;
  if (req.has_as_of()) {
    absl::Time as_of = *AsOf(req.as_of());  // Validated before.
    b = reader_.GetBalanceAsOf(id, as_of, deadline);
    if (b.ok() && !b->has_value()) {
      return absl::NotFoundError(absl::StrCat(
          "account ", id, " did not exist at ", absl::FormatTime(as_of)));
    }
  } else {
    b = reader_.GetBalance(id, deadline);
    if (b.ok() && !b->has_value()) {
      return absl::NotFoundError(
          absl::StrCat("account ", id, " does not exist"));
    }
  }
  if (!b.ok()) return b.status();
  *resp = **b;
  return absl::OkStatus();
}

void QueryServiceImpl::WaitThenAnswer(Finisher finish,
                                      const v1::GetBalanceRequest* req,
                                      std::string id, absl::Time deadline,
                                      v1::AccountBalance* resp) {
  const absl::Time wait_until =
      std::min(deadline, absl::Now() + options_.max_wait);
  const int64_t min_version = req->min_version();
  std::optional<uint64_t> added = waiter_.Add(
      id, min_version, wait_until,
      [this, finish, req, id, deadline, resp, min_version](
          ProgressFollower::Outcome outcome,
          const v1::AccountBalance* balance) {
        (outcome == ProgressFollower::Outcome::kReached    ? waits_reached_
         : outcome == ProgressFollower::Outcome::kDeadline ? waits_deadline_
                                                           : waits_shutdown_)
            .Inc();
        if (outcome == ProgressFollower::Outcome::kShutdown) {
          finish(grpc::Status(grpc::StatusCode::UNAVAILABLE,
                              "query service shutting down"));
          return;
        }
        if (outcome == ProgressFollower::Outcome::kDeadline) {
          finish(grpc::Status(
              grpc::StatusCode::DEADLINE_EXCEEDED,
              absl::StrCat("account ", id, " did not reach version ",
                           min_version, " in the read model in time")));
          return;
        }
        if (!req->has_as_of() && balance != nullptr) {
          // The waiter read the account: that row is the answer.
          *resp = *balance;
          finish(grpc::Status::OK);
          return;
        }
        bool queued = pool_.TrySubmit([this, finish, req, id, deadline, resp] {
          finish(
              grpcutil::ToGrpcStatus(AnswerBalance(*req, id, deadline, resp)));
        });
        if (!queued) {
          finish(grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                              "query service overloaded"));
        }
      });
  if (!added.has_value()) {
    finish(
        grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                     absl::StrCat("too many read-your-writes waits (",
                                  waiter_.waiting(), "); retry with backoff")));
    return;
  }
  const uint64_t wid = *added;
  // One look after registering closes the race with a notice applied
  // before Add. When the cache holds the account, it is exact as of the
  // last notice: it answers now, or a later notice will (ProgressFollower
  // answers from the cache as notices arrive, without a read). Otherwise
  // one read, in a batch with the plain reads.
  v1::AccountBalance cached;
  if (cache_.Get(id, 0, &cached)) {
    waiter_.Offer(wid, cached);
    return;
  }
  const bool queued = batcher_.Submit(
      id, deadline, [this, wid, finish](BalanceBatcher::Result now) {
        if (!now.ok()) {
          if (waiter_.Cancel(wid)) finish(grpcutil::ToGrpcStatus(now.status()));
          return;
        }
        if (now->has_value()) waiter_.Offer(wid, **now);
      });
  if (!queued && waiter_.Cancel(wid)) {
    finish(grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                        "query service overloaded; retry with backoff"));
  }
}

void QueryServiceImpl::GetBalance(grpc::CallbackServerContext* ctx,
                                  const v1::GetBalanceRequest* req,
                                  v1::AccountBalance* resp,
                                  grpc::ServerUnaryReactor* reactor) {
  if (req->min_version() == 0 && !req->has_as_of()) {
    // The plain read, the common one: validated here, read in a batch.
    Finisher finish(reactor, get_balance_metrics_);
    if (absl::Status s = ValidateId(req->account_id()); !s.ok()) {
      finish(grpcutil::ToGrpcStatus(s));
      return;
    }
    std::string id = util::CanonicalUuid(req->account_id());
    if (cache_.Get(id, 0, resp)) {
      cache_hits_.Inc();
      finish(grpc::Status::OK);
      return;
    }
    cache_misses_.Inc();
    const bool queued = batcher_.Submit(
        id, DeadlineOf(ctx), [finish, resp, id](BalanceBatcher::Result b) {
          if (b.ok() && !b->has_value()) {
            b = absl::NotFoundError(
                absl::StrCat("account ", id, " does not exist"));
          }
          if (!b.ok()) {
            finish(grpcutil::ToGrpcStatus(b.status()));
            return;
          }
          *resp = **std::move(b);
          finish(grpc::Status::OK);
        });
    if (!queued) {
      finish(grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                          "query service overloaded; retry with backoff"));
    }
    return;
  }
  if (req->min_version() > 0 && !req->has_as_of()) {
    // Read-your-writes: validated here; the waiter and the batched read
    // answer it, without a pool thread.
    Finisher finish(reactor, get_balance_metrics_);
    if (absl::Status s = ValidateId(req->account_id()); !s.ok()) {
      finish(grpcutil::ToGrpcStatus(s));
      return;
    }
    std::string id = util::CanonicalUuid(req->account_id());
    if (cache_.Get(id, req->min_version(), resp)) {
      cache_hits_.Inc();
      finish(grpc::Status::OK);
      return;
    }
    cache_misses_.Inc();
    WaitThenAnswer(finish, req, std::move(id), DeadlineOf(ctx), resp);
    return;
  }
  Submit(
      ctx, reactor, get_balance_metrics_,
      [this, req, resp](const Finisher& finish,
                        absl::Time deadline) -> std::optional<absl::Status> {
        if (absl::Status s = ValidateId(req->account_id()); !s.ok()) return s;
        if (req->min_version() < 0) {
          return absl::InvalidArgumentError("min_version must not be negative");
        }
        if (req->has_as_of()) {
          if (absl::Status s = AsOf(req->as_of()).status(); !s.ok()) return s;
        }
        const std::string id = util::CanonicalUuid(req->account_id());
        if (req->min_version() > 0) {
          WaitThenAnswer(finish, req, id, deadline, resp);
          return std::nullopt;  // Finished by the waiter.
        }
        return AnswerBalance(*req, id, deadline, resp);
      });
}

void QueryServiceImpl::ListAccounts(grpc::CallbackServerContext* ctx,
                                    const v1::ListAccountsRequest* req,
                                    v1::ListAccountsResponse* resp,
                                    grpc::ServerUnaryReactor* reactor) {
  Submit(ctx, reactor, list_accounts_metrics_,
         [this, req, resp](const Finisher&,
                           absl::Time deadline) -> std::optional<absl::Status> {
           absl::StatusOr<int> size = PageSize(req->page_size());
           if (!size.ok()) return size.status();
           std::string after;
           if (!req->page_token().empty()) {
             absl::StatusOr<std::string> key =
                 DecodePageToken("accounts", req->page_token());
             if (!key.ok()) return key.status();
             if (!util::IsUuid(*key)) {
               return absl::InvalidArgumentError("page_token is malformed");
             }
             after = *key;
           }
           absl::StatusOr<std::vector<v1::AccountBalance>> rows =
               reader_.ListAccounts(after, *size + 1, deadline);
           if (!rows.ok()) return rows.status();
           bool more = static_cast<int>(rows->size()) > *size;
           if (more) rows->pop_back();
           for (auto& a : *rows) *resp->add_accounts() = std::move(a);
           if (more) {
             resp->set_next_page_token(EncodePageToken(
                 "accounts",
                 resp->accounts(resp->accounts_size() - 1).account_id()));
           }
           return absl::OkStatus();
         });
}

void QueryServiceImpl::GetHistory(grpc::CallbackServerContext* ctx,
                                  const v1::GetHistoryRequest* req,
                                  v1::GetHistoryResponse* resp,
                                  grpc::ServerUnaryReactor* reactor) {
  Submit(
      ctx, reactor, get_history_metrics_,
      [this, req, resp](const Finisher&,
                        absl::Time deadline) -> std::optional<absl::Status> {
        if (absl::Status s = ValidateId(req->account_id()); !s.ok()) return s;
        const std::string id = util::CanonicalUuid(req->account_id());
        absl::StatusOr<int> size = PageSize(req->page_size());
        if (!size.ok()) return size.status();
        const std::string scope = absl::StrCat("history:", id);
        int64_t after = 0;
        if (!req->page_token().empty()) {
          absl::StatusOr<std::string> key =
              DecodePageToken(scope, req->page_token());
          if (!key.ok()) return key.status();
          if (!absl::SimpleAtoi(*key, &after) || after < 1) {
            return absl::InvalidArgumentError("page_token is malformed");
          }
        }
        absl::StatusOr<std::vector<v1::HistoryEntry>> rows =
            reader_.GetHistory(id, after, *size + 1, deadline);
        if (!rows.ok()) return rows.status();
        if (rows->empty() && after == 0) {
          absl::StatusOr<std::optional<v1::AccountBalance>> b =
              reader_.GetBalance(id, deadline);
          if (!b.ok()) return b.status();
          if (!b->has_value()) {
            return absl::NotFoundError(
                absl::StrCat("account ", id, " does not exist"));
          }
        }
        bool more = static_cast<int>(rows->size()) > *size;
        if (more) rows->pop_back();
        for (auto& h : *rows) *resp->add_entries() = std::move(h);
        if (more) {
          resp->set_next_page_token(EncodePageToken(
              scope, std::to_string(
                         resp->entries(resp->entries_size() - 1).version())));
        }
        return absl::OkStatus();
      });
}

}  // namespace bank::query

// bank-loadgen: drives the bank's gRPC services with many outstanding calls
// (asynchronous client: one completion queue and channel per thread) and
// reports throughput, latency percentiles and errors by status code.
//
// Closed loop (default): --concurrency calls are always in flight.
// Open loop (--rate R): calls start at R per second whatever the latency (up
// to --max-outstanding in flight), and latency counts from the intended
// start, so a slow server cannot hide its queueing.
//
// Scenarios:
//   deposit-spread  deposits over --accounts accounts
//   deposit-hot     deposits on one account
//   mix             deposits, withdrawals and transfers over the accounts
//   get-balance     GetBalance over the accounts (or against an echo server)
//   lag-wait        a deposit, then GetBalance(min_version) of its version:
//                   the latency reported is ack -> visible
//   lag-poll        the same, polling GetBalance without min_version
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "bank/v1/bank.grpc.pb.h"
#include "common/util/runtime.h"

namespace {

using Clock = std::chrono::steady_clock;
using bank::v1::AccountBalance;
using bank::v1::CommandResult;

struct Options {
  std::string scenario = "deposit-spread";
  std::string command_host = "127.0.0.1:50051";
  std::string query_host = "127.0.0.1:50052";
  int accounts = 1000;
  int concurrency = 32;
  int threads = 4;
  double duration = 10;
  double rate = 0;
  int max_outstanding = 10000;
  bool json = false;
  bool setup_only = false;
};

struct Results {
  std::mutex mu;
  std::vector<int64_t> latencies_us;
  std::map<std::string, int64_t> errors;
  void Add(int64_t us) {
    std::lock_guard<std::mutex> l(mu);
    latencies_us.push_back(us);
  }
  void Error(grpc::StatusCode c) {
    std::lock_guard<std::mutex> l(mu);
    ++errors[absl::StrFormat("%d", static_cast<int>(c))];
  }
};

// One call in flight; lag scenarios chain a read after the command.
struct Pending {
  Clock::time_point start;  // intended start (open loop) or actual
  Clock::time_point acked;  // lag scenarios: when the command was acked
  std::unique_ptr<grpc::ClientContext> ctx;
  grpc::Status status;
  CommandResult cmd;
  AccountBalance bal;
  std::unique_ptr<grpc::ClientAsyncResponseReader<CommandResult>> cmd_rpc;
  std::unique_ptr<grpc::ClientAsyncResponseReader<AccountBalance>> bal_rpc;
  std::string account;
  int stage = 0;  // 0: first call, 1: lag read
};

std::unique_ptr<grpc::ClientContext> Ctx() {
  auto c = std::make_unique<grpc::ClientContext>();
  c->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  return c;
}

std::string NewId(std::mt19937_64& rng) {
  uint64_t hi = rng(), lo = rng();
  hi = (hi & 0xFFFFFFFFFFFF0FFFULL) | 0x4000ULL;
  lo = (lo & 0x3FFFFFFFFFFFFFFFULL) | 0x8000000000000000ULL;
  return absl::StrFormat("%08x-%04x-%04x-%04x-%012x", hi >> 32,
                         (hi >> 16) & 0xFFFF, hi & 0xFFFF, lo >> 48,
                         lo & 0xFFFFFFFFFFFFULL);
}

class Worker {
 public:
  Worker(const Options& o, const std::vector<std::string>& accounts,
         Results& results, int index, int concurrency, double rate)
      : o_(o),
        accounts_(accounts),
        results_(results),
        concurrency_(concurrency),
        rate_(rate),
        rng_(std::random_device{}() ^ (static_cast<uint64_t>(index) << 32)) {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);  // One connection each.
    commands_ = bank::v1::CommandService::NewStub(grpc::CreateCustomChannel(
        o.command_host, grpc::InsecureChannelCredentials(), args));
    queries_ = bank::v1::QueryService::NewStub(grpc::CreateCustomChannel(
        o.query_host, grpc::InsecureChannelCredentials(), args));
  }

  void Run(Clock::time_point end) {
    Clock::time_point next = Clock::now();
    const auto interval =
        rate_ > 0 ? std::chrono::nanoseconds(static_cast<int64_t>(1e9 / rate_))
                  : std::chrono::nanoseconds(0);
    while (true) {
      Clock::time_point now = Clock::now();
      if (now < end) {
        if (rate_ > 0) {
          while (now >= next && outstanding_ < o_.max_outstanding) {
            Start(next);
            next += interval;
          }
        } else {
          while (outstanding_ < concurrency_) Start(now);
        }
      } else if (outstanding_ == 0) {
        break;
      }
      void* tag;
      bool ok;
      auto deadline = rate_ > 0
                          ? std::min(next, now + std::chrono::milliseconds(50))
                          : now + std::chrono::milliseconds(50);
      auto r = cq_.AsyncNext(
          &tag, &ok, std::chrono::system_clock::now() + (deadline - now));
      if (r == grpc::CompletionQueue::GOT_EVENT)
        Done(static_cast<Pending*>(tag));
    }
    cq_.Shutdown();
    void* tag;
    bool ok;
    while (cq_.Next(&tag, &ok)) {
    }
  }

 private:
  const std::string& Account() {
    if (o_.scenario == "deposit-hot") return accounts_[0];
    return accounts_[rng_() % accounts_.size()];
  }

  void Start(Clock::time_point start) {
    auto* p = new Pending();
    p->start = start;
    p->ctx = Ctx();
    ++outstanding_;
    const std::string& s = o_.scenario;
    if (s == "get-balance") {
      bank::v1::GetBalanceRequest req;
      req.set_account_id(Account());
      p->bal_rpc = queries_->AsyncGetBalance(p->ctx.get(), req, &cq_);
      p->bal_rpc->Finish(&p->bal, &p->status, p);
      return;
    }
    p->account = Account();
    int pick = s == "mix" ? static_cast<int>(rng_() % 10) : 0;
    if (pick >= 7) {
      bank::v1::TransferRequest req;
      req.set_command_id(NewId(rng_));
      req.set_from_account_id(p->account);
      std::string to;
      do {
        to = accounts_[rng_() % accounts_.size()];
      } while (to == p->account && accounts_.size() > 1);
      req.set_to_account_id(to);
      req.set_amount(1);
      // The transfer's result type differs; use a dedicated reader.
      transfer_rpcs_.emplace(p,
                             commands_->AsyncTransfer(p->ctx.get(), req, &cq_));
      transfer_rpcs_[p].rpc->Finish(&transfer_rpcs_[p].result, &p->status, p);
      return;
    }
    if (pick >= 4) {
      bank::v1::WithdrawRequest req;
      req.set_command_id(NewId(rng_));
      req.set_account_id(p->account);
      req.set_amount(1);
      p->cmd_rpc = commands_->AsyncWithdraw(p->ctx.get(), req, &cq_);
    } else {
      bank::v1::DepositRequest req;
      req.set_command_id(NewId(rng_));
      req.set_account_id(p->account);
      req.set_amount(1);
      p->cmd_rpc = commands_->AsyncDeposit(p->ctx.get(), req, &cq_);
    }
    p->cmd_rpc->Finish(&p->cmd, &p->status, p);
  }

  void Read(Pending* p, int64_t min_version) {
    p->ctx = Ctx();
    bank::v1::GetBalanceRequest req;
    req.set_account_id(p->account);
    req.set_min_version(min_version);
    p->bal_rpc = queries_->AsyncGetBalance(p->ctx.get(), req, &cq_);
    p->bal_rpc->Finish(&p->bal, &p->status, p);
  }

  void Done(Pending* p) {
    const auto now = Clock::now();
    const bool lag = o_.scenario == "lag-wait" || o_.scenario == "lag-poll";
    transfer_rpcs_.erase(p);
    if (!p->status.ok()) {
      results_.Error(p->status.error_code());
    } else if (lag && p->stage == 0) {
      p->stage = 1;
      p->acked = now;
      Read(p, o_.scenario == "lag-wait" ? p->cmd.version() : 0);
      return;
    } else if (lag && o_.scenario == "lag-poll" &&
               p->bal.version() < p->cmd.version()) {
      Read(p, 0);  // Not visible yet: poll again.
      return;
    } else {
      auto from = lag ? p->acked : p->start;
      results_.Add(
          std::chrono::duration_cast<std::chrono::microseconds>(now - from)
              .count());
    }
    --outstanding_;
    delete p;
  }

  struct TransferCall {
    std::unique_ptr<grpc::ClientAsyncResponseReader<bank::v1::TransferResult>>
        rpc;
    bank::v1::TransferResult result;
    TransferCall() = default;
    explicit TransferCall(
        std::unique_ptr<
            grpc::ClientAsyncResponseReader<bank::v1::TransferResult>>
            r)
        : rpc(std::move(r)) {}
  };

  const Options& o_;
  const std::vector<std::string>& accounts_;
  Results& results_;
  const int concurrency_;
  const double rate_;
  std::mt19937_64 rng_;
  std::unique_ptr<bank::v1::CommandService::Stub> commands_;
  std::unique_ptr<bank::v1::QueryService::Stub> queries_;
  grpc::CompletionQueue cq_;
  int outstanding_ = 0;
  std::map<Pending*, TransferCall> transfer_rpcs_;
};

// Opens the accounts (a large initial deposit each) with a few threads.
// Returns the first failure's status after every thread has stopped (exiting
// from a thread while others still use gRPC would race with its teardown).
absl::StatusOr<std::vector<std::string>> OpenAccounts(const Options& o) {
  std::vector<std::string> out(o.accounts);
  std::atomic<int> next{0};
  absl::Mutex mu;
  grpc::Status failure;
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      auto stub = bank::v1::CommandService::NewStub(grpc::CreateChannel(
          o.command_host, grpc::InsecureChannelCredentials()));
      for (int i; (i = next++) < o.accounts;) {
        bank::v1::OpenAccountRequest req;
        req.set_owner("Bench");
        req.set_currency("EUR");
        req.set_initial_deposit(1000000000);
        CommandResult res;
        auto ctx = Ctx();
        grpc::Status s = stub->OpenAccount(ctx.get(), req, &res);
        if (!s.ok()) {
          absl::MutexLock lock(&mu);
          if (failure.ok()) failure = s;
          next = o.accounts;  // The other threads stop after their call.
          return;
        }
        out[i] = res.account_id();
      }
    });
  }
  for (auto& t : threads) t.join();
  if (!failure.ok()) {
    return absl::UnavailableError(
        absl::StrCat("opening the accounts: ", failure.error_message()));
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  // Like the services it drives: the same gRPC, without absl::Mutex's
  // deadlock detection on every lock.
  bank::util::ConfigureServingRuntime();
  Options o;
  CLI::App app{"bank-loadgen: load for the bank's gRPC services"};
  app.add_option("--scenario", o.scenario)
      ->check(CLI::IsMember({"deposit-spread", "deposit-hot", "mix",
                             "get-balance", "lag-wait", "lag-poll"}));
  app.add_option("--command-host", o.command_host)->capture_default_str();
  app.add_option("--query-host", o.query_host)->capture_default_str();
  app.add_option("--accounts", o.accounts, "accounts to open and use")
      ->check(CLI::Range(1, 10000000));
  app.add_option("--concurrency", o.concurrency,
                 "calls in flight (closed loop)")
      ->check(CLI::Range(1, 100000));
  app.add_option("--threads", o.threads, "client threads, one channel each")
      ->check(CLI::Range(1, 256));
  app.add_option("--duration", o.duration, "seconds")
      ->check(CLI::Range(0.1, 86400.0));
  app.add_option("--rate", o.rate, "calls per second: open loop");
  app.add_option("--max-outstanding", o.max_outstanding);
  app.add_flag("--json", o.json, "one JSON line instead of text");
  CLI11_PARSE(app, argc, argv);

  std::vector<std::string> accounts;
  if (o.scenario == "get-balance" && o.accounts > 0 &&
      o.command_host == "none") {
    // Against an echo server: any well-formed ids will do.
    std::mt19937_64 rng(1);
    for (int i = 0; i < o.accounts; ++i) accounts.push_back(NewId(rng));
  } else {
    absl::StatusOr<std::vector<std::string>> opened = OpenAccounts(o);
    if (!opened.ok()) {
      std::fprintf(stderr, "bank-loadgen: %s\n",
                   std::string(opened.status().message()).c_str());
      return 1;
    }
    accounts = *std::move(opened);
  }
  if (o.scenario == "get-balance" && o.command_host != "none") {
    // Let the projector catch up with the opens before reading.
    std::this_thread::sleep_for(std::chrono::seconds(1));
  }
  // Tools that measure the run from outside (bench/cpu_budget.sh) wait for
  // this line: the accounts are open, the timed part starts.
  std::fprintf(stderr, "bank-loadgen: %zu accounts ready; %s for %.1f s\n",
               accounts.size(), o.scenario.c_str(), o.duration);
  std::fflush(stderr);
  Results results;
  std::vector<std::thread> threads;
  const auto start = Clock::now();
  const auto end = start + std::chrono::milliseconds(
                               static_cast<int64_t>(o.duration * 1000));
  std::vector<std::unique_ptr<Worker>> workers;
  for (int t = 0; t < o.threads; ++t) {
    int share =
        o.concurrency / o.threads + (t < o.concurrency % o.threads ? 1 : 0);
    workers.push_back(std::make_unique<Worker>(
        o, accounts, results, t, std::max(1, share), o.rate / o.threads));
  }
  for (auto& w : workers) threads.emplace_back([&w, end] { w->Run(end); });
  for (auto& t : threads) t.join();
  const double secs =
      std::chrono::duration<double>(Clock::now() - start).count();
  auto& v = results.latencies_us;
  std::sort(v.begin(), v.end());
  auto pct = [&](double p) -> double {
    if (v.empty()) return 0;
    return v[std::min(v.size() - 1, static_cast<size_t>(p * v.size()))] /
           1000.0;
  };
  int64_t errors = 0;
  std::string error_text;
  for (const auto& [code, n] : results.errors) {
    errors += n;
    error_text +=
        absl::StrFormat("%s\"%s\":%d", error_text.empty() ? "" : ",", code, n);
  }
  const double tput = v.size() / secs;
  if (o.json) {
    std::printf(
        "{\"scenario\":\"%s\",\"ok\":%zu,\"errors\":%d,\"errors_by_code\":{%s},"
        "\"seconds\":%.3f,\"per_second\":%.1f,\"p50_ms\":%.3f,\"p90_ms\":%.3f,"
        "\"p99_ms\":%.3f,\"p999_ms\":%.3f,\"max_ms\":%.3f}\n",
        o.scenario.c_str(), v.size(), static_cast<int>(errors),
        error_text.c_str(), secs, tput, pct(0.5), pct(0.9), pct(0.99),
        pct(0.999), v.empty() ? 0.0 : v.back() / 1000.0);
  } else {
    std::printf(
        "%s: %zu ok, %d errors {%s} in %.2f s = %.0f/s; latency ms p50 %.2f "
        "p90 %.2f p99 %.2f p99.9 %.2f max %.2f\n",
        o.scenario.c_str(), v.size(), static_cast<int>(errors),
        error_text.c_str(), secs, tput, pct(0.5), pct(0.9), pct(0.99),
        pct(0.999), v.empty() ? 0.0 : v.back() / 1000.0);
  }
  return 0;
}

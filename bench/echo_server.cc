// bank-echo-server: the bare-gRPC baseline. Serves bank.v1.QueryService's
// GetBalance from memory (a fixed answer, no database) with the same gRPC,
// the same server code and settings as the services, so a benchmark of it
// measures what gRPC itself costs on this machine.
//
// It also compares the two server threading models with the same handler:
//   --model callback  (default) the callback API; with --work-us, the work
//                     runs on a separate pool (common/util/worker_pool.h, as
//                     query-service)
//   --model sync      the synchronous API: the work runs on gRPC's threads
//                     (how command-service serves)
// --work-us N makes each call wait N microseconds first, as for a database
// round trip, so a blocking handler's cost shows.
#include <string>
#include <thread>

#include "CLI/CLI.hpp"
#include "bank/v1/bank.grpc.pb.h"
#include "common/grpc/server.h"
#include "common/util/runtime.h"
#include "common/util/signals.h"
#include "common/util/worker_pool.h"

namespace {

void Fill(const bank::v1::GetBalanceRequest& req,
          bank::v1::AccountBalance* resp) {
  resp->set_account_id(req.account_id());
  resp->set_owner("Echo");
  resp->set_currency("EUR");
  resp->set_balance(100);
  resp->set_version(1);
  resp->set_status(bank::v1::ACCOUNT_STATUS_OPEN);
}

void Work(int us) {
  if (us > 0) std::this_thread::sleep_for(std::chrono::microseconds(us));
}

class CallbackEcho final : public bank::v1::QueryService::CallbackService {
 public:
  CallbackEcho(int work_us, bank::util::WorkerPool* pool)
      : work_us_(work_us), pool_(pool) {}
  grpc::ServerUnaryReactor* GetBalance(
      grpc::CallbackServerContext* ctx, const bank::v1::GetBalanceRequest* req,
      bank::v1::AccountBalance* resp) override {
    auto* r = ctx->DefaultReactor();
    if (work_us_ == 0) {
      Fill(*req, resp);
      r->Finish(grpc::Status::OK);
      return r;
    }
    if (!pool_->TrySubmit([this, req, resp, r] {
          Work(work_us_);
          Fill(*req, resp);
          r->Finish(grpc::Status::OK);
        })) {
      r->Finish(grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, "busy"));
    }
    return r;
  }

 private:
  const int work_us_;
  bank::util::WorkerPool* pool_;
};

class SyncEcho final : public bank::v1::QueryService::Service {
 public:
  explicit SyncEcho(int work_us) : work_us_(work_us) {}
  grpc::Status GetBalance(grpc::ServerContext*,
                          const bank::v1::GetBalanceRequest* req,
                          bank::v1::AccountBalance* resp) override {
    Work(work_us_);
    Fill(*req, resp);
    return grpc::Status::OK;
  }

 private:
  const int work_us_;
};

}  // namespace

int main(int argc, char** argv) {
  bank::util::ConfigureServingRuntime();
  bank::util::BlockTerminationSignals();
  std::string listen = "127.0.0.1:50060";
  std::string model = "callback";
  int work_us = 0, workers = 16, max_threads = 64;
  CLI::App app{"bank-echo-server: bare gRPC baseline"};
  app.add_option("--listen", listen)->capture_default_str();
  app.add_option("--model", model, "callback or sync")
      ->check(CLI::IsMember({"callback", "sync"}))
      ->capture_default_str();
  app.add_option("--work-us", work_us, "microseconds each call waits")
      ->check(CLI::Range(0, 1000000))
      ->capture_default_str();
  app.add_option("--workers", workers, "callback: threads of the work pool")
      ->check(CLI::Range(1, 1000))
      ->capture_default_str();
  app.add_option("--max-threads", max_threads, "sync: gRPC threads at most")
      ->check(CLI::Range(2, 10000))
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  bank::util::WorkerPool pool(workers, 4096);
  CallbackEcho callback(work_us, &pool);
  SyncEcho sync(work_us);
  grpc::Service* service = model == "sync"
                               ? static_cast<grpc::Service*>(&sync)
                               : static_cast<grpc::Service*>(&callback);
  auto server = bank::grpcutil::Server::Start(
      {.listen = listen, .max_threads = max_threads}, {service});
  if (!server.ok()) {
    std::fprintf(stderr, "cannot start: %s\n",
                 std::string(server.status().message()).c_str());
    return 1;
  }
  bank::util::WaitForTerminationSignal();
  (*server)->Shutdown(absl::Seconds(1));
  (*server)->Wait();
  return 0;
}

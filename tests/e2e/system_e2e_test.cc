// The three real executables against a real PostgreSQL: startup on empty
// databases, health and reflection, configuration by flag and environment,
// startup failures, graceful shutdown, and a first scenario end to end.
#include <grpcpp/generic/generic_stub.h>
#include <signal.h>

#include <atomic>
#include <future>
#include <pqxx/pqxx>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/db/migrations.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpc/reflection/v1alpha/reflection.grpc.pb.h"
#include "gtest/gtest.h"
#include "sql/migrations.h"
#include "tests/support/pg_environment.h"
#include "tests/support/system.h"

namespace bank {
namespace {

using testing::Ctx;
using testing::PgCluster;
using testing::Process;
using testing::System;

PgCluster* pg = nullptr;

std::vector<std::string> ListServices(int port) {
  auto stub = grpc::reflection::v1alpha::ServerReflection::NewStub(
      grpc::CreateChannel("127.0.0.1:" + std::to_string(port),
                          grpc::InsecureChannelCredentials()));
  auto ctx = Ctx(5);
  auto stream = stub->ServerReflectionInfo(ctx.get());
  grpc::reflection::v1alpha::ServerReflectionRequest req;
  req.set_list_services("");
  stream->Write(req);
  stream->WritesDone();
  grpc::reflection::v1alpha::ServerReflectionResponse resp;
  std::vector<std::string> out;
  while (stream->Read(&resp)) {
    for (const auto& s : resp.list_services_response().service()) {
      out.push_back(s.name());
    }
  }
  stream->Finish();
  return out;
}

int CountLines(const std::string& s, const std::string& needle) {
  int n = 0;
  size_t at = 0;
  while ((at = s.find(needle, at)) != std::string::npos) {
    ++n;
    ++at;
  }
  return n;
}

TEST(SystemTest, StartsOnEmptyDatabasesWithHealthAndReflection) {
  System sys(*pg, "boot");
  sys.StartAll();
  EXPECT_TRUE(System::WaitServing(sys.command_port, "", absl::Seconds(5)));
  EXPECT_TRUE(System::WaitServing(sys.query_port, "", absl::Seconds(5)));
  auto cmd = ListServices(sys.command_port);
  EXPECT_NE(std::find(cmd.begin(), cmd.end(), "bank.v1.CommandService"),
            cmd.end());
  EXPECT_NE(std::find(cmd.begin(), cmd.end(), "grpc.health.v1.Health"),
            cmd.end());
  auto qry = ListServices(sys.query_port);
  EXPECT_NE(std::find(qry.begin(), qry.end(), "bank.v1.QueryService"),
            qry.end());
  // Migrations were applied by their owners.
  pqxx::connection e(sys.events_uri), r(sys.read_uri);
  pqxx::work te(e);
  EXPECT_EQ(
      te.exec("SELECT count(*) FROM schema_migrations")[0][0].as<size_t>(),
      sql::EventsMigrations().size());
  EXPECT_TRUE(testing::WaitFor(
      [&] {
        pqxx::work t(r);
        return t.exec(
                    "SELECT count(*) FROM pg_tables WHERE tablename = "
                    "'account_balances'")[0][0]
                   .as<int>() == 1;
      },
      absl::Seconds(10)));
}

TEST(SystemTest, OpenDepositTransferAndReadYourWrites) {
  System sys(*pg, "flow");
  sys.StartAll();
  std::string a = testing::OpenAccount(sys.commands(), 10000);
  std::string b = testing::OpenAccount(sys.commands(), 0);
  v1::TransferRequest t;
  t.set_from_account_id(a);
  t.set_to_account_id(b);
  t.set_amount(2500);
  v1::TransferResult tr;
  auto ctx = Ctx();
  ASSERT_TRUE(sys.commands().Transfer(ctx.get(), t, &tr).ok());
  v1::GetBalanceRequest q;
  q.set_account_id(b);
  q.set_min_version(tr.to().version());
  v1::AccountBalance bal;
  auto qctx = Ctx();
  grpc::Status s = sys.queries().GetBalance(qctx.get(), q, &bal);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(bal.balance(), 2500);
  EXPECT_EQ(bal.version(), 2);
  EXPECT_EQ(bal.currency(), "EUR");
}

TEST(SystemTest, FlagsWinOverEnvironmentVariables) {
  System sys(*pg, "env");
  // The environment points at a port nobody listens on; the flag wins.
  auto cmd = std::make_unique<Process>(
      testing::BinDir() + "/command-service",
      std::vector<std::string>{"--listen",
                               "127.0.0.1:" + std::to_string(sys.command_port)},
      std::map<std::string, std::string>{{"BANK_COMMAND_LISTEN", "127.0.0.1:1"},
                                         {"BANK_EVENTS_DB", sys.events_uri}});
  ASSERT_TRUE(System::WaitServing(sys.command_port, "bank.v1.CommandService",
                                  absl::Seconds(30)))
      << cmd->Log();
  // Only the environment: the query service listens where it says.
  auto qry = std::make_unique<Process>(
      testing::BinDir() + "/query-service", std::vector<std::string>{},
      std::map<std::string, std::string>{
          {"BANK_QUERY_LISTEN", "127.0.0.1:" + std::to_string(sys.query_port)},
          {"BANK_READ_DB", sys.read_uri}});
  EXPECT_TRUE(System::WaitServing(sys.query_port, "bank.v1.QueryService",
                                  absl::Seconds(30)))
      << qry->Log();
}

TEST(SystemTest, UnreachableDatabaseAtStartupIsOneLineErrorAndNonZeroExit) {
  int port = testing::PickFreePort();
  std::string uri =
      "postgresql://bank:s3cret@127.0.0.1:" + std::to_string(port) +
      "/x?connect_timeout=2";
  for (const auto& [bin, args] :
       std::vector<std::pair<std::string, std::vector<std::string>>>{
           {"command-service", {"--events-db", uri, "--listen", "127.0.0.1:0"}},
           {"projector", {"--events-db", uri, "--read-db", uri}},
           {"query-service", {"--read-db", uri, "--listen", "127.0.0.1:0"}}}) {
    Process p(testing::BinDir() + "/" + bin, args);
    int code = p.Wait(absl::Seconds(20));
    std::string log = p.Log();
    EXPECT_EQ(code, 1) << bin << ": " << log;
    EXPECT_EQ(CountLines(log, " error "), 1) << bin << ": " << log;
    EXPECT_NE(log.find("cannot start"), std::string::npos) << log;
    EXPECT_EQ(log.find("s3cret"), std::string::npos)
        << bin << " leaked: " << log;
  }
}

TEST(SystemTest, ConcurrentStartsMigrateOnce) {
  System sys(*pg, "race");
  int p2 = testing::PickFreePort();
  auto a = sys.StartCommandService();
  auto b = std::make_unique<Process>(
      testing::BinDir() + "/command-service",
      std::vector<std::string>{"--listen", "127.0.0.1:" + std::to_string(p2),
                               "--events-db", sys.events_uri});
  auto p1 = sys.StartProjector();
  auto p2proc = sys.StartProjector();
  EXPECT_TRUE(System::WaitServing(sys.command_port, "", absl::Seconds(30)))
      << a->Log();
  EXPECT_TRUE(System::WaitServing(p2, "", absl::Seconds(30))) << b->Log();
  pqxx::connection e(sys.events_uri);
  pqxx::work te(e);
  EXPECT_EQ(
      te.exec("SELECT count(*) FROM schema_migrations")[0][0].as<size_t>(),
      sql::EventsMigrations().size());
  EXPECT_TRUE(testing::WaitFor(
      [&] {
        pqxx::connection r(sys.read_uri);
        pqxx::work t(r);
        return t.exec(
                    "SELECT count(*) FROM pg_tables WHERE tablename = "
                    "'schema_migrations'")[0][0]
                       .as<int>() == 1 &&
               t.exec("SELECT count(*) FROM schema_migrations")[0][0]
                       .as<size_t>() == sql::ReadMigrations().size();
      },
      absl::Seconds(10)));
  EXPECT_TRUE(p1->Running()) << p1->Log();
  EXPECT_TRUE(p2proc->Running()) << p2proc->Log();
}

TEST(SystemTest, SigtermStopsEachProcessCleanly) {
  System sys(*pg, "term");
  sys.StartAll();
  testing::OpenAccount(sys.commands(), 1);
  for (Process* p : {sys.command.get(), sys.projector.get(), sys.query.get()}) {
    p->Signal(SIGTERM);
    EXPECT_EQ(p->Wait(absl::Seconds(20)), 0) << p->Log();
    EXPECT_NE(p->Log().find("stopped"), std::string::npos) << p->Log();
  }
}

TEST(SystemTest, MetricsCountTheTrafficSent) {
  System sys(*pg, "metrics");
  sys.StartAll();
  std::string a = testing::OpenAccount(sys.commands(), 0);
  for (int i = 0; i < 5; ++i) {
    v1::DepositRequest d;
    d.set_account_id(a);
    d.set_amount(10);
    v1::CommandResult r;
    auto ctx = Ctx();
    ASSERT_TRUE(sys.commands().Deposit(ctx.get(), d, &r).ok());
  }
  for (int i = 0; i < 2; ++i) {  // The second is a replay.
    v1::DepositRequest d;
    d.set_command_id("metrics-replay");
    d.set_account_id(a);
    d.set_amount(10);
    v1::CommandResult r;
    auto ctx = Ctx();
    ASSERT_TRUE(sys.commands().Deposit(ctx.get(), d, &r).ok());
  }
  for (int64_t amount : {0, -1}) {
    v1::DepositRequest d;
    d.set_account_id(a);
    d.set_amount(amount);
    v1::CommandResult r;
    auto ctx = Ctx();
    EXPECT_FALSE(sys.commands().Deposit(ctx.get(), d, &r).ok());
  }
  {
    v1::WithdrawRequest w;
    w.set_account_id(a);
    w.set_amount(1000);
    v1::CommandResult r;
    auto ctx = Ctx();
    EXPECT_FALSE(sys.commands().Withdraw(ctx.get(), w, &r).ok());
  }
  for (int i = 0; i < 3; ++i) {
    v1::GetBalanceRequest q;
    q.set_account_id(a);
    q.set_min_version(7);
    v1::AccountBalance b;
    auto ctx = Ctx();
    ASSERT_TRUE(sys.queries().GetBalance(ctx.get(), q, &b).ok());
  }
  std::string cmd = testing::HttpGet(sys.command_metrics, "/metrics").body;
  EXPECT_EQ(testing::MetricValue(
                cmd, "bank_commands_total{code=\"OK\",type=\"Deposit\"}"),
            7)
      << cmd;
  EXPECT_EQ(
      testing::MetricValue(
          cmd,
          "bank_commands_total{code=\"INVALID_ARGUMENT\",type=\"Deposit\"}"),
      2);
  EXPECT_EQ(testing::MetricValue(cmd,
                                 "bank_commands_total{code=\"FAILED_"
                                 "PRECONDITION\",type=\"Withdraw\"}"),
            1);
  EXPECT_EQ(testing::MetricValue(
                cmd, "bank_commands_total{code=\"OK\",type=\"OpenAccount\"}"),
            1);
  EXPECT_EQ(testing::MetricValue(
                cmd, "bank_command_duration_seconds_count{type=\"Deposit\"}"),
            9);
  EXPECT_EQ(testing::MetricValue(cmd, "bank_idempotent_replays_total"), 1);
  EXPECT_GE(testing::MetricValue(cmd, "bank_db_pool_in_use"), 0);
  std::string qry = testing::HttpGet(sys.query_metrics, "/metrics").body;
  EXPECT_EQ(testing::MetricValue(
                qry, "bank_queries_total{code=\"OK\",rpc=\"GetBalance\"}"),
            3)
      << qry;
  EXPECT_TRUE(testing::WaitFor(
      [&] {
        std::string p =
            testing::HttpGet(sys.projector_metrics, "/metrics").body;
        return testing::MetricValue(p, "bank_projector_events_applied_total") ==
                   7 &&
               testing::MetricValue(p, "bank_projector_lag_events") == 0 &&
               testing::MetricValue(p, "bank_projector_active") == 1;
      },
      absl::Seconds(10)))
      << testing::HttpGet(sys.projector_metrics, "/metrics").body;
  for (int port :
       {sys.command_metrics, sys.projector_metrics, sys.query_metrics}) {
    EXPECT_EQ(testing::HttpGet(port, "/healthz").status, 200) << port;
  }
}

// While the database is down, both servers' gRPC health answers NOT_SERVING
// (for "" and for their service) and every process's /healthz answers 503,
// so balancers route around them; once it is back, all flip back.
TEST(SystemTest, HealthFollowsTheDatabaseDownAndBack) {
  System sys(*pg, "health");
  sys.StartAll();
  using Status = grpc::health::v1::HealthCheckResponse;
  const std::vector<std::pair<int, std::string>> services = {
      {sys.command_port, ""},
      {sys.command_port, "bank.v1.CommandService"},
      {sys.query_port, ""},
      {sys.query_port, "bank.v1.QueryService"}};
  const std::vector<int> metrics = {sys.command_metrics, sys.projector_metrics,
                                    sys.query_metrics};
  auto all = [&](Status::ServingStatus grpc_status, int http_status) {
    for (const auto& [port, service] : services) {
      if (System::Health(port, service) != grpc_status) return false;
    }
    for (int port : metrics) {
      if (testing::HttpGet(port, "/healthz").status != http_status) {
        return false;
      }
    }
    return true;
  };
  ASSERT_TRUE(testing::WaitFor([&] { return all(Status::SERVING, 200); },
                               absl::Seconds(20)));
  // An account the command service has cached: a deposit to it goes
  // straight to the append.
  const std::string a = testing::OpenAccount(sys.commands(), 1);
  ASSERT_TRUE(pg->Stop(/*immediate=*/false).ok());
  EXPECT_TRUE(testing::WaitFor([&] { return all(Status::NOT_SERVING, 503); },
                               absl::Seconds(20)))
      << sys.command->Log() << sys.projector->Log() << sys.query->Log();
  // Calls meanwhile fail UNAVAILABLE, without saying where the database is.
  {
    v1::DepositRequest req;
    req.set_account_id(a);
    req.set_amount(1);
    v1::CommandResult resp;
    grpc::Status s = sys.commands().Deposit(testing::Ctx(5).get(), req, &resp);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE)
        << s.error_message();
    EXPECT_EQ(s.error_message().find(std::to_string(pg->port())),
              std::string::npos)
        << s.error_message();
    v1::GetHistoryRequest h;
    h.set_account_id(a);
    v1::GetHistoryResponse history;
    s = sys.queries().GetHistory(testing::Ctx(5).get(), h, &history);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE)
        << s.error_message();
    EXPECT_EQ(s.error_message().find(std::to_string(pg->port())),
              std::string::npos)
        << s.error_message();
  }
  ASSERT_TRUE(pg->Restart().ok());
  EXPECT_TRUE(testing::WaitFor([&] { return all(Status::SERVING, 200); },
                               absl::Seconds(30)))
      << sys.command->Log() << sys.projector->Log() << sys.query->Log();
  // And they serve again at once: the connections that broke while the
  // database was away are not handed to calls (DatabaseRestartTest sends
  // 128).
  v1::OpenAccountRequest req;
  req.set_owner("Alice");
  req.set_currency("EUR");
  v1::CommandResult resp;
  grpc::Status s = sys.commands().OpenAccount(testing::Ctx().get(), req, &resp);
  EXPECT_TRUE(s.ok()) << s.error_message();
}

TEST(SystemTest, OverloadIsShedQuicklyAndTheServiceRecovers) {
  System sys(*pg, "overload");
  sys.command =
      sys.StartCommandService({"--max-in-flight", "4", "--db-pool-size", "2"});
  ASSERT_TRUE(System::WaitServing(sys.command_port, "", absl::Seconds(30)))
      << sys.command->Log();
  std::string a = testing::OpenAccount(sys.commands(), 0);
  std::atomic<int> ok{0}, shed{0}, other{0};
  absl::Duration slowest_shed;
  absl::Mutex mu;
  std::vector<std::thread> threads;
  for (int t = 0; t < 32; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 10; ++i) {
        v1::DepositRequest d;
        d.set_account_id(a);
        d.set_amount(1);
        v1::CommandResult r;
        auto ctx = Ctx(10);
        absl::Time start = absl::Now();
        grpc::Status s = sys.commands().Deposit(ctx.get(), d, &r);
        if (s.ok()) {
          ++ok;
        } else if (s.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED) {
          ++shed;
          absl::MutexLock lock(&mu);
          slowest_shed = std::max(slowest_shed, absl::Now() - start);
        } else {
          ++other;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_GT(shed.load(), 0);
  EXPECT_GT(ok.load(), 0);
  EXPECT_EQ(other.load(), 0);
  EXPECT_LT(slowest_shed, absl::Seconds(1));  // Refused at once, not queued.
  // Every acknowledged deposit is there, and only those.
  v1::DepositRequest d;
  d.set_account_id(a);
  d.set_amount(1);
  v1::CommandResult r;
  auto ctx = Ctx();
  ASSERT_TRUE(sys.commands().Deposit(ctx.get(), d, &r).ok());
  EXPECT_EQ(r.version(), 1 + ok.load() + 1);
}

TEST(SystemTest, AnExpiredDeadlineChangesNothing) {
  System sys(*pg, "deadline");
  sys.StartAll();
  std::string a = testing::OpenAccount(sys.commands(), 0);
  v1::DepositRequest d;
  d.set_account_id(a);
  d.set_amount(5);
  v1::CommandResult r;
  grpc::ClientContext ctx;
  // A deadline that has already passed when the call is made.
  ctx.set_deadline(std::chrono::system_clock::now() - std::chrono::seconds(1));
  EXPECT_EQ(sys.commands().Deposit(&ctx, d, &r).error_code(),
            grpc::StatusCode::DEADLINE_EXCEEDED);
  v1::GetBalanceRequest q;
  q.set_account_id(a);
  q.set_min_version(1);
  v1::AccountBalance b;
  auto qctx = Ctx();
  ASSERT_TRUE(sys.queries().GetBalance(qctx.get(), q, &b).ok());
  absl::SleepFor(absl::Milliseconds(300));
  auto qctx2 = Ctx();
  ASSERT_TRUE(sys.queries().GetBalance(qctx2.get(), q, &b).ok());
  EXPECT_EQ(b.balance(), 0);
  EXPECT_EQ(b.version(), 1);
}

TEST(SystemTest, InvalidUtf8IsInvalidArgumentAndChangesNothing) {
  System sys(*pg, "utf8");
  sys.StartAll();
  std::string a = testing::OpenAccount(sys.commands(), 10);
  {
    v1::OpenAccountRequest req;
    req.set_owner("Mal\xc3");  // Truncated UTF-8.
    req.set_currency("EUR");
    v1::CommandResult r;
    auto ctx = Ctx();
    grpc::Status s = sys.commands().OpenAccount(ctx.get(), req, &r);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_NE(s.error_message().find("owner is not valid UTF-8"),
              std::string::npos)
        << s.error_message();
  }
  {
    v1::DepositRequest req;
    req.set_command_id("\xff\xfe");
    req.set_account_id(a);
    req.set_amount(1);
    v1::CommandResult r;
    auto ctx = Ctx();
    grpc::Status s = sys.commands().Deposit(ctx.get(), req, &r);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_NE(s.error_message().find("command_id is not valid UTF-8"),
              std::string::npos)
        << s.error_message();
  }
  // The query service refuses the same way, naming the field.
  auto expect_refused = [](const grpc::Status& s, const std::string& field) {
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
        << s.error_message();
    EXPECT_NE(s.error_message().find(field + " is not valid UTF-8"),
              std::string::npos)
        << s.error_message();
  };
  {
    v1::GetBalanceRequest q;
    q.set_account_id(a.substr(0, 35) + "\xc3");
    v1::AccountBalance b;
    auto ctx = Ctx();
    expect_refused(sys.queries().GetBalance(ctx.get(), q, &b), "account_id");
    q.set_min_version(1);  // The read-your-writes path decodes the same way.
    auto ctx2 = Ctx();
    expect_refused(sys.queries().GetBalance(ctx2.get(), q, &b), "account_id");
  }
  {
    v1::ListAccountsRequest q;
    q.set_page_token("\xff");
    v1::ListAccountsResponse r;
    auto ctx = Ctx();
    expect_refused(sys.queries().ListAccounts(ctx.get(), q, &r), "page_token");
  }
  {
    v1::GetHistoryRequest q;
    q.set_account_id(a);
    q.set_page_token("ok\xe2\x82");
    v1::GetHistoryResponse r;
    auto ctx = Ctx();
    expect_refused(sys.queries().GetHistory(ctx.get(), q, &r), "page_token");
  }
  {
    // Still answering: the refusals changed nothing.
    v1::GetBalanceRequest q;
    q.set_account_id(a);
    q.set_min_version(1);
    v1::AccountBalance b;
    auto ctx = Ctx();
    ASSERT_TRUE(sys.queries().GetBalance(ctx.get(), q, &b).ok());
    EXPECT_EQ(b.balance(), 10);
  }
  pqxx::connection e(sys.events_uri);
  pqxx::work te(e);
  EXPECT_EQ(te.exec("SELECT count(*) FROM events")[0][0].as<int>(), 1);
}

// Bytes that are not a protobuf message at all, sent with a generic stub:
// INVALID_ARGUMENT from both services, nothing written.
TEST(SystemTest, UndecodableRequestIsInvalidArgument) {
  System sys(*pg, "garbage");
  sys.StartAll();
  auto call = [](int port, const std::string& method) {
    auto channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", port),
                                       grpc::InsecureChannelCredentials());
    grpc::GenericStub stub(channel);
    // Field 1, length-delimited, claiming 100 bytes that never come.
    const std::string junk = "\x0a\x64\x01";
    grpc::Slice slice(junk);
    grpc::ByteBuffer request(&slice, 1), response;
    auto ctx = Ctx();
    std::promise<grpc::Status> done;
    stub.UnaryCall(ctx.get(), method, grpc::StubOptions(), &request, &response,
                   [&done](grpc::Status s) { done.set_value(s); });
    return done.get_future().get();
  };
  for (const auto& [port, method] : std::vector<std::pair<int, std::string>>{
           {sys.command_port, "/bank.v1.CommandService/Deposit"},
           {sys.command_port, "/bank.v1.CommandService/OpenAccount"},
           {sys.query_port, "/bank.v1.QueryService/GetBalance"},
           {sys.query_port, "/bank.v1.QueryService/ListAccounts"},
           {sys.query_port, "/bank.v1.QueryService/GetHistory"}}) {
    grpc::Status s = call(port, method);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << method;
    EXPECT_EQ(s.error_message(), "the request is not a valid protobuf message")
        << method;
  }
  pqxx::connection e(sys.events_uri);
  pqxx::work te(e);
  EXPECT_EQ(te.exec("SELECT count(*) FROM events")[0][0].as<int>(), 0);
}

TEST(SystemTest, OversizedRequestIsRefusedAndChangesNothing) {
  System sys(*pg, "big");
  sys.StartAll();
  v1::OpenAccountRequest req;
  req.set_owner(std::string(1 << 20, 'a'));
  req.set_currency("EUR");
  v1::CommandResult res;
  auto ctx = Ctx();
  grpc::Status s = sys.commands().OpenAccount(ctx.get(), req, &res);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED)
      << s.error_message();
  pqxx::connection e(sys.events_uri);
  pqxx::work te(e);
  EXPECT_EQ(te.exec("SELECT count(*) FROM events")[0][0].as<int>(), 0);
}

// Last: it stops the shared cluster.
TEST(SystemTest, CommandsAreUnavailableWhileTheDatabaseIsDownAndRecover) {
  System sys(*pg, "outage");
  sys.StartAll();
  std::string a = testing::OpenAccount(sys.commands(), 0);
  auto deposit = [&] {
    v1::DepositRequest d;
    d.set_account_id(a);
    d.set_amount(1);
    v1::CommandResult r;
    auto ctx = Ctx(5);
    return sys.commands().Deposit(ctx.get(), d, &r);
  };
  ASSERT_TRUE(pg->Stop(/*immediate=*/false).ok());
  grpc::Status down = deposit();
  EXPECT_EQ(down.error_code(), grpc::StatusCode::UNAVAILABLE)
      << down.error_message();
  EXPECT_FALSE(down.error_message().empty());
  ASSERT_TRUE(pg->Restart().ok());
  EXPECT_TRUE(
      testing::WaitFor([&] { return deposit().ok(); }, absl::Seconds(20)));
  // The process was never restarted.
  EXPECT_TRUE(sys.command->Running());
  v1::GetBalanceRequest q;
  q.set_account_id(a);
  q.set_min_version(2);
  v1::AccountBalance b;
  auto qctx = Ctx(20);
  grpc::Status s = sys.queries().GetBalance(qctx.get(), q, &b);
  EXPECT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(b.balance(), 1);
}

}  // namespace
}  // namespace bank

int main(int argc, char** argv) {
  return bank::testing::RunAllTestsWith(
      argc, argv, new bank::testing::PgEnvironment(&bank::pg));
}

#include "tests/support/system.h"

#include <chrono>

#include "grpc/health/v1/health.grpc.pb.h"
#include "gtest/gtest.h"

namespace bank::testing {

System::System(PgCluster& pg, const std::string& name)
    : System(pg.Uri(name + "_events"), pg.Uri(name + "_read")) {
  EXPECT_TRUE(pg.CreateDatabase(name + "_events").ok());
  EXPECT_TRUE(pg.CreateDatabase(name + "_read").ok());
}

System::System(std::string events_uri, std::string read_uri)
    : events_uri(std::move(events_uri)), read_uri(std::move(read_uri)) {
  command_port = PickFreePort();
  query_port = PickFreePort();
  command_metrics = PickFreePort();
  projector_metrics = PickFreePort();
  query_metrics = PickFreePort();
}

System::~System() = default;

std::unique_ptr<Process> System::StartCommandService(
    const std::vector<std::string>& extra) {
  std::vector<std::string> args = {
      "--listen",         "127.0.0.1:" + std::to_string(command_port),
      "--events-db",      events_uri,
      "--shutdown-grace", "5"};
  args.insert(args.end(), extra.begin(), extra.end());
  return std::make_unique<Process>(BinDir() + "/command-service", args);
}

std::unique_ptr<Process> System::StartProjector(
    const std::vector<std::string>& extra) {
  std::vector<std::string> args = {"--events-db",     events_uri,
                                   "--read-db",       read_uri,
                                   "--poll-interval", "0.2"};
  args.insert(args.end(), extra.begin(), extra.end());
  return std::make_unique<Process>(BinDir() + "/projector", args);
}

std::unique_ptr<Process> System::StartQueryService(
    const std::vector<std::string>& extra) {
  std::vector<std::string> args = {
      "--listen",         "127.0.0.1:" + std::to_string(query_port),
      "--read-db",        query_read_uri.empty() ? read_uri : query_read_uri,
      "--shutdown-grace", "5"};
  args.insert(args.end(), extra.begin(), extra.end());
  return std::make_unique<Process>(BinDir() + "/query-service", args);
}

void System::StartAll(const std::vector<std::string>& service_flags) {
  auto metrics = [](int port) {
    return std::vector<std::string>{"--metrics-listen",
                                    "127.0.0.1:" + std::to_string(port)};
  };
  auto with_flags = [&](std::vector<std::string> flags) {
    flags.insert(flags.end(), service_flags.begin(), service_flags.end());
    return flags;
  };
  command = StartCommandService(with_flags(metrics(command_metrics)));
  ASSERT_TRUE(
      WaitServing(command_port, "bank.v1.CommandService", absl::Seconds(30)))
      << command->Log();
  projector = StartProjector(metrics(projector_metrics));
  // The projector owns the read schema: ready once it has caught up once.
  ASSERT_TRUE(WaitFor(
      [&] { return HttpGet(projector_metrics, "/healthz").status == 200; },
      absl::Seconds(30)))
      << projector->Log();
  query = StartQueryService(with_flags(metrics(query_metrics)));
  ASSERT_TRUE(
      WaitServing(query_port, "bank.v1.QueryService", absl::Seconds(30)))
      << query->Log();
}

std::optional<grpc::health::v1::HealthCheckResponse::ServingStatus>
System::Health(int port, const std::string& service) {
  // A fresh channel with its own subchannel each time: no reconnect backoff
  // carried over from attempts made before the server was up.
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  auto stub = grpc::health::v1::Health::NewStub(
      grpc::CreateCustomChannel("127.0.0.1:" + std::to_string(port),
                                grpc::InsecureChannelCredentials(), args));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() +
                   std::chrono::milliseconds(500));
  grpc::health::v1::HealthCheckRequest req;
  req.set_service(service);
  grpc::health::v1::HealthCheckResponse resp;
  if (!stub->Check(&ctx, req, &resp).ok()) return std::nullopt;
  return resp.status();
}

bool System::WaitServing(int port, const std::string& service,
                         absl::Duration timeout) {
  return WaitFor(
      [&] {
        return Health(port, service) ==
               grpc::health::v1::HealthCheckResponse::SERVING;
      },
      timeout);
}

v1::CommandService::Stub& System::commands() {
  if (!commands_) {
    commands_ = v1::CommandService::NewStub(
        grpc::CreateChannel("127.0.0.1:" + std::to_string(command_port),
                            grpc::InsecureChannelCredentials()));
  }
  return *commands_;
}

v1::QueryService::Stub& System::queries() {
  if (!queries_) {
    queries_ = v1::QueryService::NewStub(
        grpc::CreateChannel("127.0.0.1:" + std::to_string(query_port),
                            grpc::InsecureChannelCredentials()));
  }
  return *queries_;
}

std::unique_ptr<grpc::ClientContext> Ctx(double seconds) {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(
      std::chrono::system_clock::now() +
      std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000)));
  return ctx;
}

std::string OpenAccount(v1::CommandService::Stub& stub, int64_t initial,
                        const std::string& currency) {
  v1::OpenAccountRequest req;
  req.set_owner("Owner");
  req.set_currency(currency);
  req.set_initial_deposit(initial);
  v1::CommandResult res;
  auto ctx = Ctx();
  grpc::Status s = stub.OpenAccount(ctx.get(), req, &res);
  EXPECT_TRUE(s.ok()) << s.error_message();
  return res.account_id();
}

}  // namespace bank::testing

// CommandService over real gRPC against a real PostgreSQL event store.
#include <atomic>
#include <cctype>
#include <functional>
#include <future>
#include <limits>
#include <pqxx/pqxx>
#include <thread>
#include <vector>

#include "common/db/migrations.h"
#include "common/eventstore/commit_notifier.h"
#include "common/util/uuid.h"
#include "gtest/gtest.h"
#include "sql/migrations.h"
#include "tests/support/command_server.h"
#include "tests/support/pg_cluster.h"
#include "tests/support/pg_environment.h"

namespace bank {
namespace {

using grpc::StatusCode;
using testing::CommandServer;
using testing::PgCluster;

PgCluster* cluster = nullptr;
std::string uri;

// The database the tests use, migrated.
void Prepare(testing::PgCluster& c) {
  ASSERT_TRUE(c.CreateDatabase("bank_events").ok());
  uri = c.Uri("bank_events");
  ASSERT_TRUE(db::ApplyMigrations(uri, sql::EventsMigrations(), "m").ok());
}

class CommandServiceTest : public ::testing::Test {
 protected:
  void SetUp() override { server_ = std::make_unique<CommandServer>(uri); }

  v1::CommandService::Stub& stub() { return *server_->stub; }

  std::string Open(int64_t initial, const std::string& currency = "EUR") {
    grpc::ClientContext ctx;
    v1::OpenAccountRequest req;
    req.set_owner("Alice");
    req.set_currency(currency);
    req.set_initial_deposit(initial);
    v1::CommandResult res;
    grpc::Status s = stub().OpenAccount(&ctx, req, &res);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return res.account_id();
  }
  grpc::Status Deposit(const std::string& id, int64_t amount,
                       v1::CommandResult* res = nullptr,
                       const std::string& command_id = "",
                       std::optional<int64_t> expected = std::nullopt) {
    grpc::ClientContext ctx;
    v1::DepositRequest req;
    req.set_command_id(command_id);
    req.set_account_id(id);
    req.set_amount(amount);
    if (expected) req.set_expected_version(*expected);
    v1::CommandResult ignored;
    return stub().Deposit(&ctx, req, res ? res : &ignored);
  }
  grpc::Status Withdraw(const std::string& id, int64_t amount) {
    grpc::ClientContext ctx;
    v1::WithdrawRequest req;
    req.set_account_id(id);
    req.set_amount(amount);
    v1::CommandResult res;
    return stub().Withdraw(&ctx, req, &res);
  }
  grpc::Status Transfer(v1::CommandService::Stub& s, const std::string& from,
                        const std::string& to, int64_t amount,
                        v1::TransferResult* res = nullptr,
                        const std::string& command_id = "") {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::seconds(30));
    v1::TransferRequest req;
    req.set_command_id(command_id);
    req.set_from_account_id(from);
    req.set_to_account_id(to);
    req.set_amount(amount);
    v1::TransferResult ignored;
    return s.Transfer(&ctx, req, res ? res : &ignored);
  }
  grpc::Status Close(const std::string& id) {
    grpc::ClientContext ctx;
    v1::CloseAccountRequest req;
    req.set_account_id(id);
    v1::CommandResult res;
    return stub().CloseAccount(&ctx, req, &res);
  }
  // The state folded by a fresh handler (no cache) from the store.
  int64_t StoredBalance(const std::string& id) {
    pqxx::connection c(uri);
    pqxx::work tx(c);
    pqxx::result r = tx.exec_params(
        "SELECT coalesce(sum(CASE WHEN event_type IN "
        "('MoneyDeposited','TransferReceived') "
        "THEN (data->>'amount')::bigint WHEN event_type IN "
        "('MoneyWithdrawn','TransferSent') "
        "THEN -(data->>'amount')::bigint WHEN event_type = 'AccountOpened' "
        "THEN (data->>'initial_deposit')::bigint ELSE 0 END), 0) "
        "FROM events WHERE stream_id = $1::uuid",
        id);
    return r[0][0].as<int64_t>();
  }
  int64_t Count(const std::string& sql) {
    pqxx::connection c(uri);
    pqxx::work tx(c);
    return tx.exec(sql)[0][0].as<int64_t>();
  }

  std::unique_ptr<CommandServer> server_;
};

TEST_F(CommandServiceTest, OpenDepositWithdrawCloseReportVersionsAndPositions) {
  grpc::ClientContext ctx;
  v1::OpenAccountRequest req;
  std::string id = util::NewUuid();
  req.set_account_id(id);
  req.set_owner("Zoë Ünicode");
  req.set_currency("EUR");
  req.set_initial_deposit(1000);
  v1::CommandResult opened;
  ASSERT_TRUE(stub().OpenAccount(&ctx, req, &opened).ok());
  EXPECT_EQ(opened.account_id(), id);
  EXPECT_EQ(opened.version(), 1);
  EXPECT_GT(opened.position(), 0);
  EXPECT_FALSE(opened.replayed());
  v1::CommandResult dep;
  ASSERT_TRUE(Deposit(id, 250, &dep).ok());
  EXPECT_EQ(dep.version(), 2);
  EXPECT_GT(dep.position(), opened.position());
  ASSERT_TRUE(Withdraw(id, 1250).ok());
  EXPECT_EQ(StoredBalance(id), 0);
  ASSERT_TRUE(Close(id).ok());
  EXPECT_EQ(Count("SELECT count(*) FROM events WHERE stream_id = '" + id + "'"),
            4);
}

TEST_F(CommandServiceTest, GeneratesAccountIdWhenEmpty) {
  std::string id = Open(0);
  EXPECT_TRUE(util::IsUuid(id)) << id;
}

TEST_F(CommandServiceTest, UpperCaseAccountIdIsTheSameAccount) {
  std::string id = Open(0);
  std::string upper = id;
  for (char& c : upper) c = std::toupper(static_cast<unsigned char>(c));
  v1::CommandResult res;
  ASSERT_TRUE(Deposit(upper, 5, &res).ok());
  EXPECT_EQ(res.account_id(), id);
  EXPECT_EQ(res.version(), 2);
}

TEST_F(CommandServiceTest, InvalidArgumentForMalformedInput) {
  std::string id = Open(10);
  EXPECT_EQ(Deposit("not-a-uuid", 5).error_code(),
            StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Deposit("", 5).error_code(), StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Deposit(id, 0).error_code(), StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Deposit(id, -5).error_code(), StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Withdraw(id, std::numeric_limits<int64_t>::min()).error_code(),
            StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Deposit(id, 5, nullptr, std::string(129, 'c')).error_code(),
            StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Deposit(id, 5, nullptr, "", 0).error_code(),
            StatusCode::INVALID_ARGUMENT);
  for (const auto& [owner, currency] :
       std::vector<std::pair<std::string, std::string>>{
           {"", "EUR"},
           {std::string(201, 'a'), "EUR"},
           {"tab\there", "EUR"},
           {"Alice", "eur"},
           {"Alice", "EU"},
           {"Alice", "€UR"}}) {
    grpc::ClientContext ctx;
    v1::OpenAccountRequest req;
    req.set_owner(owner);
    req.set_currency(currency);
    v1::CommandResult res;
    grpc::Status s = stub().OpenAccount(&ctx, req, &res);
    EXPECT_EQ(s.error_code(), StatusCode::INVALID_ARGUMENT)
        << owner << currency;
    EXPECT_FALSE(s.error_message().empty());
  }
  {
    grpc::ClientContext ctx;
    v1::OpenAccountRequest req;
    req.set_owner("Alice");
    req.set_currency("EUR");
    req.set_initial_deposit(-1);
    v1::CommandResult res;
    EXPECT_EQ(stub().OpenAccount(&ctx, req, &res).error_code(),
              StatusCode::INVALID_ARGUMENT);
  }
  // Invalid UTF-8 never passes gRPC's proto3 parsing; a caller inside the
  // process gets INVALID_ARGUMENT from the handler itself.
  {
    v1::DepositRequest req;
    req.set_account_id(id);
    req.set_amount(1);
    req.set_command_id("bad\xff");
    auto shared_req = std::make_shared<const v1::DepositRequest>(req);
    EXPECT_EQ(testing::AwaitAnswer<v1::CommandResult>([&](auto done) {
                server_->handler.Deposit(shared_req, "",
                                         absl::Now() + absl::Seconds(5), done);
              })
                  .status()
                  .code(),
              absl::StatusCode::kInvalidArgument);
    v1::OpenAccountRequest open;
    open.set_owner("a\xc3");
    open.set_currency("EUR");
    auto shared_open = std::make_shared<const v1::OpenAccountRequest>(open);
    EXPECT_EQ(testing::AwaitAnswer<v1::CommandResult>([&](auto done) {
                server_->handler.OpenAccount(
                    shared_open, "", absl::Now() + absl::Seconds(5), done);
              })
                  .status()
                  .code(),
              absl::StatusCode::kInvalidArgument);
  }
  EXPECT_EQ(Transfer(stub(), id, id, 1).error_code(),
            StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Transfer(stub(), id, "x", 1).error_code(),
            StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(StoredBalance(id), 10);
  EXPECT_EQ(Count("SELECT count(*) FROM events WHERE stream_id = '" + id + "'"),
            1);
}

TEST_F(CommandServiceTest, NotFoundForUnknownAccount) {
  std::string ghost = util::NewUuid();
  std::string id = Open(10);
  EXPECT_EQ(Deposit(ghost, 5).error_code(), StatusCode::NOT_FOUND);
  EXPECT_EQ(Withdraw(ghost, 5).error_code(), StatusCode::NOT_FOUND);
  EXPECT_EQ(Close(ghost).error_code(), StatusCode::NOT_FOUND);
  EXPECT_EQ(Transfer(stub(), id, ghost, 5).error_code(), StatusCode::NOT_FOUND);
  EXPECT_EQ(Transfer(stub(), ghost, id, 5).error_code(), StatusCode::NOT_FOUND);
  EXPECT_EQ(
      Count("SELECT count(*) FROM events WHERE stream_id = '" + ghost + "'"),
      0);
  EXPECT_EQ(StoredBalance(id), 10);
}

TEST_F(CommandServiceTest, AlreadyExistsWhenOpeningAnExistingId) {
  std::string id = Open(0);
  grpc::ClientContext ctx;
  v1::OpenAccountRequest req;
  req.set_account_id(id);
  req.set_owner("Mallory");
  req.set_currency("EUR");
  v1::CommandResult res;
  EXPECT_EQ(stub().OpenAccount(&ctx, req, &res).error_code(),
            StatusCode::ALREADY_EXISTS);
}

TEST_F(CommandServiceTest, FailedPreconditionForBusinessRules) {
  std::string a = Open(100);
  std::string usd = Open(0, "USD");
  std::string full = Open(std::numeric_limits<int64_t>::max());
  EXPECT_EQ(Withdraw(a, 101).error_code(), StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(Transfer(stub(), a, usd, 1).error_code(),
            StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(Transfer(stub(), a, full, 1).error_code(),
            StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(Deposit(full, 1).error_code(), StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(Close(a).error_code(), StatusCode::FAILED_PRECONDITION);
  ASSERT_TRUE(Withdraw(a, 100).ok());
  ASSERT_TRUE(Close(a).ok());
  grpc::Status s = Deposit(a, 1);
  EXPECT_EQ(s.error_code(), StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(s.error_message().find("closed"), std::string::npos);
  EXPECT_EQ(StoredBalance(full), std::numeric_limits<int64_t>::max());
  EXPECT_EQ(StoredBalance(usd), 0);
}

TEST_F(CommandServiceTest, AbortedOnStaleExpectedVersion) {
  std::string id = Open(0);
  EXPECT_TRUE(Deposit(id, 5, nullptr, "", 1).ok());
  grpc::Status s = Deposit(id, 5, nullptr, "", 1);
  EXPECT_EQ(s.error_code(), StatusCode::ABORTED);
  EXPECT_NE(s.error_message().find("version 2"), std::string::npos)
      << s.error_message();
  EXPECT_EQ(Deposit(id, 5, nullptr, "", 3).error_code(), StatusCode::ABORTED);
  EXPECT_TRUE(Deposit(id, 5, nullptr, "", 2).ok());
  EXPECT_EQ(StoredBalance(id), 10);
}

TEST_F(CommandServiceTest, ConcurrentDepositsToOneAccountAllSucceed) {
  std::string id = Open(0);
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 16; ++t) {
    threads.emplace_back([&, t] {
      for (int i = t; i < 200; i += 16) {
        grpc::Status s = Deposit(id, i + 1);
        if (s.ok())
          ++ok;
        else
          ADD_FAILURE() << s.error_code() << " " << s.error_message();
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(ok.load(), 200);
  EXPECT_EQ(StoredBalance(id), 200 * 201 / 2);
  EXPECT_EQ(Count("SELECT max(stream_version) FROM events WHERE stream_id = '" +
                  id + "'"),
            201);
}

TEST_F(CommandServiceTest, ConcurrentDepositsThroughTwoInstancesAllSucceed) {
  // Two service instances on one database: conflicts are real (the unique
  // constraint) and are retried on the server.
  CommandServer other(uri);
  std::string id = Open(0);
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 16; ++t) {
    threads.emplace_back([&, t] {
      v1::CommandService::Stub& s = t % 2 ? *other.stub : stub();
      for (int i = 0; i < 10; ++i) {
        grpc::ClientContext ctx;
        v1::DepositRequest req;
        req.set_account_id(id);
        req.set_amount(1);
        v1::CommandResult res;
        grpc::Status st = s.Deposit(&ctx, req, &res);
        if (st.ok())
          ++ok;
        else
          ADD_FAILURE() << st.error_code() << " " << st.error_message();
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(ok.load(), 160);
  EXPECT_EQ(StoredBalance(id), 160);
}

// A command decided on the state an append still in flight leaves (the
// pipelining of one account's commands) must not commit if that append does
// not: when another writer takes the version first, the version the second
// command follows exists, but it is not the event the command was decided
// on. Here instance A's deposit (v2) waits on another writer's uncommitted
// v2, A's withdrawal is decided on the deposit's balance (v3), then the
// other writer commits a withdrawal at v2: the deposit conflicts, and the
// withdrawal, which only the deposit made possible, must be refused.
// Account `id` is at version 1 with 100 in this instance's cache. Another
// writer holds an uncommitted withdrawal of 100 at version 2; this
// instance's deposit of 100 waits on it in the database; `second` is sent,
// decided on the deposit's state and queued behind it; then the other
// writer commits. Returns the deposit's and the second command's status.
std::pair<grpc::Status, grpc::Status> RaceAnotherWriter(
    CommandServer& server, const std::string& id,
    const std::function<grpc::Status()>& second) {
  pqxx::connection other(uri);
  pqxx::work other_tx(other);
  other_tx.exec_params(
      "INSERT INTO events (event_id, stream_id, stream_version, event_type, "
      "schema_version, data) VALUES (gen_random_uuid(), $1::uuid, 2, "
      "'MoneyWithdrawn', 1, '{\"amount\": \"100\"}')",
      id);
  auto until = [](const std::function<bool()>& done) {
    for (int i = 0; i < 1000 && !done(); ++i)
      absl::SleepFor(absl::Milliseconds(10));
    return done();
  };
  auto deposit = std::async(std::launch::async, [&] {
    grpc::ClientContext ctx;
    v1::DepositRequest req;
    req.set_account_id(id);
    req.set_amount(100);
    v1::CommandResult res;
    return server.stub->Deposit(&ctx, req, &res);
  });
  const bool waiting = until([&] {
    pqxx::connection c(uri);
    pqxx::work tx(c);
    return tx.exec(
                 "SELECT count(*) FROM pg_stat_activity WHERE datname = "
                 "current_database() AND wait_event_type = 'Lock'")[0][0]
               .as<int64_t>() > 0;
  });
  EXPECT_TRUE(waiting) << "the deposit never reached the database";
  auto next = std::async(std::launch::async, second);
  EXPECT_TRUE(until([&] { return server.batched.queued() == 1; }))
      << "the second command was not queued behind the deposit";
  other_tx.commit();
  grpc::Status d = deposit.get();
  grpc::Status n = next.get();
  return {d, n};
}

// A command decided on the state an append still in flight leaves (the
// pipelining of one account's commands) must not commit if that append does
// not: when another writer takes the version first, the version the second
// command follows exists, but it is not the event the command was decided
// on. Here the withdrawal is only possible on the deposit's balance, and the
// deposit loses its version to another writer's withdrawal.
TEST_F(CommandServiceTest, PipelinedCommandNeverBuildsOnAnotherWritersEvent) {
  const std::string id = Open(100);
  auto [d, w] =
      RaceAnotherWriter(*server_, id, [&] { return Withdraw(id, 200); });
  EXPECT_TRUE(d.ok()) << d.error_code() << " " << d.error_message();
  EXPECT_EQ(w.error_code(), StatusCode::FAILED_PRECONDITION)
      << w.error_message();
  // 100 opened, 100 withdrawn by the other writer, 100 deposited.
  EXPECT_EQ(StoredBalance(id), 100);
  EXPECT_EQ(Count("SELECT count(*) FROM events WHERE stream_id = '" + id +
                  "' AND event_type = 'MoneyWithdrawn'"),
            1);
}

// The same race with a transfer, which appends to two accounts: only the
// source follows an event in flight.
TEST_F(CommandServiceTest, PipelinedTransferNeverBuildsOnAnotherWritersEvent) {
  const std::string from = Open(100), to = Open(0);
  auto [d, tr] = RaceAnotherWriter(
      *server_, from, [&] { return Transfer(stub(), from, to, 200); });
  EXPECT_TRUE(d.ok()) << d.error_code() << " " << d.error_message();
  EXPECT_EQ(tr.error_code(), StatusCode::FAILED_PRECONDITION)
      << tr.error_message();
  EXPECT_EQ(StoredBalance(from), 100);
  EXPECT_EQ(StoredBalance(to), 0);
  EXPECT_EQ(Count("SELECT count(*) FROM events WHERE event_type IN "
                  "('TransferSent', 'TransferReceived') AND stream_id IN ('" +
                  from + "', '" + to + "')"),
            0);
}

TEST_F(CommandServiceTest, RacingExpectedVersionExactlyOneWins) {
  CommandServer other(uri);
  std::string id = Open(0);
  std::atomic<int> ok{0}, aborted{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      v1::CommandService::Stub& s = t % 2 ? *other.stub : stub();
      grpc::ClientContext ctx;
      v1::DepositRequest req;
      req.set_account_id(id);
      req.set_amount(1);
      req.set_expected_version(1);
      v1::CommandResult res;
      grpc::Status st = s.Deposit(&ctx, req, &res);
      if (st.ok())
        ++ok;
      else if (st.error_code() == StatusCode::ABORTED)
        ++aborted;
      else
        ADD_FAILURE() << st.error_code() << " " << st.error_message();
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(ok.load(), 1);
  EXPECT_EQ(aborted.load(), 7);
  EXPECT_EQ(StoredBalance(id), 1);
}

TEST_F(CommandServiceTest, OppositeTransfersConserveMoneyWithoutDeadlock) {
  CommandServer other(uri);
  std::string a = Open(1000);
  std::string b = Open(1000);
  std::atomic<int> ok{0}, refused{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      v1::CommandService::Stub& s = t % 2 ? *other.stub : stub();
      for (int i = 0; i < 25; ++i) {
        bool forward = (t + i) % 2 == 0;
        grpc::Status st = Transfer(s, forward ? a : b, forward ? b : a, 70);
        if (st.ok())
          ++ok;
        else if (st.error_code() == StatusCode::FAILED_PRECONDITION)
          ++refused;
        else
          ADD_FAILURE() << st.error_code() << " " << st.error_message();
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(ok.load() + refused.load(), 200);
  EXPECT_GT(ok.load(), 0);
  EXPECT_EQ(StoredBalance(a) + StoredBalance(b), 2000);
  EXPECT_GE(StoredBalance(a), 0);
  EXPECT_GE(StoredBalance(b), 0);
  EXPECT_EQ(Count("SELECT count(*) FROM events WHERE event_type = "
                  "'TransferSent' AND stream_id IN ('" +
                  a + "','" + b + "')"),
            ok.load());
}

TEST_F(CommandServiceTest, TransferWritesBothSidesAtomically) {
  std::string a = Open(100);
  std::string b = Open(0);
  v1::TransferResult res;
  ASSERT_TRUE(Transfer(stub(), a, b, 30, &res).ok());
  EXPECT_EQ(res.from().account_id(), a);
  EXPECT_EQ(res.to().account_id(), b);
  EXPECT_EQ(res.from().version(), 2);
  EXPECT_EQ(res.to().version(), 2);
  EXPECT_EQ(StoredBalance(a), 70);
  EXPECT_EQ(StoredBalance(b), 30);
  EXPECT_EQ(Count("SELECT count(DISTINCT transaction_id) FROM events WHERE "
                  "position IN (" +
                  std::to_string(res.from().position()) + "," +
                  std::to_string(res.to().position()) + ")"),
            1);
}

TEST_F(CommandServiceTest, SameCommandIdTakesEffectOnceAcrossRestarts) {
  std::string id = Open(0);
  std::string cmd = util::NewUuid();
  v1::CommandResult first, second, third;
  ASSERT_TRUE(Deposit(id, 40, &first, cmd).ok());
  EXPECT_FALSE(first.replayed());
  ASSERT_TRUE(Deposit(id, 40, &second, cmd).ok());
  EXPECT_TRUE(second.replayed());
  EXPECT_EQ(second.version(), first.version());
  EXPECT_EQ(second.position(), first.position());
  // A restart: a new service instance with an empty cache.
  server_ = std::make_unique<CommandServer>(uri);
  ASSERT_TRUE(Deposit(id, 40, &third, cmd).ok());
  EXPECT_TRUE(third.replayed());
  EXPECT_EQ(third.position(), first.position());
  EXPECT_EQ(StoredBalance(id), 40);
  // The same id with another request is refused and changes nothing.
  grpc::Status s = Deposit(id, 41, nullptr, cmd);
  EXPECT_EQ(s.error_code(), StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("different request"), std::string::npos);
  EXPECT_EQ(StoredBalance(id), 40);
}

// A retry is the same request whether its account id is spelled in upper
// case or it carries fields this version does not know (a client with a
// newer schema): idempotency compares the canonical request, not the bytes.
TEST_F(CommandServiceTest, RetriesDifferingOnlyInSpellingAreTheSameRequest) {
  std::string id = Open(0);
  std::string cmd = util::NewUuid();
  v1::CommandResult first;
  ASSERT_TRUE(Deposit(id, 40, &first, cmd).ok());
  auto send = [&](const std::string& account, bool unknown_field) {
    grpc::ClientContext ctx;
    v1::DepositRequest req;
    req.set_command_id(cmd);
    req.set_account_id(account);
    req.set_amount(40);
    if (unknown_field) {
      req.GetReflection()->MutableUnknownFields(&req)->AddVarint(99, 7);
    }
    v1::CommandResult res;
    grpc::Status s = stub().Deposit(&ctx, req, &res);
    EXPECT_TRUE(s.ok()) << s.error_message();
    EXPECT_TRUE(res.replayed());
    EXPECT_EQ(res.position(), first.position());
  };
  std::string upper = id;
  for (char& c : upper) c = static_cast<char>(std::toupper(c));
  send(upper, false);
  send(id, true);
  send(upper, true);
  // After a restart too, from the stored request.
  server_ = std::make_unique<CommandServer>(uri);
  send(upper, true);
  EXPECT_EQ(StoredBalance(id), 40);
  // A field that changes the request still makes it another request.
  EXPECT_EQ(Deposit(id, 41, nullptr, cmd).error_code(),
            StatusCode::INVALID_ARGUMENT);
}

// Idempotency is checked by the append itself, so the state a retried
// command meets already holds its first effect: the answer must still be
// that first outcome, never a refusal computed on the changed state.
TEST_F(CommandServiceTest, RetriedCommandsAnswerTheirFirstOutcomeNotARefusal) {
  std::string id = Open(100);
  const std::string w = util::NewUuid();
  for (int i = 0; i < 2; ++i) {  // The balance no longer covers a second one.
    grpc::ClientContext ctx;
    v1::WithdrawRequest req;
    req.set_command_id(w);
    req.set_account_id(id);
    req.set_amount(100);
    v1::CommandResult res;
    grpc::Status s = stub().Withdraw(&ctx, req, &res);
    ASSERT_TRUE(s.ok()) << s.error_code() << " " << s.error_message();
    EXPECT_EQ(res.version(), 2);
    EXPECT_EQ(res.replayed(), i == 1);
  }
  const std::string d = util::NewUuid();
  for (int i = 0; i < 2; ++i) {  // expected_version 2 is stale the second time.
    v1::CommandResult res;
    grpc::Status s = Deposit(id, 5, &res, d, 2);
    ASSERT_TRUE(s.ok()) << s.error_code() << " " << s.error_message();
    EXPECT_EQ(res.version(), 3);
    EXPECT_EQ(res.replayed(), i == 1);
  }
  const std::string o = util::NewUuid(), fixed = util::NewUuid();
  for (int i = 0; i < 2; ++i) {  // The account exists the second time.
    grpc::ClientContext ctx;
    v1::OpenAccountRequest req;
    req.set_command_id(o);
    req.set_account_id(fixed);
    req.set_owner("Carol");
    req.set_currency("EUR");
    v1::CommandResult res;
    grpc::Status s = stub().OpenAccount(&ctx, req, &res);
    ASSERT_TRUE(s.ok()) << s.error_code() << " " << s.error_message();
    EXPECT_EQ(res.replayed(), i == 1);
  }
  EXPECT_EQ(StoredBalance(id), 5);
  // Without a command_id, the same requests are refused as they should be.
  EXPECT_EQ(Withdraw(id, 100).error_code(), StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(Deposit(id, 5, nullptr, "", 2).error_code(), StatusCode::ABORTED);
}

TEST_F(CommandServiceTest, SameCommandIdRacingFromManyClientsAppliesOnce) {
  CommandServer other(uri);
  std::string a = Open(100), b = Open(0);
  std::string cmd = util::NewUuid();
  std::atomic<int> ok{0}, replayed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      v1::TransferResult res;
      grpc::Status st =
          Transfer(t % 2 ? *other.stub : stub(), a, b, 10, &res, cmd);
      if (st.ok()) {
        ++ok;
        if (res.from().replayed()) ++replayed;
      } else {
        ADD_FAILURE() << st.error_code() << " " << st.error_message();
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(ok.load(), 8);
  EXPECT_EQ(replayed.load(), 7);
  EXPECT_EQ(StoredBalance(a), 90);
  EXPECT_EQ(StoredBalance(b), 10);
}

TEST_F(CommandServiceTest, OpenWithServerGeneratedIdIsIdempotent) {
  std::string cmd = util::NewUuid();
  v1::CommandResult r1, r2;
  for (v1::CommandResult* r : {&r1, &r2}) {
    grpc::ClientContext ctx;
    v1::OpenAccountRequest req;
    req.set_command_id(cmd);
    req.set_owner("Alice");
    req.set_currency("EUR");
    ASSERT_TRUE(stub().OpenAccount(&ctx, req, r).ok());
  }
  EXPECT_EQ(r1.account_id(), r2.account_id());
  EXPECT_TRUE(r2.replayed());
}

TEST_F(CommandServiceTest, ConcurrentCommandsShareTransactions) {
  std::vector<std::string> ids;
  for (int i = 0; i < 32; ++i) ids.push_back(Open(0));
  const int64_t first = Count("SELECT max(position) FROM events");
  std::vector<std::thread> threads;
  for (int t = 0; t < 32; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 20; ++i) {
        grpc::Status s = Deposit(ids[t], 1);
        if (!s.ok())
          ADD_FAILURE() << s.error_code() << " " << s.error_message();
      }
    });
  }
  for (auto& th : threads) th.join();
  const std::string after =
      " FROM events WHERE position > " + std::to_string(first);
  EXPECT_EQ(Count("SELECT count(*)" + after), 640);
  // 640 commands, far fewer transactions: they were group-committed.
  EXPECT_LT(Count("SELECT count(DISTINCT transaction_id)" + after), 640);
  for (const std::string& id : ids) EXPECT_EQ(StoredBalance(id), 20);
}

// Counts the notifications a connection receives on a channel.
struct NotificationCounter : pqxx::notification_receiver {
  using pqxx::notification_receiver::notification_receiver;
  int count = 0;
  void operator()(const std::string&, int) override { ++count; }
};

// Readers are woken after commits, by the service from its own connection:
// no NOTIFY inside the write transaction (sql/events/004).
TEST_F(CommandServiceTest, CommitsWakeListenersFromOutsideTheWritePath) {
  EXPECT_EQ(Count("SELECT count(*) FROM pg_trigger WHERE tgrelid = "
                  "'events'::regclass AND tgname LIKE '%notify%'"),
            0);
  pqxx::connection listener(uri);
  NotificationCounter receiver(listener, "bank_events");
  const int64_t sent_before = server_->notifier.sent();
  std::string a = Open(100);
  for (int i = 0; i < 50 && receiver.count == 0; ++i) {
    listener.await_notification(0, 100000);
  }
  EXPECT_GE(receiver.count, 1);
  // A burst of commits is coalesced into fewer notifications.
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 25; ++i) EXPECT_TRUE(Deposit(a, 1).ok());
    });
  }
  for (auto& th : threads) th.join();
  absl::SleepFor(absl::Milliseconds(50));
  // Every commit is followed by a notification (the coalescing itself is
  // bounded by CommitNotifierTest below).
  EXPECT_GE(server_->notifier.sent() - sent_before, 2);
}

// However many commits land, at most one NOTIFY goes out per min_interval:
// commits from 4 threads for 600 ms, with a 100 ms interval, send at most
// 600 / 100 + 2 notifications (without coalescing there would be one per
// commit, thousands), and at least one (the first commit's) plus one after
// the last commit.
TEST(CommitNotifierTest, CoalescesCommitsToOneNotificationPerInterval) {
  pqxx::connection listener(uri);
  NotificationCounter receiver(listener, "bank_events");
  const absl::Duration interval = absl::Milliseconds(100);
  eventstore::CommitNotifier notifier(uri, interval);
  std::atomic<int64_t> commits{0};
  const absl::Time start = absl::Now();
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      while (absl::Now() - start < absl::Milliseconds(600)) {
        notifier.Committed();
        commits.fetch_add(1);
        absl::SleepFor(absl::Microseconds(100));
      }
    });
  }
  for (auto& th : threads) th.join();
  const absl::Duration elapsed = absl::Now() - start;
  // The last commit's notification: wait for it to be sent and received.
  for (int i = 0; i < 100 && notifier.sent() < 2; ++i) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  const int64_t sent = notifier.sent();
  ASSERT_GT(commits.load(), 100);
  EXPECT_GE(sent, 2);
  EXPECT_LE(sent, elapsed / interval + 2) << commits.load() << " commits";
  for (int i = 0; i < 50 && receiver.count < sent; ++i) {
    listener.await_notification(0, 100000);
  }
  EXPECT_GE(receiver.count, sent);
}

// A command whose deadline passes on the server while its append is held
// up (here by a lock that blocks every insert into events) is not appended,
// neither then nor once the lock is gone: the server bounds the append's
// statement by the deadline, and appends still queued behind it are
// answered without being sent.
TEST_F(CommandServiceTest, ADeadlinePassingOnTheServerAppendsNothing) {
  const std::string a = Open(100);
  const int64_t events_before = Count("SELECT count(*) FROM events");
  pqxx::connection holder(uri);
  pqxx::work lock(holder);
  lock.exec("LOCK TABLE events IN SHARE MODE");
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&, i] {
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::milliseconds(800));
      v1::DepositRequest req;
      req.set_command_id("held-" + std::to_string(i));
      req.set_account_id(a);
      req.set_amount(1);
      v1::CommandResult res;
      if (stub().Deposit(&ctx, req, &res).ok()) ++ok;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), 0);
  // Held well past the deadlines, then released: anything still pending on
  // the server would commit now.
  absl::SleepFor(absl::Milliseconds(700));
  lock.abort();
  // A later command on the account lands, after everything sent before it.
  ASSERT_TRUE(Deposit(a, 10).ok());
  EXPECT_EQ(Count("SELECT count(*) FROM events"), events_before + 1);
  EXPECT_EQ(StoredBalance(a), 110);
  EXPECT_EQ(Count("SELECT count(*) FROM commands WHERE command_id LIKE "
                  "'held-%'"),
            0);
}

TEST_F(CommandServiceTest, SnapshotsAreTakenAndOldOnesIgnored) {
  command::Config snapshot_every_3 = CommandServer::TestConfig(uri);
  snapshot_every_3.snapshot_every = 3;
  server_ = std::make_unique<CommandServer>(snapshot_every_3);
  std::string id = Open(0);
  for (int i = 0; i < 9; ++i) ASSERT_TRUE(Deposit(id, 10).ok());
  EXPECT_EQ(Count("SELECT stream_version FROM snapshots WHERE stream_id = '" +
                  id + "'"),
            9);
  // A new instance (no cache) starts from the snapshot and reads on.
  server_ = std::make_unique<CommandServer>(snapshot_every_3);
  v1::CommandResult r;
  ASSERT_TRUE(Deposit(id, 1, &r).ok());
  EXPECT_EQ(r.version(), 11);
  // A snapshot of an unknown schema version, or one that lies, is not used.
  {
    pqxx::connection c(uri);
    pqxx::work tx(c);
    tx.exec(
        "UPDATE snapshots SET schema_version = 99, state = "
        "'{\"balance\":\"999999\",\"version\":\"9\"}' WHERE stream_id = '" +
        id + "'");
    tx.commit();
  }
  server_ = std::make_unique<CommandServer>(uri);
  EXPECT_EQ(Withdraw(id, 92).error_code(), StatusCode::FAILED_PRECONDITION);
  ASSERT_TRUE(Withdraw(id, 91).ok());
}

TEST_F(CommandServiceTest, ReplaysStreamsHoldingOldAndNewSchemaVersions) {
  std::string id = util::NewUuid();
  {
    pqxx::connection c(uri);
    pqxx::work tx(c);
    tx.exec_params(
        "INSERT INTO events (event_id, stream_id, stream_version, event_type, "
        "schema_version, data) VALUES ($1::uuid, $2::uuid, 1, 'AccountOpened', "
        "1, "
        "jsonb_build_object('account_id', $2::text, 'holder', 'Legacy Owner', "
        "'currency', 'EUR', 'initial_deposit', '70'))",
        util::NewUuid(), id);
    tx.commit();
  }
  v1::CommandResult r;
  ASSERT_TRUE(Deposit(id, 30, &r).ok());
  EXPECT_EQ(r.version(), 2);
  server_ = std::make_unique<CommandServer>(uri);
  EXPECT_EQ(Withdraw(id, 101).error_code(), StatusCode::FAILED_PRECONDITION);
  EXPECT_TRUE(Withdraw(id, 100).ok());
  EXPECT_EQ(Count("SELECT count(DISTINCT schema_version) FROM events WHERE "
                  "stream_id = '" +
                  id + "' AND event_type = 'AccountOpened'"),
            1);
}

// The commands that do not block for their commit: started on the caller's
// thread when the accounts are cached and free, else on the offload pool;
// settled on the committing thread when nothing is left to read, else on the
// pool (a conflict to decide again, a snapshot to save); and never left
// unanswered when that pool is full.
TEST_F(CommandServiceTest, AsyncCommandsWaitOnlyOnTheOffloadPool) {
  util::WorkerPool pool(2, 16);
  std::atomic<bool> refuse{false};
  std::atomic<int> offloaded{0};
  command::CommandHandler async(server_->batched,
                                [&](std::function<void()> work) {
                                  if (refuse) return false;
                                  ++offloaded;
                                  return pool.TrySubmit(std::move(work));
                                },
                                {.snapshot_every = 4});
  command::CommandHandler other(server_->batched,
                                [&](std::function<void()> work) {
                                  return pool.TrySubmit(std::move(work));
                                },
                                {.snapshot_every = 0});
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  // Runs one async command and waits for its single answer.
  auto answer_of = [&](auto start) {
    std::promise<absl::StatusOr<v1::CommandResult>> answer;
    std::atomic<int> calls{0};
    start([&](absl::StatusOr<v1::CommandResult> r) {
      ++calls;
      answer.set_value(std::move(r));
    });
    absl::StatusOr<v1::CommandResult> r = answer.get_future().get();
    EXPECT_EQ(calls.load(), 1);
    return r;
  };
  auto deposit = [&](const std::string& id, int64_t amount) {
    auto req = std::make_shared<v1::DepositRequest>();
    req->set_account_id(id);
    req->set_amount(amount);
    return answer_of(
        [&](auto done) { async.Deposit(req, "", deadline, std::move(done)); });
  };
  auto withdraw = [&](const std::string& id, int64_t amount) {
    auto req = std::make_shared<v1::WithdrawRequest>();
    req->set_account_id(id);
    req->set_amount(amount);
    return answer_of(
        [&](auto done) { async.Withdraw(req, "", deadline, std::move(done)); });
  };
  auto deposit_elsewhere = [&](const std::string& id) {
    auto req = std::make_shared<v1::DepositRequest>();
    req->set_account_id(id);
    req->set_amount(1000);
    ASSERT_TRUE(testing::AwaitAnswer<v1::CommandResult>([&](auto done) {
                  other.Deposit(req, "", deadline, std::move(done));
                }).ok());
  };
  auto version_of = [&](const std::string& table, const std::string& id) {
    return Count("SELECT coalesce(max(stream_version), 0) FROM " + table +
                 " WHERE stream_id = '" + id + "'");
  };
  const std::string id = Open(0);  // Version 1, through another instance.

  // Not cached: the command must read, and the pool is full.
  refuse = true;
  absl::StatusOr<v1::CommandResult> r = deposit(id, 1);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kResourceExhausted)
      << r.status();
  EXPECT_EQ(version_of("events", id), 1);

  // Version 2 reads on the pool; version 3 is cached: started here and
  // settled where it committed, with no work for the pool.
  refuse = false;
  ASSERT_TRUE(deposit(id, 1).ok());
  EXPECT_EQ(offloaded.load(), 1);
  r = deposit(id, 1);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->version(), 3);
  EXPECT_EQ(offloaded.load(), 1);

  // A refusal is confirmed on the stored stream, on the pool.
  r = withdraw(id, 3);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition)
      << r.status();
  EXPECT_EQ(offloaded.load(), 2);

  // Another instance moves the account (version 4): the cached state is
  // stale, the append conflicts, and the command is decided again on the
  // pool on the stored stream.
  deposit_elsewhere(id);
  r = deposit(id, 1);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->version(), 5);
  EXPECT_EQ(offloaded.load(), 3);
  EXPECT_EQ(StoredBalance(id), 1003);

  // The same conflict with the pool full: RESOURCE_EXHAUSTED, and nothing
  // written (a retry is safe).
  deposit_elsewhere(id);  // Version 6.
  refuse = true;
  r = deposit(id, 1);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kResourceExhausted)
      << r.status();
  EXPECT_EQ(StoredBalance(id), 2003);
  EXPECT_EQ(version_of("events", id), 6);

  // A snapshot is due at version 8: saved on the pool before the answer.
  refuse = false;
  ASSERT_TRUE(deposit(id, 1).ok());  // Version 7 (cache dropped: read).
  const int before = offloaded.load();
  r = deposit(id, 1);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->version(), 8);
  EXPECT_EQ(offloaded.load(), before + 1);
  EXPECT_EQ(version_of("snapshots", id), 8);

  // Due again at version 12 with the pool full: the committed command is
  // still answered OK, without the snapshot.
  for (int v = 9; v <= 11; ++v) ASSERT_TRUE(deposit(id, 1).ok());
  refuse = true;
  r = deposit(id, 1);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->version(), 12);
  EXPECT_EQ(version_of("snapshots", id), 8);
  EXPECT_EQ(StoredBalance(id), 2009);
}

TEST_F(CommandServiceTest, UnreachableDatabaseIsUnavailable) {
  int port = testing::PickFreePort();
  CommandServer dead("postgresql://postgres@127.0.0.1:" + std::to_string(port) +
                     "/bank_events?connect_timeout=2");
  grpc::ClientContext ctx;
  v1::DepositRequest req;
  req.set_account_id(util::NewUuid());
  req.set_amount(1);
  v1::CommandResult res;
  grpc::Status s = dead.stub->Deposit(&ctx, req, &res);
  EXPECT_EQ(s.error_code(), StatusCode::UNAVAILABLE) << s.error_message();
  EXPECT_FALSE(s.error_message().empty());
}

}  // namespace
}  // namespace bank

int main(int argc, char** argv) {
  return bank::testing::RunAllTestsWith(
      argc, argv,
      new bank::testing::PgEnvironment(&bank::cluster, bank::Prepare));
}

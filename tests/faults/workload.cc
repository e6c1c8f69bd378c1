#include "tests/faults/workload.h"

#include <grpcpp/grpcpp.h>

#include <map>
#include <pqxx/pqxx>
#include <random>
#include <tuple>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/util/uuid.h"

namespace bank::faults {
namespace {

bool Definitive(grpc::StatusCode c) {
  switch (c) {
    case grpc::StatusCode::OK:
    case grpc::StatusCode::INVALID_ARGUMENT:
    case grpc::StatusCode::NOT_FOUND:
    case grpc::StatusCode::ALREADY_EXISTS:
    case grpc::StatusCode::FAILED_PRECONDITION:
    case grpc::StatusCode::ABORTED:
      return true;
    default:
      return false;  // UNAVAILABLE, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, ...
  }
}

std::shared_ptr<v1::CommandService::Stub> MakeStub(int port) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 50);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 50);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 250);
  return v1::CommandService::NewStub(
      grpc::CreateCustomChannel("127.0.0.1:" + std::to_string(port),
                                grpc::InsecureChannelCredentials(), args));
}

}  // namespace

Unavailable ClassifyUnavailable(const std::string& message) {
  if (absl::StartsWith(message, "not applied: ")) {
    return Unavailable::kNotApplied;
  }
  if (absl::StartsWith(message, "outcome unknown: ")) {
    return Unavailable::kOutcomeUnknown;
  }
  return Unavailable::kTransport;
}

Workload::Workload(int command_port, Options options) : options_(options) {
  absl::MutexLock lock(&mu_);
  stub_ = MakeStub(command_port);
  if (options_.query_port != 0) {
    queries_ = v1::QueryService::NewStub(
        grpc::CreateChannel("127.0.0.1:" + std::to_string(options_.query_port),
                            grpc::InsecureChannelCredentials()));
  }
}

void Workload::ReadBack(const std::string& account, int64_t version) {
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(2)));
  v1::GetBalanceRequest req;
  req.set_account_id(account);
  req.set_min_version(version);
  v1::AccountBalance b;
  grpc::Status s = queries_->GetBalance(&ctx, req, &b);
  if (s.ok()) {
    ++reads_;
    if (b.version() < version) ++stale_reads_;
    return;
  }
  switch (s.error_code()) {
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::DEADLINE_EXCEEDED:
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
    case grpc::StatusCode::CANCELLED:
      return;  // What a fault explains: the read model is away or behind.
    default:
      ++failed_reads_;
  }
}

Workload::~Workload() { Stop(); }

void Workload::SetCommandPort(int port) {
  absl::MutexLock lock(&mu_);
  stub_ = MakeStub(port);
}

std::shared_ptr<v1::CommandService::Stub> Workload::stub() const {
  absl::MutexLock lock(&mu_);
  return stub_;
}

void Workload::OpenAccounts() {
  for (int i = 0; i < options_.accounts; ++i) {
    v1::OpenAccountRequest req;
    req.set_command_id(util::NewUuid());
    req.set_owner(absl::StrCat("Client ", i));
    req.set_currency("EUR");
    req.set_initial_deposit(options_.initial);
    for (int attempt = 0; attempt < 100; ++attempt) {
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(5));
      v1::CommandResult res;
      if (stub()->OpenAccount(&ctx, req, &res).ok()) {
        accounts_.push_back(res.account_id());
        break;
      }
      absl::SleepFor(absl::Milliseconds(100));
    }
  }
}

grpc::Status Workload::Send(Op& op, absl::Duration timeout, int64_t* version) {
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  auto s = stub();
  switch (op.kind) {
    case Op::kDeposit: {
      v1::DepositRequest req;
      req.set_command_id(op.command_id);
      req.set_account_id(op.account);
      req.set_amount(op.amount);
      v1::CommandResult res;
      grpc::Status st = s->Deposit(&ctx, req, &res);
      if (version) *version = res.version();
      return st;
    }
    case Op::kWithdraw: {
      v1::WithdrawRequest req;
      req.set_command_id(op.command_id);
      req.set_account_id(op.account);
      req.set_amount(op.amount);
      v1::CommandResult res;
      grpc::Status st = s->Withdraw(&ctx, req, &res);
      if (version) *version = res.version();
      return st;
    }
    case Op::kTransfer: {
      v1::TransferRequest req;
      req.set_command_id(op.command_id);
      req.set_from_account_id(op.account);
      req.set_to_account_id(op.to);
      req.set_amount(op.amount);
      v1::TransferResult res;
      grpc::Status st = s->Transfer(&ctx, req, &res);
      if (version) *version = res.from().version();
      return st;
    }
  }
  return grpc::Status(grpc::StatusCode::INTERNAL, "unknown op");
}

void Workload::Client(int index) {
  std::mt19937 rng(1000 + index);
  const int n = static_cast<int>(accounts_.size());
  while (running_.load()) {
    Op op;
    op.command_id = util::NewUuid();
    int r = rng() % 10;
    // A third of the traffic goes to two hot accounts.
    auto pick = [&] {
      return accounts_[rng() % 3 == 0 ? rng() % 2 : rng() % n];
    };
    op.account = pick();
    op.amount = 1 + rng() % 500;
    if (r < 4) {
      op.kind = Op::kDeposit;
    } else if (r < 7) {
      op.kind = Op::kWithdraw;
    } else {
      op.kind = Op::kTransfer;
      do {
        op.to = pick();
      } while (op.to == op.account);
    }
    ++sent_;
    int64_t version = 0;
    grpc::Status st = Send(op, options_.call_timeout, &version);
    op.code = st.error_code();
    op.unknown = !Definitive(op.code);
    if (op.code == grpc::StatusCode::UNAVAILABLE) {
      const Unavailable kind = ClassifyUnavailable(st.error_message());
      ++unavailable_[static_cast<int>(kind)];
      op.not_applied = kind == Unavailable::kNotApplied;
      if (op.not_applied) op.unknown = false;
    }
    if (op.code == grpc::StatusCode::INTERNAL) ++internal_answers_;
    {
      absl::MutexLock lock(&mu_);
      if (st.ok()) {
        absl::Time now = absl::Now();
        longest_gap_ = std::max(longest_gap_, now - last_ack_);
        last_ack_ = now;
      }
      ops_.push_back(op);
      ++first_codes_[op.code];
    }
    if (st.ok()) ++acked_;
    if (st.ok() && queries_ != nullptr && rng() % 4 == 0) {
      ReadBack(op.account, version);
    }
    absl::SleepFor(options_.pause);
  }
}

void Workload::Start() {
  {
    absl::MutexLock lock(&mu_);
    last_ack_ = absl::Now();
  }
  running_ = true;
  for (int i = 0; i < options_.clients; ++i) {
    threads_.emplace_back([this, i] { Client(i); });
  }
}

void Workload::Stop() {
  if (!running_.exchange(false)) return;
  for (auto& t : threads_) t.join();
  threads_.clear();
  absl::MutexLock lock(&mu_);
  longest_gap_ = std::max(longest_gap_, absl::Now() - last_ack_);
}

int Workload::ResolveUnknown(absl::Duration timeout) {
  absl::Time end = absl::Now() + timeout;
  std::vector<Op> ops;
  {
    absl::MutexLock lock(&mu_);
    ops.swap(ops_);
  }
  int left = 0;
  for (Op& op : ops) {
    while (op.unknown && absl::Now() < end) {
      grpc::Status st = Send(op, absl::Seconds(3));
      op.code = st.error_code();
      // "Not applied" says only that this send wrote nothing; an earlier
      // one may have: send again until the answer is definitive.
      op.unknown = !Definitive(op.code);
      if (op.code == grpc::StatusCode::INTERNAL) {
        ++internal_answers_;
        break;  // A failure, not an outcome to wait for.
      }
      if (op.unknown) absl::SleepFor(absl::Milliseconds(50));
    }
    if (op.unknown) ++left;
  }
  absl::MutexLock lock(&mu_);
  ops_.swap(ops);
  return left;
}

std::vector<Op> Workload::ops() const {
  absl::MutexLock lock(&mu_);
  return ops_;
}

std::map<grpc::StatusCode, int64_t> Workload::first_codes() const {
  absl::MutexLock lock(&mu_);
  return first_codes_;
}

absl::Duration Workload::longest_gap() const {
  absl::MutexLock lock(&mu_);
  return longest_gap_;
}

}  // namespace bank::faults

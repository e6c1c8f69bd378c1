#include "command-service/command_handler.h"

#include <algorithm>
#include <random>
#include <utility>

#include "absl/hash/hash.h"
#include "absl/strings/str_cat.h"
#include "common/domain/event_codec.h"
#include "common/log/log.h"
#include "common/util/text.h"
#include "nlohmann/json.hpp"

namespace bank::command {
namespace {

constexpr int kReadBatch = 500;

std::string Encode(const google::protobuf::Message& m) {
  std::string out;
  m.SerializeToString(&out);  // No maps in these messages: deterministic.
  return out;
}

void SleepWithJitter(int attempt, absl::Time deadline) {
  thread_local std::mt19937 gen{std::random_device{}()};
  int cap_us = std::min(50000, 500 << std::min(attempt, 7));
  std::uniform_int_distribution<int> dist(0, cap_us);
  absl::Duration d = absl::Microseconds(dist(gen));
  if (absl::Now() + d < deadline) absl::SleepFor(d);
}

v1::CommandResult ToResult(const eventstore::StreamResult& r, bool replayed) {
  v1::CommandResult out;
  out.set_account_id(r.stream_id);
  out.set_version(r.version);
  out.set_position(r.position);
  out.set_replayed(replayed);
  return out;
}

}  // namespace

CommandHandler::CommandHandler(eventstore::EventStore& store, Options options)
    : store_(store),
      options_(std::move(options)),
      cache_(options_.cache_capacity) {
  metrics::Registry* m = options_.metrics;
  if (m == nullptr) {
    own_metrics_ = std::make_unique<metrics::Registry>();
    m = own_metrics_.get();
  }
  conflicts_ = &m->GetCounter(
      "bank_append_conflicts_total",
      "Appends refused because another writer got to the stream first.");
  retries_ = &m->GetCounter("bank_command_retries_total",
                            "Commands decided again after a conflict.");
  replays_ = &m->GetCounter(
      "bank_idempotent_replays_total",
      "Commands answered from the stored result of the same command_id.");
  m->AddCallbackGauge("bank_aggregate_cache_entries",
                      "Accounts held in the aggregate cache.",
                      [this] { return static_cast<double>(cache_.size()); });
}

std::string CommandHandler::Metadata(const Command& command) const {
  nlohmann::json m = {{"instance", options_.instance_id}};
  if (!command.command_id.empty()) {
    m["command_id"] = command.command_id;
    m["causation_id"] = command.command_id;
  }
  if (!command.correlation_id.empty() &&
      util::Utf8Length(command.correlation_id).has_value() &&
      !util::HasControlCharacter(command.correlation_id)) {
    m["correlation_id"] = command.correlation_id;
  }
  return m.dump();
}

absl::StatusOr<domain::BankAccount> CommandHandler::Load(const std::string& id,
                                                         bool trust_cache,
                                                         bool* from_cache,
                                                         absl::Time deadline) {
  *from_cache = false;
  std::optional<domain::AccountState> state = cache_.Get(id);
  if (state.has_value() && trust_cache) {
    *from_cache = true;
    return domain::BankAccount(*std::move(state));
  }
  if (!state.has_value()) {
    absl::StatusOr<std::optional<eventstore::Snapshot>> snap =
        store_.LoadSnapshot(id, deadline);
    if (!snap.ok()) return snap.status();
    if (snap->has_value()) {
      absl::StatusOr<domain::AccountState> decoded =
          domain::DecodeSnapshot((*snap)->schema_version, (*snap)->state);
      if (decoded.ok() && decoded->id == id &&
          decoded->version == (*snap)->version) {
        state = *std::move(decoded);
      } else if (!decoded.ok()) {
        // An old or unreadable snapshot is ignored, never misread.
        spdlog::debug("ignoring snapshot of {}: {}", id,
                      decoded.status().message());
      }
    }
  }
  domain::BankAccount account = state.has_value()
                                    ? domain::BankAccount(*std::move(state))
                                    : domain::BankAccount(id);
  while (true) {
    absl::StatusOr<std::vector<eventstore::RecordedEvent>> events =
        store_.ReadStream(id, account.state().version, kReadBatch, deadline);
    if (!events.ok()) return events.status();
    for (const eventstore::RecordedEvent& e : *events) {
      if (e.stream_version != account.state().version + 1) {
        return absl::InternalError(
            absl::StrCat("stream ", id, " skips from version ",
                         account.state().version, " to ", e.stream_version));
      }
      absl::StatusOr<domain::AccountEvent> decoded =
          domain::DecodeEvent(e.type, e.schema_version, e.data);
      if (!decoded.ok()) {
        return absl::InternalError(
            absl::StrCat("event at position ", e.position, " of account ", id,
                         " cannot be read: ", decoded.status().message()));
      }
      account.Apply(*decoded);
    }
    if (static_cast<int>(events->size()) < kReadBatch) break;
  }
  if (account.state().version > 0) cache_.Put(account.state());
  return account;
}

absl::StatusOr<std::optional<CommandHandler::Outcome>>
CommandHandler::FindReplay(const Command& command, absl::Time deadline) {
  if (command.command_id.empty()) return std::optional<Outcome>();
  absl::StatusOr<std::optional<eventstore::StoredCommand>> stored =
      store_.FindCommand(command.command_id, deadline);
  if (!stored.ok()) return stored.status();
  if (!stored->has_value()) return std::optional<Outcome>();
  if ((*stored)->request_type != command.request_type ||
      (*stored)->request != command.request) {
    return absl::InvalidArgumentError(
        absl::StrCat("command_id ", command.command_id,
                     " was already used for a different request (",
                     (*stored)->request_type, "); use a new command_id"));
  }
  replays_->Inc();
  return std::optional<Outcome>(Outcome{(*stored)->results, true});
}

void CommandHandler::MaybeSnapshot(const domain::AccountState& state,
                                   int64_t before, absl::Time deadline) {
  const int n = options_.snapshot_every;
  if (n <= 0 || state.version / n == before / n) return;
  eventstore::Snapshot snap{state.id, state.version,
                            domain::kSnapshotSchemaVersion,
                            domain::EncodeSnapshot(state)};
  absl::Status s = store_.SaveSnapshot(snap, deadline);
  if (!s.ok()) spdlog::warn("snapshot of {} failed: {}", state.id, s.message());
}

absl::StatusOr<CommandHandler::Outcome> CommandHandler::Execute(
    const Plan& plan, absl::Time deadline) {
  return Resolve(plan.command, Run(plan, deadline), deadline);
}

bool CommandHandler::IsRefusal(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kNotFound:
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kAborted:
      return true;
    default:
      return false;
  }
}

absl::StatusOr<CommandHandler::Outcome> CommandHandler::Resolve(
    const Command& command, absl::StatusOr<Outcome> out, absl::Time deadline) {
  // Idempotency costs no round trip on the common path: the append itself
  // refuses a recorded command_id (the commands table's primary key), and
  // only then, or when the aggregate refuses, is the stored result looked
  // up: a repeated command is answered with its first outcome, never with
  // a refusal computed on the state it already changed.
  if (!out.ok()) {
    // A refusal: maybe of a command that took effect already.
    if (!IsRefusal(out.status().code())) return out;
    absl::StatusOr<std::optional<Outcome>> replay =
        FindReplay(command, deadline);
    if (!replay.ok()) return replay.status();
    if (replay->has_value()) return **replay;
    return out;
  }
  if (!out->command_raced) return out;
  // The command_id is recorded: by an earlier request or a concurrent one.
  absl::StatusOr<std::optional<Outcome>> replay = FindReplay(command, deadline);
  if (!replay.ok()) return replay.status();
  if (!replay->has_value()) {
    return absl::InternalError("command recorded but not found");
  }
  return **replay;
}

std::vector<size_t> CommandHandler::StripesOf(
    const std::vector<std::string>& account_ids) const {
  std::vector<size_t> stripes;
  for (const std::string& id : account_ids) {
    stripes.push_back(absl::Hash<std::string>()(id) % kStripes);
  }
  std::sort(stripes.begin(), stripes.end());
  stripes.erase(std::unique(stripes.begin(), stripes.end()), stripes.end());
  return stripes;
}

std::vector<int64_t> CommandHandler::StartFlight(
    const std::vector<std::string>& account_ids,
    const std::vector<eventstore::StreamAppend>& appends) {
  absl::MutexLock lock(&flight_mu_);
  std::vector<int64_t> seqs;
  for (const std::string& id : account_ids) {
    Flight& f = flights_[id];
    seqs.push_back(++f.started);
    for (const eventstore::StreamAppend& a : appends) {
      if (a.stream_id != id || a.events.empty()) continue;
      f.tip = Tip{a.expected_version + static_cast<int64_t>(a.events.size()),
                  a.events.back().event_id};
    }
  }
  return seqs;
}

std::vector<std::optional<CommandHandler::Tip>> CommandHandler::FlightTips(
    const std::vector<std::string>& account_ids) {
  absl::MutexLock lock(&flight_mu_);
  std::vector<std::optional<Tip>> tips;
  for (const std::string& id : account_ids) {
    auto it = flights_.find(id);
    tips.push_back(it == flights_.end() ? std::nullopt : it->second.tip);
  }
  return tips;
}

void CommandHandler::EndFlight(const std::vector<std::string>& account_ids,
                               const std::vector<int64_t>& seqs) {
  absl::MutexLock lock(&flight_mu_);
  for (size_t i = 0; i < account_ids.size(); ++i) {
    auto it = flights_.find(account_ids[i]);
    if (it == flights_.end()) continue;
    it->second.settled = std::max(it->second.settled, seqs[i]);
    if (it->second.settled >= it->second.started) flights_.erase(it);
  }
}

bool CommandHandler::InFlight(const std::vector<std::string>& account_ids) {
  absl::MutexLock lock(&flight_mu_);
  for (const std::string& id : account_ids) {
    if (flights_.contains(id)) return true;
  }
  return false;
}

bool CommandHandler::AwaitLanded(const std::vector<std::string>& account_ids,
                                 absl::Time deadline) {
  struct Args {
    CommandHandler* self;
    const std::vector<std::string>* ids;
  } args{this, &account_ids};
  absl::MutexLock lock(&flight_mu_);
  return flight_mu_.AwaitWithDeadline(
      absl::Condition(
          +[](Args* a) ABSL_EXCLUSIVE_LOCKS_REQUIRED(a->self->flight_mu_) {
            for (const std::string& id : *a->ids) {
              if (a->self->flights_.contains(id)) return false;
            }
            return true;
          },
          &args),
      deadline);
}

eventstore::CommandRecord CommandHandler::RecordOf(const Command& command) {
  return eventstore::CommandRecord{command.command_id, command.request_type,
                                   command.request};
}

absl::Status CommandHandler::Start(const Plan& plan,
                                   const eventstore::CommandRecord& record,
                                   const std::string& metadata,
                                   bool& trust_cache, absl::Time deadline,
                                   Attempt& a, bool* would_block) {
  const std::vector<std::string>& account_ids = plan.account_ids;
  const std::optional<int64_t>& expected_version = plan.expected_version;
  const std::vector<size_t> stripes = StripesOf(account_ids);
  const absl::Status blocks = absl::UnavailableError("would block");
  // Commands on one account decide one at a time, in this order, each on the
  // state the previous one left, committed or still in flight. The lock
  // covers deciding and queueing the append, not its commit: the appends of
  // a busy account share batches (pipelining).
  StripeLock lock(*this, stripes, /*try_only=*/would_block != nullptr);
  if (!lock.held()) {
    *would_block = true;
    return blocks;
  }
  bool any_cached = false;
  auto load_all = [&]() -> absl::Status {
    a.accounts.clear();
    any_cached = false;
    for (const std::string& id : account_ids) {
      if (would_block != nullptr) {
        // From the cache only (an entry may have been evicted meanwhile).
        std::optional<domain::AccountState> state = cache_.Get(id);
        if (!state.has_value()) {
          *would_block = true;
          return blocks;
        }
        any_cached = true;
        a.accounts.emplace_back(*std::move(state));
        continue;
      }
      bool cached = false;
      absl::StatusOr<domain::BankAccount> account =
          Load(id, trust_cache, &cached, deadline);
      if (!account.ok()) return account.status();
      any_cached = any_cached || cached;
      a.accounts.push_back(*std::move(account));
    }
    return absl::OkStatus();
  };
  auto check_and_decide = [&]() -> absl::Status {
    if (expected_version.has_value() &&
        a.accounts[0].state().version != *expected_version) {
      if (a.accounts[0].state().version == 0) {
        return absl::NotFoundError(
            absl::StrCat("account ", account_ids[0], " does not exist"));
      }
      return absl::AbortedError(
          absl::StrCat("expected_version ", *expected_version, " but account ",
                       account_ids[0], " is at version ",
                       a.accounts[0].state().version, "; reload and retry"));
    }
    return plan.decide(a.accounts);
  };
  bool all_cached = true;
  for (const std::string& id : account_ids) {
    all_cached = all_cached && cache_.Get(id).has_value();
  }
  if (would_block != nullptr && (!all_cached || !trust_cache)) {
    *would_block = true;  // The database is read.
    return blocks;
  }
  if (!all_cached && InFlight(account_ids) &&
      !AwaitLanded(account_ids, deadline)) {
    // Without the state an append in flight leaves (evicted, or no cache),
    // wait for it to land instead of deciding on an older one.
    return absl::DeadlineExceededError(
        "deadline passed waiting for earlier commands on the account");
  }
  // Read before the states: a failed append drops its accounts from the
  // cache before it leaves the flight, so a state read from the cache
  // after this is either committed or the tip recorded here (or a later
  // state of ours, which this thread would be deciding on: none, the
  // stripes are held).
  std::vector<std::optional<Tip>> tips = FlightTips(account_ids);
  if (absl::Status s = load_all(); !s.ok()) return s;
  absl::Status decided = check_and_decide();
  if (!decided.ok() && would_block != nullptr) {
    *would_block = true;  // Confirmed on the stored stream, below.
    return blocks;
  }
  if (!decided.ok() && (any_cached || InFlight(account_ids))) {
    // A refusal must rest on committed state: let the appends in flight on
    // these accounts land (nobody can queue more while the stripes are
    // held), then decide again on the stream as stored, which may also be
    // ahead of a stale cache (another instance's writes).
    if (!AwaitLanded(account_ids, deadline)) {
      return absl::DeadlineExceededError(
          "deadline passed waiting for earlier commands on the account");
    }
    trust_cache = false;
    tips = FlightTips(account_ids);  // None: all landed, the stripes held.
    if (absl::Status s = load_all(); !s.ok()) return s;
    decided = check_and_decide();
  }
  if (!decided.ok()) return decided;

  for (const domain::BankAccount& account : a.accounts) {
    if (account.pending().empty()) continue;
    eventstore::StreamAppend sa;
    sa.stream_id = account.state().id;
    sa.expected_version = account.committed_version();
    // Decided on an append still in flight: follow that very event, so that
    // if another writer takes its version first, this one conflicts too.
    for (size_t i = 0; i < account_ids.size(); ++i) {
      if (account_ids[i] == sa.stream_id && tips[i].has_value() &&
          tips[i]->version == sa.expected_version) {
        sa.after_event_id = tips[i]->event_id;
      }
    }
    for (const domain::AccountEvent& e : account.pending()) {
      domain::EncodedEvent enc = domain::EncodeEvent(e);
      sa.events.push_back(eventstore::NewEvent{
          util::NewUuid(), enc.type, enc.schema_version, enc.json, metadata});
    }
    a.ordered.push_back(std::move(sa));
  }
  // A fixed order of rows keeps two opposite transfers from deadlocking on
  // each other's unique-index entries.
  std::sort(
      a.ordered.begin(), a.ordered.end(),
      [](const auto& x, const auto& y) { return x.stream_id < y.stream_id; });
  a.pending = store_.StartAppend(
      a.ordered, plan.command.command_id.empty() ? nullptr : &record, deadline);
  a.flight = StartFlight(account_ids, a.ordered);
  // The next command on these accounts decides on this state; if this append
  // fails, so does any append built on it (the store's gap and version
  // checks), and the cache entry is dropped in Settle.
  for (const domain::BankAccount& account : a.accounts) {
    cache_.Put(account.state());
  }
  return absl::OkStatus();
}

absl::StatusOr<CommandHandler::Outcome> CommandHandler::Settle(
    const Plan& plan, Attempt& a,
    absl::StatusOr<std::vector<eventstore::StreamResult>> appended,
    bool* retry) {
  *retry = false;
  if (!appended.ok()) {
    for (const std::string& id : plan.account_ids) cache_.Erase(id);
  }
  EndFlight(plan.account_ids, a.flight);
  if (appended.ok()) {
    Outcome out;
    for (const domain::BankAccount& account : a.accounts) {
      for (const auto& r : *appended) {
        if (r.stream_id == account.state().id) out.results.push_back(r);
      }
    }
    return out;
  }
  if (appended.status().code() == absl::StatusCode::kAlreadyExists) {
    Outcome raced;
    raced.command_raced = true;
    return raced;
  }
  if (appended.status().code() != absl::StatusCode::kAborted) {
    return appended.status();
  }
  conflicts_->Inc();
  if (plan.expected_version.has_value()) {
    return absl::AbortedError(absl::StrCat(
        "account ", plan.account_ids[0], " changed after version ",
        *plan.expected_version, " while this command ran; reload and retry"));
  }
  *retry = true;
  return appended.status();
}

bool CommandHandler::SnapshotDue(const Attempt& a) const {
  const int n = options_.snapshot_every;
  if (n <= 0) return false;
  for (const domain::BankAccount& account : a.accounts) {
    if (account.state().version / n != account.committed_version() / n) {
      return true;
    }
  }
  return false;
}

void CommandHandler::Snapshot(const Attempt& a, absl::Time deadline) {
  for (const domain::BankAccount& account : a.accounts) {
    MaybeSnapshot(account.state(), account.committed_version(), deadline);
  }
}

absl::StatusOr<CommandHandler::Outcome> CommandHandler::Run(
    const Plan& plan, absl::Time deadline) {
  const eventstore::CommandRecord record = RecordOf(plan.command);
  const std::string metadata = Metadata(plan.command);
  // First try trusts the cache; after a conflict, read on from it.
  bool trust_cache = true;
  for (int attempt = 1; attempt <= options_.max_attempts; ++attempt) {
    Attempt a;
    if (absl::Status s =
            Start(plan, record, metadata, trust_cache, deadline, a);
        !s.ok()) {
      return s;
    }
    bool retry = false;
    absl::StatusOr<Outcome> out = Settle(plan, a, a.pending->Wait(), &retry);
    if (!retry) {
      if (out.ok() && !out->command_raced) Snapshot(a, deadline);
      return out;
    }
    spdlog::debug("append conflict on attempt {} for command {}", attempt,
                  plan.command.command_id);
    trust_cache = false;
    SleepWithJitter(attempt, deadline);
    if (absl::Now() >= deadline) break;
    if (attempt < options_.max_attempts) retries_->Inc();
  }
  return absl::AbortedError(absl::StrCat(
      "gave up after ", options_.max_attempts,
      " attempts: other writers kept changing the account; retry"));
}

// A command answered without blocking on its commit: the state Start and
// Settle share, kept alive by the append's callback.
struct CommandHandler::AsyncCall {
  Plan plan;
  eventstore::CommandRecord record;
  std::string metadata;
  absl::Time deadline;
  Done<Outcome> done;
  Attempt attempt;
};

void CommandHandler::ExecuteAsync(Plan plan, absl::Time deadline,
                                  Done<Outcome> done) {
  if (!options_.offload) {
    done(Execute(plan, deadline));
    return;
  }
  auto call = std::make_shared<AsyncCall>();
  call->plan = std::move(plan);
  call->record = RecordOf(call->plan.command);
  call->metadata = Metadata(call->plan.command);
  call->deadline = deadline;
  call->done = std::move(done);
  // The common case costs no thread handoff: every account cached, no other
  // command holding them, and the aggregate agrees. Else the command starts
  // over on the pool, where it may wait.
  bool trust_cache = true;
  bool would_block = false;
  absl::Status started =
      Start(call->plan, call->record, call->metadata, trust_cache, deadline,
            call->attempt, &would_block);
  if (!started.ok()) {
    call->attempt = Attempt();
    if (!options_.offload([this, call] { StartBlocking(call); })) {
      call->done(absl::ResourceExhaustedError(
          "command service overloaded (work queue full); retry with "
          "backoff"));
    }
    return;
  }
  AnswerOnCommit(call);
}

void CommandHandler::StartBlocking(std::shared_ptr<AsyncCall> call) {
  bool trust_cache = true;
  if (absl::Status s = Start(call->plan, call->record, call->metadata,
                             trust_cache, call->deadline, call->attempt);
      !s.ok()) {
    call->done(Resolve(call->plan.command, s, call->deadline));
    return;
  }
  AnswerOnCommit(call);
}

void CommandHandler::AnswerOnCommit(const std::shared_ptr<AsyncCall>& call) {
  call->attempt.pending->Then(
      [this, call](absl::StatusOr<std::vector<eventstore::StreamResult>> r) {
        Settled(call, std::move(r));
      });
}

void CommandHandler::Settled(
    const std::shared_ptr<AsyncCall>& call,
    absl::StatusOr<std::vector<eventstore::StreamResult>> appended) {
  bool retry = false;
  absl::StatusOr<Outcome> out =
      Settle(call->plan, call->attempt, std::move(appended), &retry);
  if (!retry && (out.ok() ? !out->command_raced && !SnapshotDue(call->attempt)
                          : !IsRefusal(out.status().code()))) {
    call->done(std::move(out));  // The common case: nothing left to read.
    return;
  }
  // What is left reads or writes the database: never on the thread that
  // commits appends (it may be the one answering this call).
  const bool only_snapshot = !retry && out.ok() && !out->command_raced;
  std::optional<Outcome> committed;
  if (only_snapshot) committed = *out;
  const bool queued =
      options_.offload([this, call, retry, out = std::move(out)]() mutable {
        if (retry) {
          // Decide again on the stored stream (Settle dropped the cache entry).
          retries_->Inc();
          SleepWithJitter(1, call->deadline);
          call->done(Execute(call->plan, call->deadline));
          return;
        }
        if (out.ok() && !out->command_raced)
          Snapshot(call->attempt, call->deadline);
        call->done(Resolve(call->plan.command, std::move(out), call->deadline));
      });
  if (queued) return;
  if (only_snapshot) {
    // The command committed; its snapshot waits for a later command.
    call->done(*std::move(committed));
    return;
  }
  // Nothing of it was written (a conflict), or it was recorded already by a
  // concurrent request: a retry with the same command_id is safe.
  call->done(absl::ResourceExhaustedError(
      "command service overloaded (no worker free to finish the command); "
      "retry with backoff"));
}

v1::CommandResult CommandHandler::SingleResult(const Outcome& out) {
  return ToResult(out.results.at(0), out.replayed);
}

absl::StatusOr<v1::CommandResult> CommandHandler::ExecuteSingle(
    absl::StatusOr<Plan> plan, absl::Time deadline) {
  if (!plan.ok()) return plan.status();
  absl::StatusOr<Outcome> out = Execute(*plan, deadline);
  if (!out.ok()) return out.status();
  return SingleResult(*out);
}

void CommandHandler::ExecuteSingleAsync(absl::StatusOr<Plan> plan,
                                        absl::Time deadline,
                                        Done<v1::CommandResult> done) {
  if (!plan.ok()) {
    done(plan.status());
    return;
  }
  ExecuteAsync(*std::move(plan), deadline,
               [done = std::move(done)](absl::StatusOr<Outcome> out) {
                 if (!out.ok()) {
                   done(out.status());
                 } else {
                   done(SingleResult(*out));
                 }
               });
}

absl::StatusOr<CommandHandler::Plan> CommandHandler::PlanOpenAccount(
    std::shared_ptr<const v1::OpenAccountRequest> req,
    const std::string& correlation_id) {
  if (absl::Status s = ValidateRequest(*req); !s.ok()) return s;
  const std::string id = req->account_id().empty()
                             ? util::NewUuid()
                             : util::CanonicalUuid(req->account_id());
  Plan plan{{req->command_id(), "OpenAccount", Encode(*req), correlation_id},
            {id},
            std::nullopt,
            nullptr};
  plan.decide = [req](std::vector<domain::BankAccount>& a) {
    return a[0].Open(req->owner(), req->currency(), req->initial_deposit());
  };
  return plan;
}

template <typename Req>
absl::StatusOr<CommandHandler::Plan> CommandHandler::PlanOnAccount(
    const std::shared_ptr<const Req>& req, const char* type,
    const std::string& correlation_id, Decide decide) {
  if (absl::Status s = ValidateRequest(*req); !s.ok()) return s;
  Plan plan{{req->command_id(), type, Encode(*req), correlation_id},
            {util::CanonicalUuid(req->account_id())},
            std::nullopt,
            std::move(decide)};
  if (req->has_expected_version()) {
    plan.expected_version = req->expected_version();
  }
  return plan;
}

absl::StatusOr<CommandHandler::Plan> CommandHandler::PlanDeposit(
    std::shared_ptr<const v1::DepositRequest> req,
    const std::string& correlation_id) {
  return PlanOnAccount(req, "Deposit", correlation_id,
                       [req](std::vector<domain::BankAccount>& a) {
                         return a[0].Deposit(req->amount());
                       });
}

absl::StatusOr<CommandHandler::Plan> CommandHandler::PlanWithdraw(
    std::shared_ptr<const v1::WithdrawRequest> req,
    const std::string& correlation_id) {
  return PlanOnAccount(req, "Withdraw", correlation_id,
                       [req](std::vector<domain::BankAccount>& a) {
                         return a[0].Withdraw(req->amount());
                       });
}

absl::StatusOr<CommandHandler::Plan> CommandHandler::PlanCloseAccount(
    std::shared_ptr<const v1::CloseAccountRequest> req,
    const std::string& correlation_id) {
  return PlanOnAccount(
      req, "CloseAccount", correlation_id,
      [](std::vector<domain::BankAccount>& a) { return a[0].Close(); });
}

absl::StatusOr<CommandHandler::Plan> CommandHandler::PlanTransfer(
    std::shared_ptr<const v1::TransferRequest> req,
    const std::string& correlation_id) {
  if (absl::Status s = ValidateRequest(*req); !s.ok()) return s;
  Plan plan{{req->command_id(), "Transfer", Encode(*req), correlation_id},
            {util::CanonicalUuid(req->from_account_id()),
             util::CanonicalUuid(req->to_account_id())},
            std::nullopt,
            nullptr};
  plan.decide = [req, transfer_id = util::NewUuid()](
                    std::vector<domain::BankAccount>& a) {
    return domain::Transfer(a[0], a[1], transfer_id, req->amount());
  };
  return plan;
}

v1::TransferResult CommandHandler::TransferResultOf(
    const Outcome& out, const std::vector<std::string>& account_ids) {
  v1::TransferResult result;
  for (const eventstore::StreamResult& r : out.results) {
    if (r.stream_id == account_ids[0]) {
      *result.mutable_from() = ToResult(r, out.replayed);
    }
    if (r.stream_id == account_ids[1]) {
      *result.mutable_to() = ToResult(r, out.replayed);
    }
  }
  return result;
}

absl::StatusOr<v1::CommandResult> CommandHandler::OpenAccount(
    const v1::OpenAccountRequest& req, const std::string& correlation_id,
    absl::Time deadline) {
  return ExecuteSingle(
      PlanOpenAccount(std::make_shared<const v1::OpenAccountRequest>(req),
                      correlation_id),
      deadline);
}

absl::StatusOr<v1::CommandResult> CommandHandler::Deposit(
    const v1::DepositRequest& req, const std::string& correlation_id,
    absl::Time deadline) {
  return ExecuteSingle(
      PlanDeposit(std::make_shared<const v1::DepositRequest>(req),
                  correlation_id),
      deadline);
}

absl::StatusOr<v1::CommandResult> CommandHandler::Withdraw(
    const v1::WithdrawRequest& req, const std::string& correlation_id,
    absl::Time deadline) {
  return ExecuteSingle(
      PlanWithdraw(std::make_shared<const v1::WithdrawRequest>(req),
                   correlation_id),
      deadline);
}

absl::StatusOr<v1::CommandResult> CommandHandler::CloseAccount(
    const v1::CloseAccountRequest& req, const std::string& correlation_id,
    absl::Time deadline) {
  return ExecuteSingle(
      PlanCloseAccount(std::make_shared<const v1::CloseAccountRequest>(req),
                       correlation_id),
      deadline);
}

absl::StatusOr<v1::TransferResult> CommandHandler::Transfer(
    const v1::TransferRequest& req, const std::string& correlation_id,
    absl::Time deadline) {
  absl::StatusOr<Plan> plan = PlanTransfer(
      std::make_shared<const v1::TransferRequest>(req), correlation_id);
  if (!plan.ok()) return plan.status();
  absl::StatusOr<Outcome> out = Execute(*plan, deadline);
  if (!out.ok()) return out.status();
  return TransferResultOf(*out, plan->account_ids);
}

void CommandHandler::OpenAccountAsync(
    std::shared_ptr<const v1::OpenAccountRequest> req,
    const std::string& correlation_id, absl::Time deadline,
    Done<v1::CommandResult> done) {
  ExecuteSingleAsync(PlanOpenAccount(std::move(req), correlation_id), deadline,
                     std::move(done));
}

void CommandHandler::DepositAsync(std::shared_ptr<const v1::DepositRequest> req,
                                  const std::string& correlation_id,
                                  absl::Time deadline,
                                  Done<v1::CommandResult> done) {
  ExecuteSingleAsync(PlanDeposit(std::move(req), correlation_id), deadline,
                     std::move(done));
}

void CommandHandler::WithdrawAsync(
    std::shared_ptr<const v1::WithdrawRequest> req,
    const std::string& correlation_id, absl::Time deadline,
    Done<v1::CommandResult> done) {
  ExecuteSingleAsync(PlanWithdraw(std::move(req), correlation_id), deadline,
                     std::move(done));
}

void CommandHandler::CloseAccountAsync(
    std::shared_ptr<const v1::CloseAccountRequest> req,
    const std::string& correlation_id, absl::Time deadline,
    Done<v1::CommandResult> done) {
  ExecuteSingleAsync(PlanCloseAccount(std::move(req), correlation_id), deadline,
                     std::move(done));
}

void CommandHandler::TransferAsync(
    std::shared_ptr<const v1::TransferRequest> req,
    const std::string& correlation_id, absl::Time deadline,
    Done<v1::TransferResult> done) {
  absl::StatusOr<Plan> plan = PlanTransfer(std::move(req), correlation_id);
  if (!plan.ok()) {
    done(plan.status());
    return;
  }
  std::vector<std::string> ids = plan->account_ids;
  ExecuteAsync(*std::move(plan), deadline,
               [done = std::move(done),
                ids = std::move(ids)](absl::StatusOr<Outcome> out) {
                 if (!out.ok()) {
                   done(out.status());
                 } else {
                   done(TransferResultOf(*out, ids));
                 }
               });
}

}  // namespace bank::command

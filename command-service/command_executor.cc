#include "command-service/command_executor.h"

#include <algorithm>
#include <optional>
#include <random>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/domain/event_codec.h"
#include "common/log/log.h"
#include "common/util/text.h"
#include "common/util/uuid.h"
#include "nlohmann/json.hpp"

namespace bank::command {
namespace {

void SleepWithJitter(int attempt, absl::Time deadline) {
  thread_local std::mt19937 gen{std::random_device{}()};
  int cap_us = std::min(50000, 500 << std::min(attempt, 7));
  std::uniform_int_distribution<int> dist(0, cap_us);
  absl::Duration d = absl::Microseconds(dist(gen));
  if (absl::Now() + d < deadline) absl::SleepFor(d);
}

}  // namespace

// One command from Execute to its answer, kept alive by whoever holds the
// next step (the append's callback, or work queued on offload).
struct CommandExecutor::Call {
  CommandPlan plan;
  eventstore::CommandRecord record;
  std::string metadata;
  absl::Time deadline;
  Done done;
  int attempt = 1;
  // The first decision trusts the cache; after a conflict, or to confirm a
  // refusal, the events after the cached state are read.
  bool trust_cache = true;
  // The current decision and its append.
  std::vector<domain::BankAccount> accounts;
  std::vector<eventstore::StreamAppend> ordered;
  std::vector<int64_t> flight;
  std::unique_ptr<eventstore::PendingAppend> pending;

  void Reset() {
    accounts.clear();
    ordered.clear();
    flight.clear();
    pending.reset();
  }
};

CommandExecutor::CommandExecutor(eventstore::EventStore& store,
                                 AccountLoader& loader,
                                 AccountPipeline& pipeline,
                                 Idempotency& idempotency, Offload offload,
                                 metrics::Registry& metrics, Options options)
    : store_(store),
      loader_(loader),
      pipeline_(pipeline),
      idempotency_(idempotency),
      offload_(std::move(offload)),
      options_(std::move(options)),
      conflicts_(metrics.GetCounter(
          "bank_append_conflicts_total",
          "Appends refused because another writer got to the stream first.")),
      retries_(metrics.GetCounter("bank_command_retries_total",
                                  "Commands decided again after a conflict.")) {
}

std::string CommandExecutor::Metadata(const CommandPlan& plan) const {
  nlohmann::json m = {{"instance", options_.instance_id}};
  if (!plan.command_id.empty()) {
    m["command_id"] = plan.command_id;
    m["causation_id"] = plan.command_id;
  }
  if (!plan.correlation_id.empty() &&
      util::Utf8Length(plan.correlation_id).has_value() &&
      !util::HasControlCharacter(plan.correlation_id)) {
    m["correlation_id"] = plan.correlation_id;
  }
  return m.dump();
}

void CommandExecutor::Execute(CommandPlan plan, absl::Time deadline,
                              Done done) {
  auto call = std::make_shared<Call>();
  call->record = plan.Record();
  call->metadata = Metadata(plan);
  call->plan = std::move(plan);
  call->deadline = deadline;
  call->done = std::move(done);
  // The common case costs no thread handoff; else the command starts over
  // on offload, where it may wait.
  bool would_block = false;
  if (Start(*call, &would_block).ok()) {
    AnswerOnCommit(call);
    return;
  }
  call->Reset();
  OffloadOr(
      call, [this, call] { StartBlocking(call); },
      absl::ResourceExhaustedError(
          "command service overloaded (work queue full); retry with backoff"));
}

void CommandExecutor::OffloadOr(const std::shared_ptr<Call>& call,
                                std::function<void()> fn,
                                absl::Status refusal) {
  if (!offload_(std::move(fn))) call->done(std::move(refusal));
}

absl::Status CommandExecutor::Start(Call& call, bool* would_block) {
  const CommandPlan& plan = call.plan;
  const std::vector<std::string>& account_ids = plan.account_ids;
  const std::optional<int64_t>& expected_version = plan.expected_version;
  const bool may_block = would_block == nullptr;
  const absl::Status blocks = absl::UnavailableError("would block");
  AccountCache& cache = loader_.cache();
  // The turn covers deciding and queueing the append, not its commit.
  AccountPipeline::Turn turn(pipeline_, account_ids, /*try_only=*/!may_block);
  if (!turn.held()) {
    *would_block = true;
    return blocks;
  }
  bool any_cached = false;
  auto load_all = [&]() -> absl::Status {
    call.accounts.clear();
    any_cached = false;
    for (const std::string& id : account_ids) {
      if (!may_block) {
        // From the cache only (an entry may have been evicted meanwhile).
        std::optional<domain::AccountState> state = cache.Get(id);
        if (!state.has_value()) {
          *would_block = true;
          return blocks;
        }
        any_cached = true;
        call.accounts.emplace_back(*std::move(state));
        continue;
      }
      bool cached = false;
      absl::StatusOr<domain::BankAccount> account =
          loader_.Load(id, call.trust_cache, &cached, call.deadline);
      if (!account.ok()) return account.status();
      any_cached = any_cached || cached;
      call.accounts.push_back(*std::move(account));
    }
    return absl::OkStatus();
  };
  auto check_and_decide = [&]() -> absl::Status {
    const domain::AccountState& first = call.accounts[0].state();
    if (expected_version.has_value() && first.version != *expected_version) {
      if (first.version == 0) {
        return absl::NotFoundError(
            absl::StrCat("account ", account_ids[0], " does not exist"));
      }
      return absl::AbortedError(
          absl::StrCat("expected_version ", *expected_version, " but account ",
                       account_ids[0], " is at version ", first.version,
                       "; reload and retry"));
    }
    return plan.decide(call.accounts);
  };
  bool all_cached = true;
  for (const std::string& id : account_ids) {
    all_cached = all_cached && cache.Get(id).has_value();
  }
  if (!may_block && (!all_cached || !call.trust_cache)) {
    *would_block = true;  // The database is read.
    return blocks;
  }
  if (!all_cached && pipeline_.InFlight(account_ids) &&
      !pipeline_.AwaitLanded(account_ids, call.deadline)) {
    // Without the state an append in flight leaves (evicted, or no cache),
    // wait for it to land instead of deciding on an older one.
    return absl::DeadlineExceededError(
        "deadline passed waiting for earlier commands on the account");
  }
  // Read before the states: a failed append drops its accounts from the
  // cache before it leaves the flight, so a state read from the cache after
  // this is either committed or the tip recorded here (or a later state of
  // ours, which this thread would be deciding on: none, the turn is held).
  std::vector<std::optional<AccountPipeline::Tip>> tips =
      pipeline_.Tips(account_ids);
  if (absl::Status s = load_all(); !s.ok()) return s;
  absl::Status decided = check_and_decide();
  if (!decided.ok() && !may_block) {
    *would_block = true;  // Confirmed on the stored stream, below.
    return blocks;
  }
  if (!decided.ok() && (any_cached || pipeline_.InFlight(account_ids))) {
    // A refusal must rest on committed state: let the appends in flight on
    // these accounts land (nobody can queue more while the turn is held),
    // then decide again on the stream as stored, which may also be ahead of
    // a stale cache (another instance's writes).
    if (!pipeline_.AwaitLanded(account_ids, call.deadline)) {
      return absl::DeadlineExceededError(
          "deadline passed waiting for earlier commands on the account");
    }
    call.trust_cache = false;
    tips = pipeline_.Tips(account_ids);  // None: all landed, the turn held.
    if (absl::Status s = load_all(); !s.ok()) return s;
    decided = check_and_decide();
  }
  if (!decided.ok()) return decided;

  for (const domain::BankAccount& account : call.accounts) {
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
      sa.events.push_back(eventstore::NewEvent{util::NewUuid(), enc.type,
                                               enc.schema_version, enc.json,
                                               call.metadata});
    }
    call.ordered.push_back(std::move(sa));
  }
  // A fixed order of rows keeps two opposite transfers from deadlocking on
  // each other's unique-index entries.
  std::sort(
      call.ordered.begin(), call.ordered.end(),
      [](const auto& x, const auto& y) { return x.stream_id < y.stream_id; });
  call.pending = store_.StartAppend(
      call.ordered, plan.command_id.empty() ? nullptr : &call.record,
      call.deadline);
  call.flight = pipeline_.StartFlight(account_ids, call.ordered);
  // The next command on these accounts decides on this state; if this append
  // fails, so does any append built on it (the store's gap and version
  // checks), and the cache entry is dropped in Settle.
  for (const domain::BankAccount& account : call.accounts) {
    cache.Put(account.state());
  }
  return absl::OkStatus();
}

void CommandExecutor::StartBlocking(const std::shared_ptr<Call>& call) {
  if (absl::Status s = Start(*call, /*would_block=*/nullptr); !s.ok()) {
    call->done(idempotency_.Resolve(call->plan, s, call->deadline));
    return;
  }
  AnswerOnCommit(call);
}

void CommandExecutor::AnswerOnCommit(const std::shared_ptr<Call>& call) {
  call->pending->Then(
      [this, call](absl::StatusOr<std::vector<eventstore::StreamResult>> r) {
        Settled(call, std::move(r));
      });
}

absl::StatusOr<CommandOutcome> CommandExecutor::Settle(
    Call& call, absl::StatusOr<std::vector<eventstore::StreamResult>> appended,
    bool* retry) {
  *retry = false;
  const CommandPlan& plan = call.plan;
  if (!appended.ok()) {
    for (const std::string& id : plan.account_ids) loader_.cache().Erase(id);
  }
  pipeline_.EndFlight(plan.account_ids, call.flight);
  if (appended.ok()) {
    CommandOutcome out;
    for (const domain::BankAccount& account : call.accounts) {
      for (const auto& r : *appended) {
        if (r.stream_id == account.state().id) out.results.push_back(r);
      }
    }
    return out;
  }
  if (appended.status().code() == absl::StatusCode::kAlreadyExists) {
    CommandOutcome raced;
    raced.command_raced = true;
    return raced;
  }
  if (appended.status().code() != absl::StatusCode::kAborted) {
    return appended.status();
  }
  conflicts_.Inc();
  if (plan.expected_version.has_value()) {
    return absl::AbortedError(absl::StrCat(
        "account ", plan.account_ids[0], " changed after version ",
        *plan.expected_version, " while this command ran; reload and retry"));
  }
  *retry = true;
  return appended.status();
}

void CommandExecutor::Settled(
    const std::shared_ptr<Call>& call,
    absl::StatusOr<std::vector<eventstore::StreamResult>> appended) {
  bool retry = false;
  absl::StatusOr<CommandOutcome> out =
      Settle(*call, std::move(appended), &retry);
  const bool committed = !retry && out.ok() && !out->command_raced;
  const bool snapshot = committed && loader_.SnapshotDue(call->accounts);
  if (!retry && !snapshot && !Idempotency::NeedsLookup(out)) {
    call->done(std::move(out));  // The common case: nothing left to read.
    return;
  }
  // What is left reads or writes the database: never on the thread that
  // commits appends (it may be the one answering this call).
  if (retry) {
    // Nothing of it was written: a retry by the client is safe.
    OffloadOr(
        call, [this, call] { Retry(call); },
        absl::ResourceExhaustedError(
            "command service overloaded (no worker free to finish the "
            "command); retry with backoff"));
    return;
  }
  std::optional<CommandOutcome> done_already;
  if (committed) done_already = *out;
  const bool queued = offload_([this, call, out = std::move(out)]() mutable {
    if (out.ok() && !out->command_raced) {
      loader_.SaveSnapshots(call->accounts, call->deadline);
    }
    call->done(
        idempotency_.Resolve(call->plan, std::move(out), call->deadline));
  });
  if (queued) return;
  if (done_already.has_value()) {
    // The command committed; its snapshot waits for a later command.
    call->done(*std::move(done_already));
    return;
  }
  // Recorded already by a concurrent request: a retry with the same
  // command_id is safe.
  call->done(absl::ResourceExhaustedError(
      "command service overloaded (no worker free to finish the command); "
      "retry with backoff"));
}

void CommandExecutor::Retry(const std::shared_ptr<Call>& call) {
  spdlog::debug("append conflict on attempt {} for command {}", call->attempt,
                call->plan.command_id);
  SleepWithJitter(call->attempt, call->deadline);
  if (call->attempt >= options_.max_attempts || absl::Now() >= call->deadline) {
    call->done(idempotency_.Resolve(
        call->plan,
        absl::AbortedError(absl::StrCat(
            "gave up after ", call->attempt,
            " attempts: other writers kept changing the account; retry")),
        call->deadline));
    return;
  }
  retries_.Inc();
  ++call->attempt;
  // Decide again on the stored stream (Settle dropped the cache entries).
  call->trust_cache = false;
  call->Reset();
  StartBlocking(call);
}

}  // namespace bank::command

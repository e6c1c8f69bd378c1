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
    const Command& command, const std::vector<std::string>& account_ids,
    std::optional<int64_t> expected_version, const Decide& decide,
    absl::Time deadline) {
  // Idempotency costs no round trip on the common path: the append itself
  // refuses a recorded command_id (the commands table's primary key), and
  // only then, or when the aggregate refuses, is the stored result looked
  // up: a repeated command is answered with its first outcome, never with
  // a refusal computed on the state it already changed.
  absl::StatusOr<Outcome> out =
      Run(command, account_ids, expected_version, decide, deadline);
  if (!out.ok()) {
    switch (out.status().code()) {
      case absl::StatusCode::kFailedPrecondition:
      case absl::StatusCode::kNotFound:
      case absl::StatusCode::kAlreadyExists:
      case absl::StatusCode::kAborted:
        break;  // A refusal: maybe of a command that took effect already.
      default:
        return out;
    }
    absl::StatusOr<std::optional<Outcome>> replay =
        FindReplay(command, deadline);
    if (!replay.ok()) return replay.status();
    if (replay->has_value()) return **replay;
    return out;
  }
  if (!out->command_raced) return out;
  // The command_id is recorded: by an earlier request or a concurrent one.
  absl::StatusOr<std::optional<Outcome>> replay =
      FindReplay(command, deadline);
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
    const std::vector<std::string>& account_ids) {
  absl::MutexLock lock(&flight_mu_);
  std::vector<int64_t> seqs;
  for (const std::string& id : account_ids) {
    seqs.push_back(++flights_[id].started);
  }
  return seqs;
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

absl::StatusOr<CommandHandler::Outcome> CommandHandler::Run(
    const Command& command, const std::vector<std::string>& account_ids,
    std::optional<int64_t> expected_version, const Decide& decide,
    absl::Time deadline) {
  const eventstore::CommandRecord record{command.command_id,
                                         command.request_type, command.request};
  const std::string metadata = Metadata(command);
  const std::vector<size_t> stripes = StripesOf(account_ids);
  // First try trusts the cache; after a conflict, read on from it.
  bool trust_cache = true;
  for (int attempt = 1; attempt <= options_.max_attempts; ++attempt) {
    std::vector<domain::BankAccount> accounts;
    std::vector<eventstore::StreamAppend> ordered;
    std::unique_ptr<eventstore::PendingAppend> pending;
    std::vector<int64_t> flight;
    {
      // Commands on one account decide one at a time, in this order, each
      // on the state the previous one left, committed or still in flight.
      // The lock covers deciding and queueing the append, not its commit:
      // the appends of a busy account share batches (pipelining).
      StripeLock lock(*this, stripes);
      bool any_cached = false;
      auto load_all = [&]() -> absl::Status {
        accounts.clear();
        any_cached = false;
        for (const std::string& id : account_ids) {
          bool cached = false;
          absl::StatusOr<domain::BankAccount> a =
              Load(id, trust_cache, &cached, deadline);
          if (!a.ok()) return a.status();
          any_cached = any_cached || cached;
          accounts.push_back(*std::move(a));
        }
        return absl::OkStatus();
      };
      auto check_and_decide = [&]() -> absl::Status {
        if (expected_version.has_value() &&
            accounts[0].state().version != *expected_version) {
          if (accounts[0].state().version == 0) {
            return absl::NotFoundError(
                absl::StrCat("account ", account_ids[0], " does not exist"));
          }
          return absl::AbortedError(absl::StrCat(
              "expected_version ", *expected_version, " but account ",
              account_ids[0], " is at version ", accounts[0].state().version,
              "; reload and retry"));
        }
        return decide(accounts);
      };
      bool all_cached = true;
      for (const std::string& id : account_ids) {
        all_cached = all_cached && cache_.Get(id).has_value();
      }
      if (!all_cached && InFlight(account_ids) &&
          !AwaitLanded(account_ids, deadline)) {
        // Without the state an append in flight leaves (evicted, or no
        // cache), wait for it to land instead of deciding on an older one.
        return absl::DeadlineExceededError(
            "deadline passed waiting for earlier commands on the account");
      }
      if (absl::Status s = load_all(); !s.ok()) return s;
      absl::Status decided = check_and_decide();
      if (!decided.ok() && (any_cached || InFlight(account_ids))) {
        // A refusal must rest on committed state: let the appends in flight
        // on these accounts land (nobody can queue more while the stripes
        // are held), then decide again on the stream as stored, which may
        // also be ahead of a stale cache (another instance's writes).
        if (!AwaitLanded(account_ids, deadline)) {
          return absl::DeadlineExceededError(
              "deadline passed waiting for earlier commands on the account");
        }
        trust_cache = false;
        if (absl::Status s = load_all(); !s.ok()) return s;
        decided = check_and_decide();
      }
      if (!decided.ok()) return decided;

      for (const domain::BankAccount& a : accounts) {
        if (a.pending().empty()) continue;
        eventstore::StreamAppend sa;
        sa.stream_id = a.state().id;
        sa.expected_version = a.committed_version();
        for (const domain::AccountEvent& e : a.pending()) {
          domain::EncodedEvent enc = domain::EncodeEvent(e);
          sa.events.push_back(eventstore::NewEvent{util::NewUuid(), enc.type,
                                                   enc.schema_version,
                                                   enc.json, metadata});
        }
        ordered.push_back(std::move(sa));
      }
      // A fixed order of rows keeps two opposite transfers from
      // deadlocking on each other's unique-index entries.
      std::sort(ordered.begin(), ordered.end(),
                [](const auto& a, const auto& b) {
                  return a.stream_id < b.stream_id;
                });
      pending = store_.StartAppend(
          ordered, command.command_id.empty() ? nullptr : &record, deadline);
      flight = StartFlight(account_ids);
      // The next command on these accounts decides on this state; if this
      // append fails, so does any append built on it (the store's gap and
      // version checks), and the cache entry is dropped below.
      for (const domain::BankAccount& a : accounts) cache_.Put(a.state());
    }
    absl::StatusOr<std::vector<eventstore::StreamResult>> appended =
        pending->Wait();
    if (!appended.ok()) {
      for (const std::string& id : account_ids) cache_.Erase(id);
    }
    EndFlight(account_ids, flight);
    if (appended.ok()) {
      Outcome out;
      for (const domain::BankAccount& a : accounts) {
        MaybeSnapshot(a.state(), a.committed_version(), deadline);
        for (const auto& r : *appended) {
          if (r.stream_id == a.state().id) out.results.push_back(r);
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
    if (expected_version.has_value()) {
      return absl::AbortedError(absl::StrCat(
          "account ", account_ids[0], " changed after version ",
          *expected_version, " while this command ran; reload and retry"));
    }
    spdlog::debug("append conflict on attempt {} for command {}", attempt,
                  command.command_id);
    trust_cache = false;
    SleepWithJitter(attempt, deadline);
    if (absl::Now() >= deadline) break;
    if (attempt < options_.max_attempts) retries_->Inc();
  }
  return absl::AbortedError(absl::StrCat(
      "gave up after ", options_.max_attempts,
      " attempts: other writers kept changing the account; retry"));
}

absl::StatusOr<v1::CommandResult> CommandHandler::OpenAccount(
    const v1::OpenAccountRequest& req, const std::string& correlation_id,
    absl::Time deadline) {
  if (absl::Status s = ValidateRequest(req); !s.ok()) return s;
  const std::string id = req.account_id().empty()
                             ? util::NewUuid()
                             : util::CanonicalUuid(req.account_id());
  Command cmd{req.command_id(), "OpenAccount", Encode(req), correlation_id};
  absl::StatusOr<Outcome> out = Execute(
      cmd, {id}, std::nullopt,
      [&](std::vector<domain::BankAccount>& a) {
        return a[0].Open(req.owner(), req.currency(), req.initial_deposit());
      },
      deadline);
  if (!out.ok()) return out.status();
  return ToResult(out->results.at(0), out->replayed);
}

absl::StatusOr<v1::CommandResult> CommandHandler::Deposit(
    const v1::DepositRequest& req, const std::string& correlation_id,
    absl::Time deadline) {
  if (absl::Status s = ValidateRequest(req); !s.ok()) return s;
  std::optional<int64_t> expected;
  if (req.has_expected_version()) expected = req.expected_version();
  Command cmd{req.command_id(), "Deposit", Encode(req), correlation_id};
  absl::StatusOr<Outcome> out = Execute(
      cmd, {util::CanonicalUuid(req.account_id())}, expected,
      [&](std::vector<domain::BankAccount>& a) {
        return a[0].Deposit(req.amount());
      },
      deadline);
  if (!out.ok()) return out.status();
  return ToResult(out->results.at(0), out->replayed);
}

absl::StatusOr<v1::CommandResult> CommandHandler::Withdraw(
    const v1::WithdrawRequest& req, const std::string& correlation_id,
    absl::Time deadline) {
  if (absl::Status s = ValidateRequest(req); !s.ok()) return s;
  std::optional<int64_t> expected;
  if (req.has_expected_version()) expected = req.expected_version();
  Command cmd{req.command_id(), "Withdraw", Encode(req), correlation_id};
  absl::StatusOr<Outcome> out = Execute(
      cmd, {util::CanonicalUuid(req.account_id())}, expected,
      [&](std::vector<domain::BankAccount>& a) {
        return a[0].Withdraw(req.amount());
      },
      deadline);
  if (!out.ok()) return out.status();
  return ToResult(out->results.at(0), out->replayed);
}

absl::StatusOr<v1::CommandResult> CommandHandler::CloseAccount(
    const v1::CloseAccountRequest& req, const std::string& correlation_id,
    absl::Time deadline) {
  if (absl::Status s = ValidateRequest(req); !s.ok()) return s;
  std::optional<int64_t> expected;
  if (req.has_expected_version()) expected = req.expected_version();
  Command cmd{req.command_id(), "CloseAccount", Encode(req), correlation_id};
  absl::StatusOr<Outcome> out = Execute(
      cmd, {util::CanonicalUuid(req.account_id())}, expected,
      [&](std::vector<domain::BankAccount>& a) { return a[0].Close(); },
      deadline);
  if (!out.ok()) return out.status();
  return ToResult(out->results.at(0), out->replayed);
}

absl::StatusOr<v1::TransferResult> CommandHandler::Transfer(
    const v1::TransferRequest& req, const std::string& correlation_id,
    absl::Time deadline) {
  if (absl::Status s = ValidateRequest(req); !s.ok()) return s;
  const std::string from = util::CanonicalUuid(req.from_account_id());
  const std::string to = util::CanonicalUuid(req.to_account_id());
  Command cmd{req.command_id(), "Transfer", Encode(req), correlation_id};
  const std::string transfer_id = util::NewUuid();
  absl::StatusOr<Outcome> out = Execute(
      cmd, {from, to}, std::nullopt,
      [&](std::vector<domain::BankAccount>& a) {
        return domain::Transfer(a[0], a[1], transfer_id, req.amount());
      },
      deadline);
  if (!out.ok()) return out.status();
  v1::TransferResult result;
  for (const eventstore::StreamResult& r : out->results) {
    if (r.stream_id == from)
      *result.mutable_from() = ToResult(r, out->replayed);
    if (r.stream_id == to) *result.mutable_to() = ToResult(r, out->replayed);
  }
  return result;
}

}  // namespace bank::command

// bankctl: a command-line client for the bank's CommandService and
// QueryService. Amounts are typed and shown as decimals of the account's
// currency ("100.00"); errors print the gRPC status and exit non-zero.
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "bank/v1/bank.grpc.pb.h"
#include "cli/client.h"
#include "cli/money_format.h"
#include "cli/streams.h"
#include "common/util/signals.h"
#include "common/util/uuid.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/time_util.h"
#include "grpc/health/v1/health.grpc.pb.h"

namespace {

using bank::cli::Check;
using bank::cli::Client;
using bank::cli::Failure;
using bank::cli::FormatAmount;
using bank::cli::Options;
using bank::cli::ParseAmount;
using bank::cli::ToJson;

const char* StatusName(bank::v1::AccountStatus s) {
  return s == bank::v1::ACCOUNT_STATUS_CLOSED ? "closed" : "open";
}

void PrintBalance(const bank::v1::AccountBalance& b) {
  std::cout << "account  " << b.account_id() << "\n"
            << "owner    " << b.owner() << "\n"
            << "balance  " << FormatAmount(b.balance(), b.currency()) << " "
            << b.currency() << "\n"
            << "status   " << StatusName(b.status()) << "\n"
            << "version  " << b.version() << "\n"
            << "updated  "
            << google::protobuf::util::TimeUtil::ToString(b.updated_at())
            << "\n";
}

// After a command: the result, then (unless --no-wait) the balance that
// includes it, read with min_version so the user sees their own write.
void Report(Client& c, const char* what, const bank::v1::CommandResult& r) {
  std::optional<bank::v1::AccountBalance> b;
  if (!c.options().no_wait)
    b = c.Balance(r.account_id(), r.version(), std::nullopt);
  if (c.options().json) {
    std::cout << "{\"result\":" << ToJson(r);
    if (b) std::cout << ",\"balance\":" << ToJson(*b);
    std::cout << "}\n";
    return;
  }
  std::cout << what << " " << r.account_id() << " (version " << r.version()
            << ", position " << r.position()
            << (r.replayed() ? ", replayed earlier result" : "") << ")\n";
  if (b) {
    std::cout << "balance  " << FormatAmount(b->balance(), b->currency()) << " "
              << b->currency() << "\n";
  }
}

absl::Time ParseTime(const std::string& text) {
  absl::Time t;
  std::string err;
  if (!absl::ParseTime(absl::RFC3339_full, text, &t, &err)) {
    throw Failure{absl::StrCat("--as-of \"", text,
                               "\" is not an RFC 3339 time like "
                               "2026-01-31T12:00:00Z: ",
                               err)};
  }
  return t;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"bankctl: talk to the bank's command and query services"};
  app.require_subcommand(1);
  app.add_option("--command-host", o.command_host, "CommandService address")
      ->envname("BANK_COMMAND_HOST")
      ->capture_default_str();
  app.add_option("--query-host", o.query_host, "QueryService address")
      ->envname("BANK_QUERY_HOST")
      ->capture_default_str();
  app.add_flag("--json", o.json, "print JSON (protobuf JSON mapping)");
  app.add_option("--timeout", o.timeout, "seconds per call")
      ->check(CLI::Range(0.001, 3600.0))
      ->capture_default_str();
  app.add_option("--tls-ca", o.tls_ca, "PEM CA to trust: connect with TLS")
      ->envname("BANK_TLS_CA");
  app.add_option("--tls-cert", o.tls_cert, "PEM client certificate (mTLS)")
      ->envname("BANK_TLS_CLIENT_CERT");
  app.add_option("--tls-key", o.tls_key, "PEM key of --tls-cert")
      ->envname("BANK_TLS_CLIENT_KEY");
  app.add_flag("--no-wait", o.no_wait,
               "after a command, do not wait for and show the new balance");

  std::string owner, currency, initial = "0", id, command_id, from, to, amount,
                               as_of;
  std::optional<int64_t> expected;
  int64_t wait_version = 0;
  bool wait = false, all = false;
  int page_size = 0;
  std::string page_token;

  auto* open = app.add_subcommand("open", "open an account");
  open->add_option("--owner", owner, "account holder")->required();
  open->add_option("--currency", currency, "three upper-case letters")
      ->required();
  open->add_option("--initial", initial, "initial deposit, e.g. 100.00")
      ->capture_default_str();
  open->add_option("--id", id, "account id (UUID); generated when absent");
  open->add_option("--command-id", command_id, "idempotency key");

  auto add_money = [&](CLI::App* sub, bool with_expected) {
    sub->add_option("account", id, "account id")->required();
    sub->add_option("amount", amount, "amount, e.g. 12.50")->required();
    sub->add_option("--command-id", command_id, "idempotency key");
    if (with_expected) {
      sub->add_option("--expected-version", expected,
                      "apply only if the account is at this version");
    }
  };
  auto* deposit = app.add_subcommand("deposit", "deposit money");
  add_money(deposit, true);
  auto* withdraw = app.add_subcommand("withdraw", "withdraw money");
  add_money(withdraw, true);
  auto* transfer =
      app.add_subcommand("transfer", "move money between accounts");
  transfer->add_option("from", from, "account to take from")->required();
  transfer->add_option("to", to, "account to pay into")->required();
  transfer->add_option("amount", amount, "amount, e.g. 12.50")->required();
  transfer->add_option("--command-id", command_id, "idempotency key");
  auto* close = app.add_subcommand("close", "close an account (zero balance)");
  close->add_option("account", id, "account id")->required();
  close->add_option("--command-id", command_id, "idempotency key");
  close->add_option("--expected-version", expected,
                    "apply only if the account is at this version");
  auto* balance = app.add_subcommand("balance", "show an account's balance");
  balance->add_option("account", id, "account id")->required();
  balance->add_flag("--wait", wait,
                    "wait until the read model has version --version");
  balance->add_option("--version", wait_version,
                      "with --wait: the version to wait for (default 1)");
  balance->add_option("--as-of", as_of, "RFC 3339 time: the balance back then");
  auto* accounts = app.add_subcommand("accounts", "list accounts");
  accounts->add_option("--page-size", page_size, "accounts per page");
  accounts->add_option("--page-token", page_token, "continue a listing");
  accounts->add_flag("--all", all, "follow every page");
  auto* history = app.add_subcommand("history", "show an account's history");
  history->add_option("account", id, "account id")->required();
  history->add_option("--page-size", page_size, "entries per page");
  history->add_option("--page-token", page_token, "continue a listing");
  history->add_flag("--all", all, "follow every page");
  int64_t after_version = 0;
  auto* watch = app.add_subcommand(
      "watch", "print an account's entries, then each new one, until Ctrl-C");
  watch->add_option("account", id, "account id")->required();
  watch
      ->add_option("--after-version", after_version,
                   "start after this version (0: from the opening)")
      ->capture_default_str();
  std::string resume;
  int max_batch = 0;
  auto* tail = app.add_subcommand(
      "tail",
      "print every account's entries in the order applied, then live, until "
      "Ctrl-C (which prints the token to resume from)");
  tail->add_option("--resume", resume, "a resume token: continue after it");
  tail->add_option("--max-batch", max_batch,
                   "entries per batch (0: the server's default)");
  std::string group, member;
  bool from_now = false;
  int max_unacked = 0;
  auto* consume = app.add_subcommand(
      "consume",
      "join a consumer group: print and acknowledge the entries of this "
      "member's share of the accounts, until Ctrl-C");
  consume->add_option("group", group, "group name")->required();
  consume->add_option("--member", member, "this member's name in the group")
      ->required();
  consume->add_flag("--from-now", from_now,
                    "a new group starts at the latest entry (default: at the "
                    "first)");
  consume->add_option("--max-unacked", max_unacked,
                      "entries in flight at most (0: the server's default)");
  std::string health_target = "command";
  auto* health = app.add_subcommand(
      "health",
      "ask a server's grpc.health.v1 service; exit 0 only when SERVING");
  health->add_option("server", health_target, "command or query")
      ->check(CLI::IsMember({"command", "query"}))
      ->capture_default_str();

  CLI11_PARSE(app, argc, argv);
  // Streams stop on SIGINT or SIGTERM, waited for by a thread of their own.
  if (watch->parsed() || tail->parsed() || consume->parsed()) {
    bank::util::BlockTerminationSignals();
  }
  Client c(o);
  try {
    auto cmd_id = [&] {
      return command_id.empty() ? bank::util::NewUuid() : command_id;
    };
    if (open->parsed()) {
      bank::v1::OpenAccountRequest req;
      req.set_command_id(cmd_id());
      req.set_account_id(id);
      req.set_owner(owner);
      req.set_currency(currency);
      auto minor = ParseAmount(initial, currency);
      if (!minor.ok()) throw Failure{std::string(minor.status().message())};
      req.set_initial_deposit(*minor);
      bank::v1::CommandResult r;
      auto ctx = c.Context();
      Check(c.commands().OpenAccount(ctx.get(), req, &r), "open");
      Report(c, "opened", r);
    } else if (deposit->parsed() || withdraw->parsed()) {
      const std::string currency = c.CurrencyOf(id);
      auto minor = ParseAmount(amount, currency);
      if (!minor.ok()) throw Failure{std::string(minor.status().message())};
      bank::v1::CommandResult r;
      auto ctx = c.Context();
      if (deposit->parsed()) {
        bank::v1::DepositRequest req;
        req.set_command_id(cmd_id());
        req.set_account_id(id);
        req.set_amount(*minor);
        if (expected) req.set_expected_version(*expected);
        Check(c.commands().Deposit(ctx.get(), req, &r), "deposit", currency);
        Report(c, "deposited to", r);
      } else {
        bank::v1::WithdrawRequest req;
        req.set_command_id(cmd_id());
        req.set_account_id(id);
        req.set_amount(*minor);
        if (expected) req.set_expected_version(*expected);
        Check(c.commands().Withdraw(ctx.get(), req, &r), "withdraw", currency);
        Report(c, "withdrew from", r);
      }
    } else if (transfer->parsed()) {
      const std::string currency = c.CurrencyOf(from);
      auto minor = ParseAmount(amount, currency);
      if (!minor.ok()) throw Failure{std::string(minor.status().message())};
      bank::v1::TransferRequest req;
      req.set_command_id(cmd_id());
      req.set_from_account_id(from);
      req.set_to_account_id(to);
      req.set_amount(*minor);
      bank::v1::TransferResult r;
      auto ctx = c.Context();
      Check(c.commands().Transfer(ctx.get(), req, &r), "transfer", currency);
      if (o.json) {
        std::cout << ToJson(r) << "\n";
      } else {
        Report(c, "transferred from", r.from());
        Report(c, "transferred to", r.to());
      }
    } else if (close->parsed()) {
      bank::v1::CloseAccountRequest req;
      req.set_command_id(cmd_id());
      req.set_account_id(id);
      if (expected) req.set_expected_version(*expected);
      bank::v1::CommandResult r;
      auto ctx = c.Context();
      grpc::Status s = c.commands().CloseAccount(ctx.get(), req, &r);
      // A refused close names the balance left: in the account's currency,
      // when it can be read.
      std::string currency;
      if (s.error_code() == grpc::StatusCode::FAILED_PRECONDITION) {
        try {
          currency = c.CurrencyOf(id);
        } catch (const Failure&) {
        }
      }
      Check(s, "close", currency);
      Report(c, "closed", r);
    } else if (balance->parsed()) {
      std::optional<absl::Time> t;
      if (!as_of.empty()) t = ParseTime(as_of);
      int64_t v = wait ? std::max<int64_t>(1, wait_version) : 0;
      bank::v1::AccountBalance b = c.Balance(id, v, t);
      if (o.json) {
        std::cout << ToJson(b) << "\n";
      } else {
        PrintBalance(b);
      }
    } else if (watch->parsed()) {
      bank::cli::Watch(c, id, after_version);
    } else if (tail->parsed()) {
      bank::cli::Tail(c, resume, max_batch);
    } else if (consume->parsed()) {
      bank::cli::Consume(c, group, member, from_now, max_unacked);
    } else if (health->parsed()) {
      const bool command = health_target == "command";
      auto stub = grpc::health::v1::Health::NewStub(grpc::CreateChannel(
          command ? o.command_host : o.query_host, bank::cli::Credentials(o)));
      grpc::health::v1::HealthCheckRequest req;
      req.set_service(command ? "bank.v1.CommandService"
                              : "bank.v1.QueryService");
      grpc::health::v1::HealthCheckResponse resp;
      auto ctx = c.Context();
      Check(stub->Check(ctx.get(), req, &resp), "health");
      std::cout << grpc::health::v1::HealthCheckResponse::ServingStatus_Name(
                       resp.status())
                << "\n";
      if (resp.status() != grpc::health::v1::HealthCheckResponse::SERVING) {
        return 1;
      }
    } else if (accounts->parsed()) {
      do {
        bank::v1::ListAccountsRequest req;
        req.set_page_size(page_size);
        req.set_page_token(page_token);
        bank::v1::ListAccountsResponse resp;
        auto ctx = c.Context();
        Check(c.queries().ListAccounts(ctx.get(), req, &resp), "accounts");
        if (o.json) {
          std::cout << ToJson(resp) << "\n";
        } else {
          for (const auto& a : resp.accounts()) {
            std::cout << a.account_id() << "  " << StatusName(a.status())
                      << "  " << FormatAmount(a.balance(), a.currency()) << " "
                      << a.currency() << "  " << a.owner() << "\n";
          }
          if (!all && !resp.next_page_token().empty()) {
            std::cout << "more: --page-token " << resp.next_page_token()
                      << "\n";
          }
        }
        page_token = resp.next_page_token();
      } while (all && !page_token.empty());
    } else if (history->parsed()) {
      std::string cur;
      do {
        bank::v1::GetHistoryRequest req;
        req.set_account_id(id);
        req.set_page_size(page_size);
        req.set_page_token(page_token);
        bank::v1::GetHistoryResponse resp;
        auto ctx = c.Context();
        Check(c.queries().GetHistory(ctx.get(), req, &resp), "history");
        if (o.json) {
          std::cout << ToJson(resp) << "\n";
        } else {
          if (cur.empty()) cur = c.Balance(id, 0, std::nullopt).currency();
          for (const auto& h : resp.entries()) {
            std::cout << bank::cli::EntryLine(h, cur) << "\n";
          }
          if (!all && !resp.next_page_token().empty()) {
            std::cout << "more: --page-token " << resp.next_page_token()
                      << "\n";
          }
        }
        page_token = resp.next_page_token();
      } while (all && !page_token.empty());
    }
  } catch (const Failure& f) {
    std::cerr << "bankctl: " << f.text << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "bankctl: " << e.what() << "\n";
    return 1;
  }
  return 0;
}

#include "cli/streams.h"

#include <atomic>
#include <functional>
#include <iostream>
#include <map>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "cli/money_format.h"
#include "common/util/signals.h"

namespace bank::cli {
namespace {

// Runs `open` (one stream, until it ends) again and again: after an
// UNAVAILABLE end (or one `resumable` accepts), after a pause; until SIGINT
// or SIGTERM, which cancels the stream in flight. `open` is given the
// context to use.
template <typename Open>
void Follow(
    Open open, std::function<bool(const grpc::Status&)> resumable =
                   [](const grpc::Status&) { return false; }) {
  absl::Mutex mu;
  grpc::ClientContext* current = nullptr;
  std::atomic<bool> stopping{false};
  std::thread signals([&] {
    util::WaitForTerminationSignal();
    stopping = true;
    absl::MutexLock lock(&mu);
    if (current != nullptr) current->TryCancel();
  });
  signals.detach();  // The process ends when the stream does.
  absl::Duration pause = absl::Milliseconds(200);
  while (!stopping.load()) {
    grpc::ClientContext ctx;
    {
      absl::MutexLock lock(&mu);
      current = &ctx;
    }
    if (stopping.load()) break;
    grpc::Status s = open(ctx);
    {
      absl::MutexLock lock(&mu);
      current = nullptr;
    }
    if (stopping.load()) break;
    if (s.error_code() != grpc::UNAVAILABLE && !resumable(s)) {
      Check(s, "stream");
    }
    std::cerr << "bankctl: stream ended (" << CodeName(s.error_code()) << ": "
              << s.error_message() << "); resuming\n";
    absl::SleepFor(pause);
    pause = std::min(pause * 2, absl::Seconds(5));
  }
}

}  // namespace

void Watch(Client& c, const std::string& account, int64_t after_version) {
  int64_t after = after_version;
  Follow([&](grpc::ClientContext& ctx) {
    v1::WatchAccountRequest req;
    req.set_account_id(account);
    req.set_after_version(after);
    auto reader = c.queries().WatchAccount(&ctx, req);
    v1::AccountUpdate u;
    while (reader->Read(&u)) {
      if (c.options().json) {
        std::cout << ToJson(u) << std::endl;
      } else {
        std::cout << EntryLine(u.entry(), u.balance().currency()) << std::endl;
      }
      after = u.entry().version();
    }
    return reader->Finish();
  });
}

void Tail(Client& c, const std::string& token, int max_batch) {
  std::string resume = token;
  std::map<std::string, std::string> currencies;  // By account.
  Follow([&](grpc::ClientContext& ctx) {
    v1::StreamEntriesRequest req;
    req.set_resume_token(resume);
    req.set_max_batch(max_batch);
    auto reader = c.queries().StreamEntries(&ctx, req);
    v1::EntryBatch batch;
    while (reader->Read(&batch)) {
      if (c.options().json) {
        std::cout << ToJson(batch) << std::endl;
      } else {
        for (const v1::AccountEntry& e : batch.entries()) {
          std::string& cur = currencies[e.account_id()];
          if (cur.empty()) cur = c.CurrencyOf(e.account_id());
          std::cout << e.account_id() << "  " << EntryLine(e.entry(), cur)
                    << std::endl;
        }
      }
      resume = batch.resume_token();
    }
    return reader->Finish();
  });
  if (!resume.empty()) std::cerr << "resume: --resume " << resume << "\n";
}

void Consume(Client& c, const std::string& group, const std::string& member,
             bool from_now, int max_unacked) {
  std::map<std::string, std::string> currencies;  // By account.
  bool joined = false;
  Follow(
      [&](grpc::ClientContext& ctx) {
        auto stream = c.queries().Consume(&ctx);
        v1::ConsumeRequest join;
        join.mutable_join()->set_group(group);
        join.mutable_join()->set_member(member);
        join.mutable_join()->set_start(
            from_now ? v1::JoinGroup::START_FROM_NOW
                     : v1::JoinGroup::START_FROM_BEGINNING);
        join.mutable_join()->set_max_unacked(max_unacked);
        stream->Write(join);
        v1::ConsumeResponse r;
        while (stream->Read(&r)) {
          if (r.has_assignment()) {
            joined = true;
            std::cerr << "bankctl: member " << member << " of " << group
                      << " has partitions ["
                      << absl::StrJoin(r.assignment().partitions(), ",")
                      << "] of " << r.assignment().partition_count() << "\n";
            continue;
          }
          const v1::AccountEntry& e = r.entry();
          if (c.options().json) {
            std::cout << ToJson(e) << std::endl;
          } else {
            std::string& cur = currencies[e.account_id()];
            if (cur.empty()) cur = c.CurrencyOf(e.account_id());
            std::cout << e.account_id() << "  " << EntryLine(e.entry(), cur)
                      << std::endl;
          }
          v1::ConsumeRequest ack;
          ack.mutable_ack()->add_positions(e.entry().position());
          stream->Write(ack);
        }
        return stream->Finish();
      },
      [&joined](const grpc::Status& s) {
        return joined && s.error_code() == grpc::ALREADY_EXISTS;
      });
}

}  // namespace bank::cli

#include "tests/e2e/group_support.h"

#include <pqxx/pqxx>

#include "absl/strings/str_cat.h"
#include "query-service/group_logic.h"

namespace bank::testing {

GroupWorker::GroupWorker(Options options)
    : options_(std::move(options)), port_(options_.port) {
  thread_ = std::thread([this] { Run(); });
}

GroupWorker::~GroupWorker() { Stop(); }

void GroupWorker::Stop() {
  stopping_ = true;
  {
    absl::MutexLock lock(&mu_);
    if (ctx_ != nullptr) ctx_->TryCancel();
  }
  if (thread_.joinable()) thread_.join();
}

void GroupWorker::SetPort(int port) {
  absl::MutexLock lock(&mu_);
  port_ = port;
}

bool GroupWorker::Write(const v1::ConsumeRequest& req) {
  grpc::ClientReaderWriter<v1::ConsumeRequest, v1::ConsumeResponse>* stream;
  {
    absl::MutexLock lock(&mu_);
    stream = stream_;
  }
  if (stream == nullptr) return false;
  absl::MutexLock lock(&write_mu_);
  return stream->Write(req);
}

int GroupWorker::AckAll() {
  std::vector<int64_t> positions;
  {
    absl::MutexLock lock(&mu_);
    positions.swap(unacked_);
  }
  if (!positions.empty()) Ack(positions);
  return static_cast<int>(positions.size());
}

void GroupWorker::Ack(const std::vector<int64_t>& positions) {
  Write(AckRequest(positions));
}

void GroupWorker::Run() {
  while (!stopping_) {
    int port;
    {
      absl::MutexLock lock(&mu_);
      port = port_;
    }
    auto stub = v1::QueryService::NewStub(
        grpc::CreateChannel("127.0.0.1:" + std::to_string(port),
                            grpc::InsecureChannelCredentials()));
    grpc::ClientContext ctx;
    auto stream = stub->Consume(&ctx);
    {
      absl::MutexLock lock(&mu_);
      ctx_ = &ctx;
      stream_ = stream.get();
      unacked_.clear();  // Acknowledgements belong to their connection.
    }
    if (stopping_) ctx.TryCancel();
    joins_++;
    v1::ConsumeRequest join =
        JoinRequest(options_.group, options_.member, options_.max_unacked);
    join.mutable_join()->set_start(options_.start);
    Write(join);
    v1::ConsumeResponse r;
    while (stream->Read(&r)) {
      if (r.has_assignment()) {
        absl::MutexLock lock(&mu_);
        ++assignments_;
        partition_count_ = r.assignment().partition_count();
        partitions_.assign(r.assignment().partitions().begin(),
                           r.assignment().partitions().end());
        history_.push_back({joins_.load(), partitions_});
        continue;
      }
      const v1::AccountEntry& e = r.entry();
      {
        absl::MutexLock lock(&mu_);
        received_.push_back(
            {e.account_id(), e.entry().version(), e.entry().position(),
             query::PartitionOf(e.account_id(), partition_count_), assignments_,
             joins_.load()});
        if (!options_.ack) unacked_.push_back(e.entry().position());
      }
      if (options_.ack) Write(AckRequest({e.entry().position()}));
    }
    {
      absl::MutexLock lock(&mu_);
      ctx_ = nullptr;
      stream_ = nullptr;
    }
    grpc::Status s = stream->Finish();
    if (stopping_) return;
    if (s.error_code() != grpc::StatusCode::UNAVAILABLE &&
        s.error_code() != grpc::StatusCode::ALREADY_EXISTS) {
      absl::MutexLock lock(&mu_);
      failures_.push_back(absl::StrCat(s.error_code(), " ", s.error_message()));
      return;
    }
    absl::SleepFor(absl::Milliseconds(100));  // Then join again.
  }
}

std::vector<GroupWorker::Got> GroupWorker::received() const {
  absl::MutexLock lock(&mu_);
  return received_;
}

size_t GroupWorker::count() const {
  absl::MutexLock lock(&mu_);
  return received_.size();
}

std::vector<GroupWorker::Assigned> GroupWorker::history() const {
  absl::MutexLock lock(&mu_);
  return history_;
}

std::vector<int> GroupWorker::partitions() const {
  absl::MutexLock lock(&mu_);
  return partitions_;
}

int GroupWorker::assignments() const {
  absl::MutexLock lock(&mu_);
  return assignments_;
}

int GroupWorker::partition_count() const {
  absl::MutexLock lock(&mu_);
  return partition_count_;
}

std::vector<std::string> GroupWorker::failures() const {
  absl::MutexLock lock(&mu_);
  return failures_;
}

grpc::Status ConsumeError(int port,
                          const std::vector<v1::ConsumeRequest>& requests,
                          absl::Duration wait) {
  auto stub = v1::QueryService::NewStub(grpc::CreateChannel(
      "127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials()));
  auto ctx = Ctx(absl::ToDoubleSeconds(wait));
  auto stream = stub->Consume(ctx.get());
  for (const v1::ConsumeRequest& r : requests) {
    if (!stream->Write(r)) break;
  }
  v1::ConsumeResponse r;
  while (stream->Read(&r)) {
  }
  return stream->Finish();
}

v1::ConsumeRequest JoinRequest(const std::string& group,
                               const std::string& member, int max_unacked) {
  v1::ConsumeRequest r;
  r.mutable_join()->set_group(group);
  r.mutable_join()->set_member(member);
  r.mutable_join()->set_start(v1::JoinGroup::START_FROM_BEGINNING);
  r.mutable_join()->set_max_unacked(max_unacked);
  return r;
}

v1::ConsumeRequest AckRequest(const std::vector<int64_t>& positions) {
  v1::ConsumeRequest r;
  for (int64_t p : positions) r.mutable_ack()->add_positions(p);
  return r;
}

std::map<int, StoredPartition> StoredPartitions(const std::string& read_uri,
                                                const std::string& group) {
  pqxx::connection c(read_uri);
  pqxx::nontransaction tx(c);
  std::map<int, StoredPartition> out;
  for (const auto& row :
       tx.exec_params("SELECT partition, coalesce(owner, ''), generation, "
                      "transaction_id, position, delivered_transaction_id, "
                      "delivered_position FROM consumer_group_partitions "
                      "WHERE group_name = $1",
                      group)) {
    out[row[0].as<int>()] = {row[1].as<std::string>(), row[2].as<int64_t>(),
                             row[3].as<int64_t>(),     row[4].as<int64_t>(),
                             row[5].as<int64_t>(),     row[6].as<int64_t>()};
  }
  return out;
}

}  // namespace bank::testing

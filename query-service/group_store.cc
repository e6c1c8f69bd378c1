#include "query-service/group_store.h"

#include <map>
#include <pqxx/pqxx>

#include "common/db/array_literal.h"
#include "common/db/run.h"
#include "common/readmodel/progress_notice.h"
#include "query-service/group_logic.h"

namespace bank::query {
namespace {

// A new group: its row, and its partitions starting at the first entry or
// at the live checkpoint ($3). Nothing when the group exists.
constexpr char kCreateGroupSql[] = R"sql(
WITH g AS (
  INSERT INTO consumer_groups (group_name, partition_count) VALUES ($1, $2)
  ON CONFLICT (group_name) DO NOTHING
  RETURNING group_name, partition_count
), start AS (
  SELECT CASE WHEN $3 THEN coalesce(c.transaction_id, 0) ELSE 0 END AS tx,
         CASE WHEN $3 THEN coalesce(c.position, 0) ELSE 0 END AS pos
  FROM (SELECT 1) one
  LEFT JOIN projection_checkpoints c ON c.projection = $4
)
INSERT INTO consumer_group_partitions
  (group_name, partition, transaction_id, position,
   delivered_transaction_id, delivered_position)
SELECT g.group_name, p, s.tx, s.pos, s.tx, s.pos
FROM g, start s, generate_series(0, g.partition_count - 1) p
)sql";

constexpr char kPartitionCountSql[] = R"sql(
SELECT partition_count FROM consumer_groups WHERE group_name = $1
)sql";

// The name is free, or its lease ran out, or this session holds it already
// (a repeated join).
constexpr char kTakeMemberSql[] = R"sql(
INSERT INTO consumer_group_members AS m (group_name, member, session, lease_until)
VALUES ($1, $2, $3, now() + $4 * interval '1 millisecond')
ON CONFLICT (group_name, member) DO UPDATE
  SET session = excluded.session, lease_until = excluded.lease_until
  WHERE m.lease_until < now() OR m.session = excluded.session
RETURNING 1
)sql";

constexpr char kLockGroupSql[] = R"sql(
SELECT partition_count FROM consumer_groups WHERE group_name = $1 FOR UPDATE
)sql";

constexpr char kRenewSql[] = R"sql(
UPDATE consumer_group_members m
SET lease_until = now() + $4 * interval '1 millisecond'
FROM unnest($2::text[], $3::text[]) AS r(member, session)
WHERE m.group_name = $1 AND m.member = r.member AND m.session = r.session
)sql";

constexpr char kExpireSql[] = R"sql(
DELETE FROM consumer_group_members WHERE group_name = $1 AND lease_until < now()
)sql";

constexpr char kMembersSql[] = R"sql(
SELECT member FROM consumer_group_members WHERE group_name = $1 ORDER BY member
)sql";

constexpr char kPartitionsSql[] = R"sql(
SELECT partition, coalesce(owner, ''), generation, transaction_id, position,
       delivered_transaction_id, delivered_position
FROM consumer_group_partitions WHERE group_name = $1 ORDER BY partition
)sql";

constexpr char kReassignSql[] = R"sql(
UPDATE consumer_group_partitions p
SET owner = nullif(u.owner, ''), generation = p.generation + 1
FROM unnest($2::integer[], $3::text[]) AS u(partition, owner)
WHERE p.group_name = $1 AND p.partition = u.partition
)sql";

constexpr char kLeaveSql[] = R"sql(
DELETE FROM consumer_group_members
WHERE group_name = $1 AND member = $2 AND session = $3
)sql";

// Forward only, and only under the generation the entries were delivered
// under.
constexpr char kSaveProgressSql[] = R"sql(
UPDATE consumer_group_partitions p
SET transaction_id = CASE WHEN (u.tx, u.pos) > (p.transaction_id, p.position)
                          THEN u.tx ELSE p.transaction_id END,
    position = CASE WHEN (u.tx, u.pos) > (p.transaction_id, p.position)
                    THEN u.pos ELSE p.position END,
    delivered_transaction_id =
      CASE WHEN (u.dtx, u.dpos) > (p.delivered_transaction_id, p.delivered_position)
           THEN u.dtx ELSE p.delivered_transaction_id END,
    delivered_position =
      CASE WHEN (u.dtx, u.dpos) > (p.delivered_transaction_id, p.delivered_position)
           THEN u.dpos ELSE p.delivered_position END
FROM unnest($2::integer[], $3::bigint[], $4::bigint[], $5::bigint[],
            $6::bigint[], $7::bigint[]) AS u(partition, generation, tx, pos, dtx, dpos)
WHERE p.group_name = $1 AND p.partition = u.partition
  AND p.generation = u.generation
)sql";

void Prepare(pqxx::connection& c) {
  c.prepare("create_group", kCreateGroupSql);
  c.prepare("partition_count", kPartitionCountSql);
  c.prepare("take_member", kTakeMemberSql);
  c.prepare("lock_group", kLockGroupSql);
  c.prepare("renew", kRenewSql);
  c.prepare("expire", kExpireSql);
  c.prepare("members", kMembersSql);
  c.prepare("partitions", kPartitionsSql);
  c.prepare("reassign", kReassignSql);
  c.prepare("leave", kLeaveSql);
  c.prepare("save_progress", kSaveProgressSql);
}

int64_t Millis(absl::Duration d) { return absl::ToInt64Milliseconds(d); }

}  // namespace

GroupStore::GroupStore(const std::string& uri, int pool_size,
                       absl::Duration outage_wait)
    : pool_({.uri = uri,
             .size = pool_size,
             .on_connect = Prepare,
             .application_name = "bank-query-service-groups"}),
      outage_wait_(outage_wait) {}

template <typename Fn>
auto GroupStore::With(absl::Time deadline, const char* what, Fn fn)
    -> decltype(fn(std::declval<db::ConnectionPool::Lease&>())) {
  // Each call is idempotent: one that meets a lost connection runs again.
  return db::RunRepeatable(pool_, what, deadline, outage_wait_, std::move(fn));
}

absl::StatusOr<int> GroupStore::Join(const std::string& group,
                                     const std::string& member,
                                     const std::string& session, bool from_now,
                                     int partition_count, absl::Duration lease,
                                     absl::Time deadline) {
  return With(deadline, "joining a consumer group",
              [&](db::ConnectionPool::Lease& c) -> absl::StatusOr<int> {
                pqxx::work tx(*c);
                tx.exec_prepared("create_group", group, partition_count,
                                 from_now, readmodel::kLiveProjection);
                const int count =
                    tx.exec_prepared1("partition_count", group)[0].as<int>();
                if (tx.exec_prepared("take_member", group, member, session,
                                     Millis(lease))
                        .empty()) {
                  return absl::AlreadyExistsError(
                      "member '" + member + "' of group '" + group +
                      "' is connected already; use another name, or wait until "
                      "that connection ends");
                }
                tx.commit();
                return count;
              });
}

absl::StatusOr<GroupView> GroupStore::Rebalance(
    const std::string& group, const std::vector<std::string>& members,
    const std::vector<std::string>& sessions, absl::Duration lease,
    absl::Time deadline) {
  return With(deadline, "rebalancing a consumer group",
              [&](db::ConnectionPool::Lease& c) -> absl::StatusOr<GroupView> {
                pqxx::work tx(*c);
                pqxx::result g = tx.exec_prepared("lock_group", group);
                if (g.empty()) {
                  return absl::NotFoundError("consumer group '" + group +
                                             "' does not exist");
                }
                GroupView view;
                view.partition_count = g[0][0].as<int>();
                tx.exec_prepared("renew", group, db::ToArrayLiteral(members),
                                 db::ToArrayLiteral(sessions), Millis(lease));
                tx.exec_prepared("expire", group);
                for (const auto& row : tx.exec_prepared("members", group)) {
                  view.members.push_back(row[0].as<std::string>());
                }
                std::map<int, std::string> current;
                for (const auto& row : tx.exec_prepared("partitions", group)) {
                  PartitionState& p = view.partitions.emplace_back();
                  p.partition = row[0].as<int>();
                  p.owner = row[1].as<std::string>();
                  p.generation = row[2].as<int64_t>();
                  p.progress = {row[3].as<int64_t>(), row[4].as<int64_t>()};
                  p.delivered = {row[5].as<int64_t>(), row[6].as<int64_t>()};
                  if (!p.owner.empty()) current[p.partition] = p.owner;
                }
                std::map<int, std::string> assigned;
                for (const auto& [member, mine] :
                     Assign(view.members, view.partition_count, current)) {
                  for (int p : mine) assigned[p] = member;
                }
                std::vector<std::string> moved, owners;
                for (PartitionState& p : view.partitions) {
                  auto it = assigned.find(p.partition);
                  const std::string owner =
                      it == assigned.end() ? "" : it->second;
                  if (owner == p.owner) continue;
                  moved.push_back(std::to_string(p.partition));
                  owners.push_back(owner);
                  p.owner = owner;
                  ++p.generation;
                }
                if (!moved.empty()) {
                  tx.exec_prepared("reassign", group, db::ToArrayLiteral(moved),
                                   db::ToArrayLiteral(owners));
                }
                tx.commit();
                return view;
              });
}

absl::Status GroupStore::Leave(const std::string& group,
                               const std::string& member,
                               const std::string& session,
                               absl::Time deadline) {
  return With(deadline, "leaving a consumer group",
              [&](db::ConnectionPool::Lease& c) -> absl::Status {
                pqxx::nontransaction tx(*c);
                tx.exec_prepared("leave", group, member, session);
                return absl::OkStatus();
              });
}

absl::StatusOr<int> GroupStore::SaveProgress(
    const std::string& group, const std::vector<Progress>& updates,
    absl::Time deadline) {
  std::vector<std::string> parts, gens, txs, poss, dtxs, dposs;
  for (const Progress& u : updates) {
    parts.push_back(std::to_string(u.partition));
    gens.push_back(std::to_string(u.generation));
    txs.push_back(std::to_string(u.progress.transaction_id));
    poss.push_back(std::to_string(u.progress.position));
    dtxs.push_back(std::to_string(u.delivered.transaction_id));
    dposs.push_back(std::to_string(u.delivered.position));
  }
  return With(deadline, "saving a consumer group's progress",
              [&](db::ConnectionPool::Lease& c) -> absl::StatusOr<int> {
                // Not waiting for the WAL flush: a save lost in a database
                // crash only means those entries are delivered again (at least
                // once), and the members' acknowledgements do not wait for a
                // disk.
                pqxx::work tx(*c);
                tx.exec("SET LOCAL synchronous_commit TO off");
                pqxx::result r = tx.exec_prepared(
                    "save_progress", group, db::ToArrayLiteral(parts),
                    db::ToArrayLiteral(gens), db::ToArrayLiteral(txs),
                    db::ToArrayLiteral(poss), db::ToArrayLiteral(dtxs),
                    db::ToArrayLiteral(dposs));
                tx.commit();
                return static_cast<int>(updates.size()) -
                       static_cast<int>(r.affected_rows());
              });
}

}  // namespace bank::query

#include "query-service/stream_page_cache.h"

#include <algorithm>

namespace bank::query {

StreamPageCache::Page::Page(ReadModelReader::StreamPage page)
    : read(std::move(page)) {
  wire.reserve(read.entries.size());
  v1::ConsumeResponse r;
  for (const v1::AccountEntry& e : read.entries) {
    *r.mutable_entry() = e;
    wire.push_back(r.SerializeAsString());
  }
}

std::optional<StreamPageCache::Slice> StreamPageCache::Shared(
    EntryPosition from, int limit, absl::Time deadline) {
  std::shared_ptr<Flight> flight;
  {
    absl::MutexLock lock(&mu_);
    for (auto it = kept_.rbegin(); it != kept_.rend(); ++it) {
      const auto& at = it->page->read.at;
      // The page is the whole stretch of the stream after its own start:
      // any later start inside it is served by a part of it.
      if (it->from < from && from < at.back() ||
          it->from == from && it->limit >= limit) {
        const size_t begin =
            std::upper_bound(at.begin(), at.end(), from) - at.begin();
        return Slice{it->page, begin, true};
      }
    }
    for (const auto& f : flights_) {
      if (f->from == from && f->limit >= limit) flight = f;
    }
    if (flight != nullptr) ++joined_;
  }
  if (flight == nullptr ||
      !flight->done.WaitForNotificationWithDeadline(deadline)) {
    return std::nullopt;
  }
  // Only a full page: a short one ended where the stream ended when that
  // read began, and this caller may have been woken by entries after it.
  if (flight->page == nullptr ||
      static_cast<int>(flight->page->read.entries.size()) != flight->limit) {
    return std::nullopt;
  }
  return Slice{flight->page, 0, true};
}

absl::StatusOr<StreamPageCache::Slice> StreamPageCache::Read(
    EntryPosition from, int limit, absl::Time deadline) {
  if (std::optional<Slice> shared = Shared(from, limit, deadline)) {
    return *std::move(shared);
  }
  auto flight = std::make_shared<Flight>();
  flight->from = from;
  flight->limit = limit;
  {
    absl::MutexLock lock(&mu_);
    flights_.push_back(flight);
  }
  absl::StatusOr<ReadModelReader::StreamPage> read =
      read_(from, limit, deadline);
  std::shared_ptr<const Page> page;
  if (read.ok()) page = std::make_shared<const Page>(*std::move(read));
  const bool full =
      page != nullptr && static_cast<int>(page->read.entries.size()) == limit;
  {
    absl::MutexLock lock(&mu_);
    flights_.erase(std::find(flights_.begin(), flights_.end(), flight));
    if (full && limit > 0) {
      kept_.push_back({from, limit, page});
      if (kept_.size() > capacity_) kept_.pop_front();
    }
  }
  flight->page = page;
  flight->done.Notify();
  if (!read.ok()) return read.status();
  return Slice{page, 0, full};
}

}  // namespace bank::query

#include "query-service/stream_page_cache.h"

#include <algorithm>

namespace bank::query {

absl::StatusOr<StreamPageCache::Slice> StreamPageCache::Read(
    EntryPosition from, int limit, absl::Time deadline) {
  {
    absl::MutexLock lock(&mu_);
    for (auto it = kept_.rbegin(); it != kept_.rend(); ++it) {
      const auto& at = it->page->at;
      // The page is the whole stretch of the stream after its own start:
      // any later start inside it is served by a part of it.
      if (it->from < from && from < at.back() ||
          it->from == from && it->limit >= limit) {
        const size_t begin =
            std::upper_bound(at.begin(), at.end(), from) - at.begin();
        return Slice{it->page, begin, true};
      }
    }
  }
  absl::StatusOr<ReadModelReader::StreamPage> read =
      read_(from, limit, deadline);
  if (!read.ok()) return read.status();
  auto page =
      std::make_shared<const ReadModelReader::StreamPage>(*std::move(read));
  const bool full = static_cast<int>(page->entries.size()) == limit;
  if (full && limit > 0) {
    absl::MutexLock lock(&mu_);
    kept_.push_back({from, limit, page});
    if (kept_.size() > capacity_) kept_.pop_front();
  }
  return Slice{page, 0, full};
}

}  // namespace bank::query

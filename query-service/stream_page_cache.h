#ifndef BANK_QUERY_SERVICE_STREAM_PAGE_CACHE_H_
#define BANK_QUERY_SERVICE_STREAM_PAGE_CACHE_H_

#include <deque>
#include <functional>
#include <memory>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "query-service/read_model_reader.h"

namespace bank::query {

// Recent full pages of the entry stream, shared by the Consume streams of a
// query service: the members of a group each read the whole stream (and
// keep the entries of their partitions), mostly the same stretch at about
// the same time, so one read from the database serves them all. A page is
// kept only when it was full (there was more after it when it was read):
// its stretch of the stream can never change, since the stream grows only
// after the checkpoint. A short page (the end of the stream, live) is never
// served from here, so a stream woken by new entries always reads them.
// Thread-safe.
class StreamPageCache {
 public:
  // How a page is read from the database: ReadModelReader::ReadStream.
  using ReadFn = std::function<absl::StatusOr<ReadModelReader::StreamPage>(
      EntryPosition after, int limit, absl::Time deadline)>;
  explicit StreamPageCache(ReadFn read, size_t pages = 16)
      : read_(std::move(read)), capacity_(pages) {}

  // The entries after `from`, in the stream order, up to the end of a page.
  struct Slice {
    std::shared_ptr<const ReadModelReader::StreamPage> page;
    size_t begin = 0;  // The first entry after `from`.
    // The page was full: more may follow right away.
    bool more = false;
    absl::Span<const v1::AccountEntry> entries() const {
      return absl::MakeConstSpan(page->entries).subspan(begin);
    }
    absl::Span<const EntryPosition> at() const {
      return absl::MakeConstSpan(page->at).subspan(begin);
    }
  };
  // Up to `limit` entries after `from` (ReadModelReader::ReadStream), from
  // a kept page that has the entry right after `from` when one does.
  absl::StatusOr<Slice> Read(EntryPosition from, int limit,
                             absl::Time deadline);

 private:
  struct Kept {
    EntryPosition from;
    int limit = 0;
    std::shared_ptr<const ReadModelReader::StreamPage> page;
  };
  const ReadFn read_;
  const size_t capacity_;
  absl::Mutex mu_;
  std::deque<Kept> kept_ ABSL_GUARDED_BY(mu_);  // Newest last.
};

}  // namespace bank::query

#endif  // BANK_QUERY_SERVICE_STREAM_PAGE_CACHE_H_

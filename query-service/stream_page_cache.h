#ifndef BANK_QUERY_SERVICE_STREAM_PAGE_CACHE_H_
#define BANK_QUERY_SERVICE_STREAM_PAGE_CACHE_H_

#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
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
// Members that ask for the same start while it is being read wait for that
// one read (when it gives a full page; a short one they read again
// themselves, for the same reason). Thread-safe.
class StreamPageCache {
 public:
  // How a page is read from the database: ReadModelReader::ReadStream.
  using ReadFn = std::function<absl::StatusOr<ReadModelReader::StreamPage>(
      EntryPosition after, int limit, absl::Time deadline)>;
  explicit StreamPageCache(ReadFn read, size_t pages = 16)
      : read_(std::move(read)), capacity_(pages) {}

  // A page as read, and each of its entries as the bytes of the
  // ConsumeResponse that carries it: made once, for every member that
  // sends it.
  struct Page {
    explicit Page(ReadModelReader::StreamPage read);
    ReadModelReader::StreamPage read;
    std::vector<std::string> wire;
  };
  // The entries after `from`, in the stream order, up to the end of a page.
  struct Slice {
    std::shared_ptr<const Page> page;
    size_t begin = 0;  // The first entry after `from`.
    // The page was full: more may follow right away.
    bool more = false;
    absl::Span<const v1::AccountEntry> entries() const {
      return absl::MakeConstSpan(page->read.entries).subspan(begin);
    }
    absl::Span<const EntryPosition> at() const {
      return absl::MakeConstSpan(page->read.at).subspan(begin);
    }
    absl::Span<const std::string> wire() const {
      return absl::MakeConstSpan(page->wire).subspan(begin);
    }
  };
  // Up to `limit` entries after `from` (ReadModelReader::ReadStream), from
  // a kept page that has the entry right after `from` when one does.
  absl::StatusOr<Slice> Read(EntryPosition from, int limit,
                             absl::Time deadline);
  // How many callers waited for another's read of the same start.
  int64_t joined() const {
    absl::MutexLock lock(&mu_);
    return joined_;
  }

 private:
  struct Kept {
    EntryPosition from;
    int limit = 0;
    std::shared_ptr<const Page> page;
  };
  // A read from the database in progress; `page` is set (null: it failed)
  // before `done` is notified.
  struct Flight {
    EntryPosition from;
    int limit = 0;
    absl::Notification done;
    std::shared_ptr<const Page> page;
  };
  // A kept page, or one read by another caller meanwhile, serving `from`.
  std::optional<Slice> Shared(EntryPosition from, int limit,
                              absl::Time deadline);
  const ReadFn read_;
  const size_t capacity_;
  mutable absl::Mutex mu_;
  std::deque<Kept> kept_ ABSL_GUARDED_BY(mu_);  // Newest last.
  std::vector<std::shared_ptr<Flight>> flights_ ABSL_GUARDED_BY(mu_);
  int64_t joined_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace bank::query

#endif  // BANK_QUERY_SERVICE_STREAM_PAGE_CACHE_H_

#ifndef BANK_COMMON_UTIL_WORKER_POOL_H_
#define BANK_COMMON_UTIL_WORKER_POOL_H_

#include <deque>
#include <functional>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace bank::util {

// A fixed set of threads running submitted work, with a bounded queue so
// overload is refused at once instead of piling up. Thread-safe.
class WorkerPool {
 public:
  WorkerPool(int threads, int max_queue);
  // Runs the queued work, then joins the threads.
  ~WorkerPool();
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  // False when the queue is full (the caller sheds the request).
  bool TrySubmit(std::function<void()> work);

 private:
  void Loop();
  const size_t max_queue_;
  absl::Mutex mu_;
  std::deque<std::function<void()>> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

}  // namespace bank::util

#endif  // BANK_COMMON_UTIL_WORKER_POOL_H_

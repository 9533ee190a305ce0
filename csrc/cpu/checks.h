// Argument checks shared by the CPU kernels.
//
// Structure (dtype, shape, contiguity) is checked once at the top of each operator. Ids and row
// pointers are data that may come from a file, so the kernels that follow them check each one in
// the pass that reads it: a compare next to a cache miss costs next to nothing, and it saves a
// separate O(E) pass per call. Exceptions must not leave a parallel region, so a loop that meets a
// bad value skips it and notes it, and the operator raises ValueError after the loop. The note is
// made without a call on the hot path (a flag, or a FirstBadRead held in locals): a call in a loop
// keeps the compiler from holding the loop's invariants in registers. Loops that call anyway
// (growing vectors) record straight into a ProblemLog.
#pragma once

#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>
#include <c10/util/StringUtil.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <fstream>
#include <limits>
#include <mutex>
#include <string>

#include <unistd.h>

#include "host_device.h"

namespace gnnscale {

// A contiguous 1-D int32 or int64 id tensor.
inline void check_index_tensor(const at::Tensor& t, const char* name) {
  TORCH_CHECK_VALUE(t.dim() == 1, name, " must be 1-D, got ", t.dim(), " dimensions");
  TORCH_CHECK_VALUE(t.scalar_type() == at::kInt || t.scalar_type() == at::kLong, name,
                    " must be int32 or int64, got ", t.scalar_type());
  TORCH_CHECK_VALUE(t.is_contiguous(), name, " must be contiguous");
}

// A CSR row pointer: contiguous 1-D int64 with at least one entry.
inline void check_indptr(const at::Tensor& indptr) {
  TORCH_CHECK_VALUE(indptr.dim() == 1 && indptr.scalar_type() == at::kLong && indptr.is_contiguous() &&
                        indptr.numel() >= 1,
                    "indptr must be a contiguous 1-D int64 tensor with at least one entry");
}

// Whether id lies in [0, bound): one unsigned compare, which negative ids fail too.
template <typename T>
GNNSCALE_HOST_DEVICE inline bool in_range(T id, int64_t bound) {
  return static_cast<uint64_t>(static_cast<int64_t>(id)) < static_cast<uint64_t>(bound);
}

// Whether [begin, end) is a sound row of a CSR over num_edges >= 0 slots, i.e.
// 0 <= begin <= end <= num_edges, in two unsigned compares: a negative begin reads as at least
// 2^63, so it passes the first only with a negative end, which then fails the second; a negative
// end alone fails the second.
GNNSCALE_HOST_DEVICE inline bool row_in_bounds(int64_t begin, int64_t end, int64_t num_edges) {
  return static_cast<uint64_t>(begin) <= static_cast<uint64_t>(end) &&
         static_cast<uint64_t>(end) <= static_cast<uint64_t>(num_edges);
}

struct FirstBadRead;

// The first problem (by position) that a parallel loop met. Only bad input ever takes the lock.
class ProblemLog {
 public:
  template <typename... Args>
  C10_NOINLINE void record(int64_t position, const Args&... message) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (position >= position_) return;
    position_ = position;
    message_ = c10::str(message...);
    seen_.store(true, std::memory_order_relaxed);
  }

  // An id read at `position` that is not below `bound`; `holder` names the tensor with its verb
  // ("indices hold", "index holds"), `what` the ids ("nodes", "rows").
  template <typename T>
  C10_NOINLINE void bad_id(const char* holder, int64_t position, T id, int64_t bound, const char* what) {
    record(position, holder, " ", static_cast<int64_t>(id), " at position ", position, ", out of range for ", bound,
           " ", what);
  }

  // Row `row` of a CSR, [indptr[row], indptr[row + 1]), that is not a sound row.
  C10_NOINLINE void bad_row(int64_t row, int64_t begin, int64_t end, int64_t num_edges, const char* name = "indptr") {
    if (begin > end) {
      record(row, name, " is not monotone: ", name, "[", row + 1, "] = ", end, " < ", name, "[", row, "] = ", begin);
    } else if (begin < 0) {
      record(row, name, " holds a negative offset: ", name, "[", row, "] = ", begin);
    } else {
      record(row, name, "[", row + 1, "] = ", end, " points past the ", num_edges, " indices");
    }
  }

  // The first bad read of one parallel chunk (below), once the chunk is done.
  void take(const FirstBadRead& read, const char* holder, int64_t bound, const char* what, int64_t num_edges);

  bool seen() const { return seen_.load(std::memory_order_relaxed); }

  // Raises ValueError with the first problem recorded, if any.
  void raise_if_any() const { TORCH_CHECK_VALUE(!seen(), message_); }

 private:
  std::atomic<bool> seen_{false};
  std::mutex mutex_;
  int64_t position_ = std::numeric_limits<int64_t>::max();
  std::string message_;
};

// The first bad id or row one parallel chunk read, kept in locals so that its hot loop makes no
// call; handed to the operator's ProblemLog once the chunk is done.
struct FirstBadRead {
  bool seen = false, is_row = false;
  int64_t position = 0;  // of the id, or the row
  int64_t value = 0;     // the id, or the row's begin
  int64_t row_end = 0;

  void id(int64_t at, int64_t id) {
    if (!seen) *this = {true, false, at, id, 0};
  }
  void row(int64_t r, int64_t begin, int64_t end) {
    if (!seen) *this = {true, true, r, begin, end};
  }
};

inline void ProblemLog::take(const FirstBadRead& read, const char* holder, int64_t bound, const char* what,
                             int64_t num_edges) {
  if (!read.seen) return;
  if (read.is_row) bad_row(read.position, read.value, read.row_end, num_edges);
  else bad_id(holder, read.position, read.value, bound, what);
}

// Raises ValueError naming the first of ids[0, n) outside [0, bound), if any: the cold path of a
// hot loop that only flagged (or counted) its bad ids.
template <typename T>
C10_NOINLINE void raise_first_bad_id(const T* ids, int64_t n, int64_t bound, const char* holder, const char* what) {
  for (int64_t i = 0; i < n; ++i)
    TORCH_CHECK_VALUE(in_range(ids[i], bound), holder, " ", static_cast<int64_t>(ids[i]), " at position ", i,
                      ", out of range for ", bound, " ", what);
}

// Raises ValueError unless every one of ids[0, n) lies in [0, bound): one branch-free parallel
// pass (the largest id read as unsigned, so negative ids count as huge), for kernels whose first
// use of an id is too spread out to check it there.
template <typename T>
void check_ids(const T* ids, int64_t n, int64_t bound, const char* holder, const char* what) {
  std::atomic<uint64_t> largest{0};
  at::parallel_for(0, n, 1 << 16, [&](int64_t begin, int64_t end) {
    uint64_t local = 0;
    for (int64_t i = begin; i < end; ++i) local = std::max(local, static_cast<uint64_t>(static_cast<int64_t>(ids[i])));
    uint64_t seen = largest.load(std::memory_order_relaxed);
    while (local > seen && !largest.compare_exchange_weak(seen, local, std::memory_order_relaxed)) {
    }
  });
  if (n > 0 && largest.load() >= static_cast<uint64_t>(bound)) raise_first_bad_id(ids, n, bound, holder, what);
}

// O(1): a row pointer over num_edges slots starts at 0 and ends at num_edges. Kernels that read
// only some rows check each row they read besides.
inline void check_indptr_ends(const at::Tensor& indptr, int64_t num_edges, const char* name = "indptr") {
  const int64_t* ptr = indptr.data_ptr<int64_t>();
  const int64_t last = indptr.numel() - 1;
  TORCH_CHECK_VALUE(ptr[0] == 0, name, " must start at 0, starts at ", ptr[0]);
  TORCH_CHECK_VALUE(ptr[last] == num_edges, name, " ends at ", ptr[last], " but there are ", num_edges, " indices");
}

// O(rows), in parallel: every row of the CSR is sound, for kernels that visit every row anyway.
inline void check_row_pointers(const at::Tensor& indptr, int64_t num_edges, const char* name = "indptr") {
  check_indptr_ends(indptr, num_edges, name);
  const int64_t* ptr = indptr.data_ptr<int64_t>();
  ProblemLog problems;
  at::parallel_for(0, indptr.numel() - 1, 1 << 16, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r)
      if (C10_UNLIKELY(ptr[r] > ptr[r + 1])) problems.bad_row(r, ptr[r], ptr[r + 1], num_edges, name);
  });
  problems.raise_if_any();
}

// Memory the system can still give this process, in bytes (MemAvailable, or free pages).
inline int64_t available_memory_bytes() {
  std::ifstream meminfo("/proc/meminfo");
  std::string key;
  int64_t kib = 0;
  std::string unit;
  while (meminfo >> key >> kib >> unit)
    if (key == "MemAvailable:") return kib * 1024;
  return static_cast<int64_t>(sysconf(_SC_AVPHYS_PAGES)) * static_cast<int64_t>(sysconf(_SC_PAGESIZE));
}

// At most this many entries in one output of one call: beyond it a request is a mistake (a
// fanout of 2^40 with replacement), not a batch.
constexpr int64_t kMaxOutputEntries = int64_t(1) << 31;

// Raises ValueError, before anything is allocated, when `count` x `per_item` entries of
// `bytes_per_entry` bytes each (what: "sampled edges", ...) exceed kMaxOutputEntries or the memory
// available. Products are formed without overflow; memory is only looked up for large outputs.
inline void check_output_size(const char* what, int64_t count, int64_t per_item, int64_t bytes_per_entry) {
  if (count == 0 || per_item == 0) return;
  const bool too_many = per_item > kMaxOutputEntries / count;
  TORCH_CHECK_VALUE(!too_many, "refusing to produce ", count, " x ", per_item, " ", what, ": more than the ",
                    kMaxOutputEntries, " entries one call may produce");
  const int64_t entries = count * per_item;
  constexpr int64_t kLookUpMemoryAbove = int64_t(1) << 30;
  const int64_t bytes = entries * bytes_per_entry;
  if (bytes < kLookUpMemoryAbove) return;
  const int64_t available = available_memory_bytes();
  TORCH_CHECK_VALUE(bytes <= available, "refusing to produce ", count, " x ", per_item, " = ", entries, " ", what,
                    " (about ", bytes >> 20, " MiB): only ", available >> 20, " MiB of memory are available");
}

}  // namespace gnnscale

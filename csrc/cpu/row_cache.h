// A host cache of table rows, sized by a byte budget, in front of a table on disk.
//
// Rows live in a slab of fixed slots; an id -> slot index finds them, and an eviction policy
// chooses which slot to reuse when the slab is full:
//   s3fifo  S3-FIFO: new rows enter a small FIFO (a tenth of the slots); rows hit again while there
//           move to the main FIFO, the others leave and their ids are remembered in a ghost FIFO,
//           so that a row that comes back soon enters the main FIFO directly. The main FIFO gives
//           rows with a hit (2-bit counter) another round instead of evicting them.
//   sieve   SIEVE: one FIFO with a visited bit per row; a hand moves from the oldest row towards
//           the newest, clearing visited bits, and evicts the first unvisited row it meets.
//   clock   CLOCK: a hand sweeps the slots in a circle, clearing reference bits, and evicts the
//           first slot whose bit is clear.
//   static  a fixed set of rows, loaded once (place), never evicted; misses are not admitted.
// One mutex guards the whole cache; a call takes it once to serve its hits and once to admit
// its misses, so concurrent gathers contend only for those two short sections.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

namespace gnnscale {

// Bookkeeping counted against the budget for each cached row, on top of the row's own bytes: an
// estimate of its index entry, its queue links and counters and (S3-FIFO) a ghost id.
constexpr int64_t kCacheEntryOverheadBytes = 96;

class EvictionPolicy {
 public:
  virtual ~EvictionPolicy() = default;
  // Row `id` now lives in `slot`.
  virtual void admitted(int64_t slot, int64_t id) = 0;
  virtual void hit(int64_t slot) = 0;
  // Chooses a resident slot to free (the cache is full), forgets it and returns it.
  virtual int64_t evict() = 0;
};

struct RowCacheCounts {
  int64_t hits = 0, misses = 0, resident = 0, admitted = 0, evicted = 0;
};

class RowCache {
 public:
  RowCache(int64_t budget_bytes, int64_t row_bytes, const std::string& policy);

  bool enabled() const { return capacity_ > 0; }
  bool admits_misses() const { return policy_name_ != "static"; }
  int64_t capacity_rows() const { return capacity_; }
  const std::string& policy() const { return policy_name_; }

  // For each of the distinct ids[0, n): copies a cached row to out + out_rows[i] * row_bytes, or
  // appends i to `misses`.
  void serve(const int64_t* ids, const int64_t* out_rows, int64_t n, uint8_t* out, std::vector<int64_t>& misses);

  // Admits row ids[i], found at out + out_rows[i] * row_bytes, for each i in `which` (a no-op for
  // the static policy).
  void admit(const int64_t* ids, const int64_t* out_rows, const std::vector<int64_t>& which, const uint8_t* out);

  // Stores rows that are never evicted: ids[i] from rows + i * row_bytes, while slots are free.
  // Returns how many were placed.
  int64_t place(const int64_t* ids, int64_t n, const uint8_t* rows);

  RowCacheCounts counts() const;

 private:
  // The lock is held. Stores a row not resident yet, evicting one when the slab is full.
  void insert_locked(int64_t id, const uint8_t* row);
  uint8_t* slot_row(int64_t slot) { return slab_.get() + slot * row_bytes_; }

  int64_t row_bytes_;
  int64_t capacity_;
  std::string policy_name_;
  std::unique_ptr<EvictionPolicy> policy_;
  std::unique_ptr<uint8_t[]> slab_;  // left uninitialised: pages are committed as rows arrive
  std::unordered_map<int64_t, int64_t> slot_of_;
  std::vector<int64_t> id_of_slot_;
  int64_t next_free_slot_ = 0;  // slots below it hold rows; above it were never used
  mutable std::mutex mutex_;
  RowCacheCounts counts_;
};

}  // namespace gnnscale

#include "row_cache.h"

#include <c10/util/Exception.h>

#include <algorithm>
#include <cstring>
#include <deque>
#include <limits>
#include <utility>

namespace gnnscale {
namespace {

class S3FifoPolicy : public EvictionPolicy {
 public:
  explicit S3FifoPolicy(int64_t capacity)
      : small_target_(std::max<int64_t>(1, capacity / 10)),
        ghost_capacity_(std::max<int64_t>(1, capacity - capacity / 10)),
        frequency_(capacity, 0),
        id_of_(capacity, -1) {}

  void admitted(int64_t slot, int64_t id) override {
    id_of_[slot] = id;
    frequency_[slot] = 0;
    // A row evicted from the small FIFO not long ago was needed again: it earns the main FIFO.
    if (ghost_.erase(id)) main_.push_back(slot);
    else small_.push_back(slot);
  }

  void hit(int64_t slot) override { frequency_[slot] = std::min<uint8_t>(frequency_[slot] + 1, 3); }

  int64_t evict() override {
    while (true) {
      if (!small_.empty() && (static_cast<int64_t>(small_.size()) >= small_target_ || main_.empty())) {
        const int64_t slot = small_.front();
        small_.pop_front();
        if (frequency_[slot] > 0) {  // hit while on probation
          frequency_[slot] = 0;
          main_.push_back(slot);
          continue;
        }
        remember_ghost(id_of_[slot]);
        return slot;
      }
      const int64_t slot = main_.front();
      main_.pop_front();
      if (frequency_[slot] > 0) {  // another round, one step colder
        --frequency_[slot];
        main_.push_back(slot);
        continue;
      }
      return slot;
    }
  }

 private:
  // The ghost FIFO holds ids only; an id re-admitted meanwhile leaves a stale entry in the FIFO,
  // recognised by its sequence number when it reaches the front.
  void remember_ghost(int64_t id) {
    ghost_[id] = ++sequence_;
    ghost_fifo_.emplace_back(id, sequence_);
    while (static_cast<int64_t>(ghost_fifo_.size()) > ghost_capacity_) {
      const auto [old_id, old_sequence] = ghost_fifo_.front();
      ghost_fifo_.pop_front();
      auto it = ghost_.find(old_id);
      if (it != ghost_.end() && it->second == old_sequence) ghost_.erase(it);
    }
  }

  int64_t small_target_, ghost_capacity_;
  std::vector<uint8_t> frequency_;
  std::vector<int64_t> id_of_;
  std::deque<int64_t> small_, main_;  // slots, oldest first
  std::deque<std::pair<int64_t, uint64_t>> ghost_fifo_;
  std::unordered_map<int64_t, uint64_t> ghost_;
  uint64_t sequence_ = 0;
};

class SievePolicy : public EvictionPolicy {
 public:
  explicit SievePolicy(int64_t capacity) : newer_(capacity, -1), older_(capacity, -1), visited_(capacity, 0) {}

  void admitted(int64_t slot, int64_t) override {
    visited_[slot] = 0;
    newer_[slot] = -1;
    older_[slot] = newest_;
    if (newest_ != -1) newer_[newest_] = slot;
    newest_ = slot;
    if (oldest_ == -1) oldest_ = slot;
  }

  void hit(int64_t slot) override { visited_[slot] = 1; }

  int64_t evict() override {
    int64_t slot = hand_ != -1 ? hand_ : oldest_;
    while (visited_[slot]) {
      visited_[slot] = 0;
      slot = newer_[slot] != -1 ? newer_[slot] : oldest_;
    }
    hand_ = newer_[slot];  // -1: start again from the oldest
    unlink(slot);
    return slot;
  }

 private:
  void unlink(int64_t slot) {
    if (newer_[slot] != -1) older_[newer_[slot]] = older_[slot];
    else newest_ = older_[slot];
    if (older_[slot] != -1) newer_[older_[slot]] = newer_[slot];
    else oldest_ = newer_[slot];
  }

  std::vector<int64_t> newer_, older_;
  std::vector<uint8_t> visited_;
  int64_t newest_ = -1, oldest_ = -1, hand_ = -1;
};

// Evicts only when every slot holds a row, so the hand may sweep the slots themselves.
class ClockPolicy : public EvictionPolicy {
 public:
  explicit ClockPolicy(int64_t capacity) : referenced_(capacity, 0) {}

  void admitted(int64_t slot, int64_t) override { referenced_[slot] = 0; }
  void hit(int64_t slot) override { referenced_[slot] = 1; }

  int64_t evict() override {
    while (referenced_[hand_]) {
      referenced_[hand_] = 0;
      advance();
    }
    const int64_t slot = hand_;
    advance();
    return slot;
  }

 private:
  void advance() { hand_ = hand_ + 1 == static_cast<int64_t>(referenced_.size()) ? 0 : hand_ + 1; }

  std::vector<uint8_t> referenced_;
  int64_t hand_ = 0;
};

class StaticPolicy : public EvictionPolicy {
 public:
  void admitted(int64_t, int64_t) override {}
  void hit(int64_t) override {}
  int64_t evict() override {
    TORCH_INTERNAL_ASSERT(false, "a static cache never evicts");
    return -1;
  }
};

std::unique_ptr<EvictionPolicy> make_policy(const std::string& name, int64_t capacity) {
  if (name == "s3fifo") return std::make_unique<S3FifoPolicy>(capacity);
  if (name == "sieve") return std::make_unique<SievePolicy>(capacity);
  if (name == "clock") return std::make_unique<ClockPolicy>(capacity);
  if (name == "static") return std::make_unique<StaticPolicy>();
  TORCH_CHECK_VALUE(false, "cache policy must be one of s3fifo, sieve, clock, static; got '", name, "'");
  return nullptr;
}

}  // namespace

RowCache::RowCache(int64_t budget_bytes, int64_t row_bytes, const std::string& policy)
    : row_bytes_(row_bytes), policy_name_(policy) {
  TORCH_CHECK_VALUE(budget_bytes >= 0, "cache_bytes must be non-negative, got ", budget_bytes);
  TORCH_CHECK_VALUE(row_bytes > 0, "cached rows must hold at least one byte");
  capacity_ = budget_bytes / (row_bytes + kCacheEntryOverheadBytes);
  policy_ = make_policy(policy, capacity_);
  if (capacity_ == 0) return;
  slab_.reset(new uint8_t[capacity_ * row_bytes_]);
  id_of_slot_.assign(capacity_, -1);
  slot_of_.reserve(capacity_);
}

void RowCache::serve(const int64_t* ids, const int64_t* out_rows, int64_t n, uint8_t* out,
                     std::vector<int64_t>& misses) {
  if (!enabled()) {
    for (int64_t i = 0; i < n; ++i) misses.push_back(i);
    return;
  }
  std::lock_guard<std::mutex> lock(mutex_);
  const int64_t misses_before = static_cast<int64_t>(misses.size());
  for (int64_t i = 0; i < n; ++i) {
    auto it = slot_of_.find(ids[i]);
    if (it == slot_of_.end()) {
      misses.push_back(i);
      continue;
    }
    std::memcpy(out + out_rows[i] * row_bytes_, slot_row(it->second), row_bytes_);
    policy_->hit(it->second);
  }
  const int64_t missed = static_cast<int64_t>(misses.size()) - misses_before;
  counts_.misses += missed;
  counts_.hits += n - missed;
}

void RowCache::admit(const int64_t* ids, const int64_t* out_rows, const std::vector<int64_t>& which,
                     const uint8_t* out) {
  if (!enabled() || !admits_misses() || which.empty()) return;
  // Of a batch of misses larger than the cache only the last ones could stay.
  const size_t first = which.size() > static_cast<size_t>(capacity_) ? which.size() - capacity_ : 0;
  std::lock_guard<std::mutex> lock(mutex_);
  for (size_t k = first; k < which.size(); ++k) {
    const int64_t i = which[k];
    insert_locked(ids[i], out + out_rows[i] * row_bytes_);
  }
}

int64_t RowCache::place(const int64_t* ids, int64_t n, const uint8_t* rows) {
  std::lock_guard<std::mutex> lock(mutex_);
  int64_t placed = 0;
  for (int64_t i = 0; i < n && next_free_slot_ < capacity_; ++i) {
    if (slot_of_.count(ids[i])) continue;
    insert_locked(ids[i], rows + i * row_bytes_);
    ++placed;
  }
  return placed;
}

void RowCache::insert_locked(int64_t id, const uint8_t* row) {
  if (slot_of_.count(id)) return;  // another thread admitted it first
  int64_t slot;
  if (next_free_slot_ < capacity_) {
    slot = next_free_slot_++;
  } else {
    slot = policy_->evict();
    slot_of_.erase(id_of_slot_[slot]);
    ++counts_.evicted;
  }
  std::memcpy(slot_row(slot), row, row_bytes_);
  id_of_slot_[slot] = id;
  slot_of_.emplace(id, slot);
  policy_->admitted(slot, id);
  ++counts_.admitted;
}

RowCacheCounts RowCache::counts() const {
  std::lock_guard<std::mutex> lock(mutex_);
  RowCacheCounts counts = counts_;
  counts.resident = static_cast<int64_t>(slot_of_.size());
  return counts;
}

}  // namespace gnnscale

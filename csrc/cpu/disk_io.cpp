#include "disk_io.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <pthread.h>
#include <linux/io_uring.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "checks.h"

namespace gnnscale {

// Blocks [offset, offset + length) of the file, read in one request, that hold the rows
// ids[first, last) of a gather's sorted misses.
struct Extent {
  int64_t offset;      // file offset of its first block
  int64_t length;      // whole blocks; the last block of the file may come back short
  int64_t needed_end;  // one past the last byte its last row needs
  int64_t first, last;
};

namespace {

constexpr unsigned kRingEntries = 128;
// Larger extents gain little bandwidth and delay the rows waiting in them.
constexpr int64_t kMaxExtentBytes = 256 << 10;
// A gap of at most this many unneeded blocks between two rows is read rather than split into two
// requests: one request of three blocks costs less than two of one.
constexpr int64_t kMaxGapBlocks = 2;
constexpr int64_t kMaxInFlightBytes = 32 << 20;
constexpr int64_t kMemoryAlignment = 4096;
constexpr int kPreadThreads = 8;
constexpr int64_t kDefaultBlockBytes = 4096;

int64_t round_up(int64_t value, int64_t multiple) { return (value + multiple - 1) / multiple * multiple; }

class AlignedBuffer {
 public:
  explicit AlignedBuffer(int64_t bytes) {
    void* memory = nullptr;
    const auto size = static_cast<size_t>(round_up(std::max<int64_t>(bytes, 1), kMemoryAlignment));
    const int rc = posix_memalign(&memory, kMemoryAlignment, size);
    TORCH_CHECK(rc == 0, "cannot allocate ", bytes, " bytes of aligned read buffers: ", std::strerror(rc));
    data_.reset(static_cast<uint8_t*>(memory));
  }
  uint8_t* get() const { return data_.get(); }
  // Gives the memory up without freeing it: for a buffer the kernel may still write into.
  void abandon() { (void)data_.release(); }

 private:
  struct Free {
    void operator()(uint8_t* p) const { std::free(p); }
  };
  std::unique_ptr<uint8_t, Free> data_;
};

// ------------------------------------------------------------------ io_uring, raw interface

int sys_io_uring_setup(unsigned entries, io_uring_params* params) {
  return static_cast<int>(syscall(__NR_io_uring_setup, entries, params));
}

int sys_io_uring_enter(int fd, unsigned to_submit, unsigned min_complete, unsigned flags) {
  return static_cast<int>(syscall(__NR_io_uring_enter, fd, to_submit, min_complete, flags, nullptr, 0));
}

// One submission and one completion ring, used by a single thread.
class Ring {
 public:
  // nullptr, with `error` set to an errno, when the kernel refuses a ring.
  static std::unique_ptr<Ring> create(unsigned entries, int& error) {
    std::unique_ptr<Ring> ring(new Ring());
    io_uring_params params;
    // One thread submits and reaps, and it reaps only inside io_uring_enter: the kernel may then
    // run completion work in that call instead of interrupting the thread (Linux 6.1+).
    std::memset(&params, 0, sizeof(params));
    params.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
    ring->fd_ = sys_io_uring_setup(entries, &params);
    if (ring->fd_ < 0 && errno == EINVAL) {  // an older kernel
      std::memset(&params, 0, sizeof(params));
      ring->fd_ = sys_io_uring_setup(entries, &params);
    }
    if (ring->fd_ < 0) {
      error = errno;
      return nullptr;
    }
    if (!ring->map(params)) {
      error = errno;
      return nullptr;
    }
    return ring;
  }

  ~Ring() {
    if (sqes_ != MAP_FAILED) munmap(sqes_, sqes_bytes_);
    if (cq_ring_ != MAP_FAILED && cq_ring_ != sq_ring_) munmap(cq_ring_, cq_ring_bytes_);
    if (sq_ring_ != MAP_FAILED) munmap(sq_ring_, sq_ring_bytes_);
    if (fd_ >= 0) close(fd_);
  }

  unsigned entries() const { return sq_entries_; }

  // Queues a read; the caller keeps at most entries() reads queued or in flight.
  void queue_read(int fd, void* buffer, int64_t length, int64_t offset, uint64_t tag) {
    const unsigned index = local_tail_ & *sq_mask_;
    io_uring_sqe* sqe = &sqes_[index];
    std::memset(sqe, 0, sizeof(*sqe));
    sqe->opcode = IORING_OP_READ;
    sqe->fd = fd;
    sqe->addr = reinterpret_cast<uint64_t>(buffer);
    sqe->len = static_cast<uint32_t>(length);
    sqe->off = static_cast<uint64_t>(offset);
    sqe->user_data = tag;
    sq_array_[index] = index;
    ++local_tail_;
    ++queued_;
  }

  unsigned queued() const { return queued_; }

  // Hands the queued reads to the kernel and waits for at least `wait_for` completions. Returns 0
  // or a negative errno; EINTR, EAGAIN and EBUSY only ask to try again.
  int submit_and_wait(unsigned wait_for) {
    __atomic_store_n(sq_tail_, local_tail_, __ATOMIC_RELEASE);
    const int taken = sys_io_uring_enter(fd_, queued_, wait_for, wait_for ? IORING_ENTER_GETEVENTS : 0);
    if (taken < 0) return -errno;
    queued_ -= std::min<unsigned>(queued_, static_cast<unsigned>(taken));
    return 0;
  }

  // Waits for `count` completions without submitting anything.
  int wait(unsigned count) {
    const int rc = sys_io_uring_enter(fd_, 0, count, IORING_ENTER_GETEVENTS);
    return rc < 0 ? -errno : 0;
  }

  // Calls fn(tag, result) for every completion that has arrived.
  template <typename Fn>
  void reap(Fn&& fn) {
    unsigned head = *cq_head_;
    const unsigned tail = __atomic_load_n(cq_tail_, __ATOMIC_ACQUIRE);
    for (; head != tail; ++head) {
      const io_uring_cqe& cqe = cqes_[head & *cq_mask_];
      fn(cqe.user_data, cqe.res);
    }
    __atomic_store_n(cq_head_, head, __ATOMIC_RELEASE);
  }

 private:
  Ring() = default;

  bool map(const io_uring_params& params) {
    sq_entries_ = params.sq_entries;
    sq_ring_bytes_ = params.sq_off.array + params.sq_entries * sizeof(unsigned);
    cq_ring_bytes_ = params.cq_off.cqes + params.cq_entries * sizeof(io_uring_cqe);
    const bool one_mapping = params.features & IORING_FEAT_SINGLE_MMAP;
    if (one_mapping) sq_ring_bytes_ = cq_ring_bytes_ = std::max(sq_ring_bytes_, cq_ring_bytes_);
    sq_ring_ =
        mmap(nullptr, sq_ring_bytes_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd_, IORING_OFF_SQ_RING);
    if (sq_ring_ == MAP_FAILED) return false;
    cq_ring_ = one_mapping ? sq_ring_
                           : mmap(nullptr, cq_ring_bytes_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd_,
                                  IORING_OFF_CQ_RING);
    if (cq_ring_ == MAP_FAILED) return false;
    sqes_bytes_ = params.sq_entries * sizeof(io_uring_sqe);
    void* sqes = mmap(nullptr, sqes_bytes_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd_, IORING_OFF_SQES);
    if (sqes == MAP_FAILED) return false;
    sqes_ = static_cast<io_uring_sqe*>(sqes);
    auto* sq = static_cast<uint8_t*>(sq_ring_);
    auto* cq = static_cast<uint8_t*>(cq_ring_);
    sq_tail_ = reinterpret_cast<unsigned*>(sq + params.sq_off.tail);
    sq_mask_ = reinterpret_cast<unsigned*>(sq + params.sq_off.ring_mask);
    sq_array_ = reinterpret_cast<unsigned*>(sq + params.sq_off.array);
    cq_head_ = reinterpret_cast<unsigned*>(cq + params.cq_off.head);
    cq_tail_ = reinterpret_cast<unsigned*>(cq + params.cq_off.tail);
    cq_mask_ = reinterpret_cast<unsigned*>(cq + params.cq_off.ring_mask);
    cqes_ = reinterpret_cast<io_uring_cqe*>(cq + params.cq_off.cqes);
    local_tail_ = *sq_tail_;
    return true;
  }

  int fd_ = -1;
  unsigned sq_entries_ = 0;
  void* sq_ring_ = MAP_FAILED;
  void* cq_ring_ = MAP_FAILED;
  io_uring_sqe* sqes_ = static_cast<io_uring_sqe*>(MAP_FAILED);
  size_t sq_ring_bytes_ = 0, cq_ring_bytes_ = 0, sqes_bytes_ = 0;
  unsigned *sq_tail_ = nullptr, *sq_mask_ = nullptr, *sq_array_ = nullptr;
  unsigned *cq_head_ = nullptr, *cq_tail_ = nullptr, *cq_mask_ = nullptr;
  io_uring_cqe* cqes_ = nullptr;
  unsigned local_tail_ = 0, queued_ = 0;
};

// Each thread that gathers gets its own ring, on its first gather, so loader threads never
// share one; it serves every table the thread reads.
struct ThreadRing {
  std::unique_ptr<Ring> ring;
  int error = 0;
  bool tried = false;
};
thread_local ThreadRing this_thread;

// The next gather on this thread makes a new ring: in a forked child (a DataLoader worker), whose
// inherited ring is its parent's, and after a ring failed in a way that may leave reads queued.
void forget_this_thread_ring() {
  this_thread.ring.reset();
  this_thread.tried = false;
}

Ring* this_thread_ring(int& error) {
  static const int at_fork = pthread_atfork(nullptr, nullptr, forget_this_thread_ring);
  (void)at_fork;
  if (!this_thread.tried) {
    this_thread.tried = true;
    this_thread.ring = Ring::create(kRingEntries, this_thread.error);
  }
  error = this_thread.error;
  return this_thread.ring.get();
}


// ------------------------------------------------------------------ planning

// Extents covering rows ids[0, n) (sorted, distinct): neighbouring rows share a request while
// the request stays under kMaxExtentBytes, across gaps of at most kMaxGapBlocks blocks. A row is
// never split between requests, so a row longer than kMaxExtentBytes gets one of its own.
std::vector<Extent> plan_extents(const int64_t* ids, int64_t n, int64_t data_offset, int64_t row_bytes,
                                 int64_t block) {
  std::vector<Extent> extents;
  for (int64_t j = 0; j < n; ++j) {
    const int64_t begin = data_offset + ids[j] * row_bytes, end = begin + row_bytes;
    const int64_t first_block = begin / block * block, end_block = round_up(end, block);
    if (!extents.empty()) {
      Extent& last = extents.back();
      const int64_t last_end = last.offset + last.length;
      if (first_block <= last_end + kMaxGapBlocks * block && end_block - last.offset <= kMaxExtentBytes) {
        last.length = end_block - last.offset;
        last.needed_end = end;
        last.last = j + 1;
        continue;
      }
    }
    extents.push_back({first_block, end_block - first_block, end, j, j + 1});
  }
  return extents;
}

int64_t longest_extent(const std::vector<Extent>& extents) {
  int64_t longest = 0;
  for (const Extent& extent : extents) longest = std::max(longest, extent.length);
  return round_up(longest, kMemoryAlignment);
}

enum class ReadProgress { kComplete, kContinue, kFailed };

}  // namespace

// ------------------------------------------------------------------ the table

DiskTable::DiskTable(std::string path, int64_t data_offset, int64_t num_rows, int64_t row_bytes, std::string engine,
                     bool direct, int64_t cache_bytes, std::string cache_policy)
    : path_(std::move(path)),
      data_offset_(data_offset),
      num_rows_(num_rows),
      row_bytes_(row_bytes),
      cache_(cache_bytes, std::max<int64_t>(row_bytes, 1), cache_policy) {
  TORCH_CHECK_VALUE(data_offset >= 0 && num_rows >= 0 && row_bytes > 0,
                    "a table on disk needs offset >= 0, rows >= 0 and rows of at least one byte; got offset ",
                    data_offset, ", ", num_rows, " rows of ", row_bytes, " bytes");
  TORCH_CHECK_VALUE(engine == "auto" || engine == "io_uring" || engine == "pread",
                    "engine must be 'auto', 'io_uring' or 'pread', got '", engine, "'");
  const int flags = O_RDONLY | O_CLOEXEC;
  file_.reset(open(path_.c_str(), flags | (direct ? O_DIRECT : 0)));
  direct_ = direct && file_.get() >= 0;
  if (file_.get() < 0 && direct && errno == EINVAL) {
    file_.reset(open(path_.c_str(), flags));
    fallback_note_ = "the filesystem refused O_DIRECT, so reads go through the page cache";
  }
  TORCH_CHECK_VALUE(file_.get() >= 0, "cannot open ", path_, ": ", std::strerror(errno));
  const int fd = file_.get();

  struct statx info;
  std::memset(&info, 0, sizeof(info));
  unsigned mask = STATX_SIZE;
#ifdef STATX_DIOALIGN
  mask |= STATX_DIOALIGN;
#endif
  if (statx(fd, "", AT_EMPTY_PATH, mask, &info) == 0) {
    file_bytes_ = static_cast<int64_t>(info.stx_size);
#ifdef STATX_DIOALIGN
    if (direct_ && (info.stx_mask & STATX_DIOALIGN) && info.stx_dio_offset_align > 0)
      block_bytes_ = info.stx_dio_offset_align;
#endif
  } else {
    struct stat plain;
    TORCH_CHECK(fstat(fd, &plain) == 0, "cannot stat ", path_, ": ", std::strerror(errno));
    file_bytes_ = plain.st_size;
  }
  if (!direct_) block_bytes_ = kDefaultBlockBytes;
  const int64_t table_end = data_offset_ + num_rows_ * row_bytes_;
  TORCH_CHECK_VALUE(file_bytes_ >= table_end, path_, " is ", file_bytes_,
                    " bytes, shorter than the table it should hold (", num_rows_, " rows of ", row_bytes_,
                    " bytes from byte ", data_offset_, " end at byte ", table_end, ")");

  if (engine == "pread") {
    engine_ = DiskEngine::kPread;
    engine_forced_ = true;
    return;
  }
  int error = 0;
  const bool have_ring = this_thread_ring(error) != nullptr;
  engine_forced_ = engine == "io_uring";
  if (!have_ring && engine_forced_) {
    TORCH_CHECK(false, "io_uring is not available here: io_uring_setup failed: ", std::strerror(error));
  }
  engine_ = have_ring ? DiskEngine::kIoUring : DiskEngine::kPread;
  if (!have_ring) {
    fallback_note_ += std::string(fallback_note_.empty() ? "" : "; ") + "io_uring_setup failed (" +
                      std::strerror(error) + "), so reads use pread";
  }
}

FileDescriptor::~FileDescriptor() { reset(-1); }

void FileDescriptor::reset(int fd) {
  if (fd_ >= 0) close(fd_);
  fd_ = fd;
}

void DiskTable::gather(const at::Tensor& index, const c10::optional<at::Tensor>& positions, const at::Tensor& out) {
  TORCH_CHECK_VALUE(index.dim() == 1 && index.scalar_type() == at::kLong && index.is_contiguous() && index.is_cpu(),
                    "index must be a contiguous 1-D int64 CPU tensor");
  TORCH_CHECK_VALUE(out.is_cpu() && out.dim() == 2 && out.is_contiguous() &&
                        out.size(1) * out.element_size() == row_bytes_,
                    "out must be a contiguous 2-D CPU tensor whose rows hold ", row_bytes_, " bytes");
  const int64_t n = index.numel();
  const int64_t* ids = index.data_ptr<int64_t>();
  const int64_t* targets = nullptr;
  if (positions.has_value()) {
    const at::Tensor& p = *positions;
    TORCH_CHECK_VALUE(p.dim() == 1 && p.scalar_type() == at::kLong && p.is_contiguous() && p.numel() == n,
                      "positions must be a contiguous 1-D int64 tensor with one entry per id");
    targets = p.data_ptr<int64_t>();
    check_ids(targets, n, out.size(0), "positions hold", "output rows");
  } else {
    TORCH_CHECK_VALUE(out.size(0) >= n, "out has ", out.size(0), " rows, fewer than the ", n, " ids");
  }
  rows_requested_ += n;
  ++gathers_;
  if (n == 0) return;

  // (id, output row), sorted by id: reads in file order, and duplicates side by side.
  std::vector<std::pair<int64_t, int64_t>> requests(n);
  for (int64_t i = 0; i < n; ++i) requests[i] = {ids[i], targets ? targets[i] : i};
  std::sort(requests.begin(), requests.end());
  if (!in_range(requests.front().first, num_rows_) || !in_range(requests.back().first, num_rows_))
    raise_first_bad_id(ids, n, num_rows_, "index holds", "rows");

  std::vector<int64_t> unique_ids, first_rows;
  std::vector<std::pair<int64_t, int64_t>> copies;  // (output row, output row holding its id)
  unique_ids.reserve(n);
  first_rows.reserve(n);
  for (const auto& [id, row] : requests) {
    if (!unique_ids.empty() && unique_ids.back() == id) {
      copies.emplace_back(row, first_rows.back());
      continue;
    }
    unique_ids.push_back(id);
    first_rows.push_back(row);
  }
  auto* out_bytes = static_cast<uint8_t*>(out.data_ptr());
  std::vector<int64_t> misses;
  cache_.serve(unique_ids.data(), first_rows.data(), static_cast<int64_t>(unique_ids.size()), out_bytes, misses);
  std::vector<int64_t> miss_ids(misses.size()), miss_rows(misses.size());
  for (size_t k = 0; k < misses.size(); ++k) {
    miss_ids[k] = unique_ids[misses[k]];
    miss_rows[k] = first_rows[misses[k]];
  }
  read_rows(miss_ids.data(), miss_rows.data(), static_cast<int64_t>(miss_ids.size()), out_bytes);
  cache_.admit(unique_ids.data(), first_rows.data(), misses, out_bytes);

  const int64_t grain = std::max<int64_t>(256, 262144 / row_bytes_);
  at::parallel_for(0, static_cast<int64_t>(copies.size()), grain, [&](int64_t begin, int64_t end) {
    for (int64_t c = begin; c < end; ++c)
      std::memcpy(out_bytes + copies[c].first * row_bytes_, out_bytes + copies[c].second * row_bytes_, row_bytes_);
  });
}

int64_t DiskTable::load_static(const at::Tensor& ids) {
  TORCH_CHECK_VALUE(cache_.policy() == "static",
                    "hot rows are loaded into a static cache only; this cache's policy is ", cache_.policy());
  TORCH_CHECK_VALUE(ids.dim() == 1 && ids.scalar_type() == at::kLong && ids.is_contiguous() && ids.is_cpu(),
                    "hot ids must be a contiguous 1-D int64 CPU tensor");
  std::vector<int64_t> hot(ids.data_ptr<int64_t>(), ids.data_ptr<int64_t>() + ids.numel());
  std::sort(hot.begin(), hot.end());
  hot.erase(std::unique(hot.begin(), hot.end()), hot.end());
  const int64_t count = static_cast<int64_t>(hot.size());
  check_ids(hot.data(), count, num_rows_, "hot ids hold", "rows");
  TORCH_CHECK_VALUE(count <= cache_.capacity_rows(), count, " hot rows do not fit in the cache, which holds ",
                    cache_.capacity_rows(), " rows of ", row_bytes_, " bytes (plus ", kCacheEntryOverheadBytes,
                    " bytes each)");
  if (count == 0) return 0;
  std::vector<uint8_t> rows(static_cast<size_t>(count * row_bytes_));
  std::vector<int64_t> targets(count);
  for (int64_t i = 0; i < count; ++i) targets[i] = i;
  read_rows(hot.data(), targets.data(), count, rows.data());
  return cache_.place(hot.data(), count, rows.data());
}

void DiskTable::read_rows(const int64_t* ids, const int64_t* out_rows, int64_t n, uint8_t* out) {
  if (n == 0) return;
  rows_from_disk_ += n;
  bytes_needed_ += n * row_bytes_;
  const std::vector<Extent> extents = plan_extents(ids, n, data_offset_, row_bytes_, block_bytes_);
  extents_read_ += static_cast<int64_t>(extents.size());
  if (engine_ == DiskEngine::kIoUring) {
    int error = 0;
    if (this_thread_ring(error) != nullptr) return read_extents_io_uring(extents, ids, out_rows, out);
    TORCH_CHECK(!engine_forced_, "io_uring is not available on this thread: io_uring_setup failed: ",
                std::strerror(error));
  }
  read_extents_pread(extents, ids, out_rows, out);
}

void DiskTable::deliver(const Extent& extent, const uint8_t* buffer, const int64_t* ids, const int64_t* out_rows,
                        uint8_t* out) const {
  for (int64_t j = extent.first; j < extent.last; ++j)
    std::memcpy(out + out_rows[j] * row_bytes_, buffer + (data_offset_ + ids[j] * row_bytes_ - extent.offset),
                row_bytes_);
}

std::string DiskTable::describe_error(const Extent& extent, int64_t done, int error) const {
  return c10::str("reading ", path_, " at byte offset ", extent.offset + done, " (", extent.length - done,
                  " bytes) failed: ", std::strerror(error));
}

// `got` bytes arrived for the extent, of which `done` bytes were read before.
static ReadProgress account(const Extent& extent, int64_t got, int64_t& done, bool direct, int64_t block,
                            const std::string& path, std::string& message) {
  const int64_t before = done;
  done += got;
  if (extent.offset + done >= extent.needed_end) return ReadProgress::kComplete;
  if (got == 0) {
    message = c10::str(path, " ends at byte ", extent.offset + done, ", before byte ", extent.needed_end,
                       " that the table needs: the file is shorter than the table (truncated since it was opened?)");
    return ReadProgress::kFailed;
  }
  // A short read before the end: read the rest, from a block boundary when reads are direct.
  if (direct) done = done / block * block;
  if (done <= before) {
    message = c10::str("reading ", path, " at byte offset ", extent.offset + before, " makes no progress");
    return ReadProgress::kFailed;
  }
  return ReadProgress::kContinue;
}

void DiskTable::read_extents_io_uring(const std::vector<Extent>& extents, const int64_t* ids, const int64_t* out_rows,
                                      uint8_t* out) {
  int ring_error = 0;
  Ring& ring = *this_thread_ring(ring_error);
  const int64_t stride = longest_extent(extents);
  const int64_t slots = std::max<int64_t>(
      1, std::min<int64_t>({static_cast<int64_t>(ring.entries()), static_cast<int64_t>(extents.size()),
                            kMaxInFlightBytes / stride}));
  AlignedBuffer arena(slots * stride);
  std::vector<int64_t> slot_extent(slots, -1), slot_done(slots, 0), free_slots(slots);
  for (int64_t s = 0; s < slots; ++s) free_slots[s] = slots - 1 - s;
  size_t next = 0;
  int64_t in_flight = 0;
  std::string error;

  // After io_uring_enter itself fails, nothing more is submitted: the reads the kernel holds are
  // only waited for, since it writes into the arena until they complete.
  bool ring_failed = false;

  auto finish = [&](int64_t slot) {
    --in_flight;
    free_slots.push_back(slot);
  };
  auto queue = [&](int64_t slot) {
    if (ring_failed) return finish(slot);
    const Extent& extent = extents[slot_extent[slot]];
    const int64_t done = slot_done[slot];
    ring.queue_read(file_.get(), arena.get() + slot * stride + done, extent.length - done, extent.offset + done,
                    static_cast<uint64_t>(slot));
    ++reads_submitted_;
  };
  auto on_completion = [&](uint64_t tag, int result) {
    const int64_t slot = static_cast<int64_t>(tag);
    const Extent& extent = extents[slot_extent[slot]];
    if (result == -EINTR || result == -EAGAIN) return queue(slot);
    if (result < 0) {
      if (error.empty()) error = describe_error(extent, slot_done[slot], -result);
      return finish(slot);
    }
    bytes_read_ += result;
    std::string message;
    switch (account(extent, result, slot_done[slot], direct_, block_bytes_, path_, message)) {
      case ReadProgress::kComplete:
        deliver(extent, arena.get() + slot * stride, ids, out_rows, out);
        return finish(slot);
      case ReadProgress::kContinue:
        return queue(slot);
      case ReadProgress::kFailed:
        if (error.empty()) error = message;
        return finish(slot);
    }
  };

  // After an error nothing new is started; what is in flight is waited for.
  while (true) {
    while (error.empty() && next < extents.size() && !free_slots.empty()) {
      const int64_t slot = free_slots.back();
      free_slots.pop_back();
      slot_extent[slot] = static_cast<int64_t>(next++);
      slot_done[slot] = 0;
      ++in_flight;
      queue(slot);
    }
    if (in_flight == 0) break;
    const int rc = ring_failed ? ring.wait(1) : ring.submit_and_wait(1);
    if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY) {
      if (error.empty()) error = c10::str("io_uring_enter failed while reading ", path_, ": ", std::strerror(-rc));
      if (ring_failed) {  // the kernel's reads cannot be waited for: leave it the memory
        arena.abandon();
        break;
      }
      ring_failed = true;
      in_flight -= ring.queued();  // never taken by the kernel
    }
    ring.reap(on_completion);
  }
  if (ring_failed) forget_this_thread_ring();
  TORCH_CHECK(error.empty(), error);
}

void DiskTable::read_extents_pread(const std::vector<Extent>& extents, const int64_t* ids, const int64_t* out_rows,
                                   uint8_t* out) {
  const int64_t stride = longest_extent(extents);
  std::atomic<size_t> next{0};
  std::atomic<bool> failed{false};
  std::mutex error_mutex;
  std::string error;
  auto fail = [&](const std::string& message) {
    std::lock_guard<std::mutex> lock(error_mutex);
    if (error.empty()) error = message;
    failed = true;
  };
  // Runs on helper threads too: nothing may escape it.
  auto work = [&]() noexcept {
    try {
      AlignedBuffer buffer(stride);
      for (size_t k; !failed && (k = next.fetch_add(1)) < extents.size();) {
        const Extent& extent = extents[k];
        int64_t done = 0;
        while (true) {
          const ssize_t got = pread(file_.get(), buffer.get() + done, extent.length - done, extent.offset + done);
          ++reads_submitted_;
          if (got < 0) {
            if (errno == EINTR || errno == EAGAIN) continue;
            return fail(describe_error(extent, done, errno));
          }
          bytes_read_ += got;
          std::string message;
          const ReadProgress progress = account(extent, got, done, direct_, block_bytes_, path_, message);
          if (progress == ReadProgress::kComplete) break;
          if (progress == ReadProgress::kFailed) return fail(message);
        }
        deliver(extent, buffer.get(), ids, out_rows, out);
      }
    } catch (const std::exception& e) {
      fail(e.what());
    }
  };
  const int64_t workers = std::min<int64_t>(kPreadThreads, static_cast<int64_t>(extents.size()));
  std::vector<std::thread> helpers;
  for (int64_t w = 1; w < workers; ++w) {
    try {
      helpers.emplace_back(work);
    } catch (const std::system_error&) {
      break;  // fewer threads: the others share the work
    }
  }
  work();
  for (std::thread& helper : helpers) helper.join();
  TORCH_CHECK(error.empty(), error);
}

c10::Dict<std::string, int64_t> DiskTable::stats() const {
  const RowCacheCounts cache = cache_.counts();
  c10::Dict<std::string, int64_t> stats;
  stats.insert("bytes_read", bytes_read_.load());
  stats.insert("bytes_needed", bytes_needed_.load());
  stats.insert("extents", extents_read_.load());
  stats.insert("reads", reads_submitted_.load());
  stats.insert("rows_requested", rows_requested_.load());
  stats.insert("rows_from_disk", rows_from_disk_.load());
  stats.insert("gathers", gathers_.load());
  stats.insert("block_bytes", block_bytes_);
  stats.insert("direct", direct_ ? 1 : 0);
  stats.insert("cache_hits", cache.hits);
  stats.insert("cache_misses", cache.misses);
  stats.insert("cache_rows", cache.resident);
  stats.insert("cache_capacity_rows", cache_.capacity_rows());
  stats.insert("cache_bytes_used", cache.resident * (row_bytes_ + kCacheEntryOverheadBytes));
  stats.insert("cache_entry_overhead_bytes", kCacheEntryOverheadBytes);
  stats.insert("cache_evictions", cache.evicted);
  return stats;
}

void disk_gather_cpu(const c10::intrusive_ptr<DiskTable>& table, const at::Tensor& index,
                     const c10::optional<at::Tensor>& positions, const at::Tensor& out) {
  table->gather(index, positions, out);
}

}  // namespace gnnscale

// Rows of a table stored in a file (a .npy data section, or a raw file), read by id.
//
// The file is opened with O_DIRECT where the filesystem allows it, so the page cache keeps no
// second copy of what the host cache (row_cache.h) already holds. A gather sorts and de-duplicates
// its ids, serves what the cache holds, turns the other rows into the aligned blocks they cover,
// coalesces neighbouring blocks into extents, reads the extents (io_uring, one ring per calling
// thread, or pread on a few threads) and copies each row to every output row that asked for it.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/Optional.h>
#include <torch/custom_class.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "row_cache.h"

namespace gnnscale {

struct Extent;

enum class DiskEngine { kIoUring, kPread };

// A file descriptor closed with its owner, also when the owner's constructor throws.
class FileDescriptor {
 public:
  FileDescriptor() = default;
  FileDescriptor(const FileDescriptor&) = delete;
  FileDescriptor& operator=(const FileDescriptor&) = delete;
  ~FileDescriptor();
  void reset(int fd);
  int get() const { return fd_; }

 private:
  int fd_ = -1;
};

class DiskTable : public torch::CustomClassHolder {
 public:
  // engine: "auto" (io_uring where the kernel allows it, else pread), "io_uring" or "pread".
  // direct: ask for O_DIRECT (refused by the filesystem: a buffered descriptor, and direct() says so).
  DiskTable(std::string path, int64_t data_offset, int64_t num_rows, int64_t row_bytes, std::string engine,
            bool direct, int64_t cache_bytes, std::string cache_policy);

  // out[positions[i]] (out[i] without positions) = row index[i]; out is a contiguous CPU tensor
  // whose rows hold row_bytes bytes.
  void gather(const at::Tensor& index, const c10::optional<at::Tensor>& positions, const at::Tensor& out);

  // Reads rows `ids` once and keeps them in the cache for good (the static policy). Returns how
  // many were placed.
  int64_t load_static(const at::Tensor& ids);

  c10::Dict<std::string, int64_t> stats() const;
  std::string engine() const { return engine_ == DiskEngine::kIoUring ? "io_uring" : "pread"; }
  // Why the engine or the descriptor is not the one asked for ("" when it is).
  std::string fallback_note() const { return fallback_note_; }
  bool direct() const { return direct_; }
  int64_t block_bytes() const { return block_bytes_; }
  int64_t cache_capacity_rows() const { return cache_.capacity_rows(); }

 private:
  // Reads the rows ids[0, n) (sorted, distinct) to out + out_rows[j] * row_bytes.
  void read_rows(const int64_t* ids, const int64_t* out_rows, int64_t n, uint8_t* out);
  void read_extents_io_uring(const std::vector<Extent>& extents, const int64_t* ids, const int64_t* out_rows,
                             uint8_t* out);
  void read_extents_pread(const std::vector<Extent>& extents, const int64_t* ids, const int64_t* out_rows,
                          uint8_t* out);
  // Copies the rows of one extent, now in `buffer`, to their output rows.
  void deliver(const Extent& extent, const uint8_t* buffer, const int64_t* ids, const int64_t* out_rows,
               uint8_t* out) const;
  std::string describe_error(const Extent& extent, int64_t done, int error) const;

  std::string path_;
  FileDescriptor file_;
  bool direct_ = false;
  int64_t block_bytes_ = 4096;
  int64_t file_bytes_ = 0;
  int64_t data_offset_, num_rows_, row_bytes_;
  DiskEngine engine_ = DiskEngine::kPread;
  bool engine_forced_ = false;
  std::string fallback_note_;
  RowCache cache_;
  std::atomic<int64_t> bytes_read_{0}, bytes_needed_{0}, extents_read_{0}, reads_submitted_{0};
  std::atomic<int64_t> rows_requested_{0}, rows_from_disk_{0}, gathers_{0};
};

void disk_gather_cpu(const c10::intrusive_ptr<DiskTable>& table, const at::Tensor& index,
                     const c10::optional<at::Tensor>& positions, const at::Tensor& out);

}  // namespace gnnscale

// Read-only memory mappings of whole files, plus the copy / scan loops that read from them.
// Plain C++17 + POSIX (mmap, madvise); on platforms without mmap, open() throws E_IO and the
// TypeScript side falls back to positional file reads.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace pp {

enum class Advice { Normal, Sequential, Random, WillNeed, DontNeed };

// One mapping of a whole file. Owned through std::shared_ptr: whoever may still touch the
// memory (the JS handle, an ArrayBuffer over it, a job in flight) holds a reference, and the
// destructor (munmap) runs when the last one is dropped.
class MappedFile {
 public:
  // Maps `path` read-only. A zero-length file gives size() == 0 and data() == nullptr.
  // Throws pp::Error("E_IO", …) naming the file and the system error.
  static std::shared_ptr<MappedFile> open(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }
  // A hint for the kernel's read-ahead over [offset, offset + length); errors are ignored.
  void advise(Advice advice, size_t offset, size_t length) const;

 private:
  MappedFile(std::string path, const uint8_t* data, size_t size) : path_(std::move(path)), data_(data), size_(size) {}
  std::string path_;
  const uint8_t* data_;
  size_t size_;
};

// dst[i] = value i of `src` (fp32, or fp16 when `half`), for `count` values. `src` may be
// unaligned. Large copies are split over the worker pool (parallel page faults on cold files).
void copy_to_f32(const uint8_t* src, bool half, size_t count, float* dst);

// Index of the first NaN or ±Inf among `count` values at `src` (fp32 or fp16), or -1.
int64_t first_non_finite(const uint8_t* src, bool half, size_t count);

}  // namespace pp

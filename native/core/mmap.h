// Read-only memory mappings of whole files, plus the copy / scan loops that read from them.
// Plain C++17 + POSIX (mmap, madvise, sigaction); on platforms without mmap, open() throws E_IO
// and the TypeScript side falls back to positional file reads.
//
// A mapped file can be truncated or rewritten by another process while we read it. Touching a
// mapped page that now lies past the end of the file raises SIGBUS, which would kill the process.
// So every mapping is registered with a process-wide SIGBUS guard (installed on the first open):
// a fault inside a registered mapping replaces the rest of that mapping with zero pages, marks it
// damaged and lets the faulting read carry on; faults anywhere else go to the handler that was
// there before. Each read then ends with check_intact(), which throws E_IO when the mapping was
// damaged or the file's size or modification time differs from what was seen at open (a rewrite
// of the same size). Views handed out over the mapping are checked the same way by their users.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace pp {

enum class Advice { Normal, Sequential, Random, WillNeed, DontNeed };

// The identity of a file's contents as fstat reports them: a rewrite changes at least one.
struct FileStamp {
  uint64_t size = 0;
  int64_t mtime_sec = 0;
  int64_t mtime_nsec = 0;
  bool operator==(const FileStamp& o) const { return size == o.size && mtime_sec == o.mtime_sec && mtime_nsec == o.mtime_nsec; }
  bool operator!=(const FileStamp& o) const { return !(*this == o); }
};

// One mapping of a whole file. Owned through std::shared_ptr: whoever may still touch the
// memory (the JS handle, an ArrayBuffer over it, a job in flight) holds a reference, and the
// destructor (munmap) runs when the last one is dropped.
class MappedFile {
 public:
  // Maps `path` read-only. With fd >= 0, maps that already open descriptor (the one the header
  // was parsed through, so both see the same file) and uses `path` only in messages. The file
  // is opened non-blocking, so a named pipe fails at once instead of waiting for a writer.
  // A zero-length file gives size() == 0 and data() == nullptr.
  // Throws pp::Error("E_IO", …) naming the file and the system error.
  static std::shared_ptr<MappedFile> open(const std::string& path, int fd = -1);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }
  // What fstat said when the file was mapped.
  const FileStamp& stamp() const { return stamp_; }
  // False once a read faulted past the end of the file, or when the file's size or modification
  // time now differs from stamp() (an fstat: cheap enough to call after every read).
  bool intact() const;
  // Throws pp::Error("E_IO", "file <path> changed or was truncated while pairpick was reading it")
  // unless intact().
  void check_intact() const;
  // A hint for the kernel's read-ahead over [offset, offset + length); errors are ignored.
  void advise(Advice advice, size_t offset, size_t length) const;

 private:
  MappedFile(std::string path, int fd, const uint8_t* data, size_t size, FileStamp stamp, int slot)
      : path_(std::move(path)), fd_(fd), data_(data), size_(size), stamp_(stamp), slot_(slot) {}
  std::string path_;
  int fd_;  // kept open for fstat; closed with the mapping
  const uint8_t* data_;
  size_t size_;
  FileStamp stamp_;
  int slot_;  // index in the SIGBUS guard's table, or -1 (empty file: nothing mapped)
};

// Faults the SIGBUS guard has absorbed so far (for tests and diagnostics).
uint64_t mmap_faults_absorbed();

// dst[i] = value i of `src` (fp32, or fp16 when `half`), for `count` values. `src` may be
// unaligned. Large copies are split over the worker pool (parallel page faults on cold files).
void copy_to_f32(const uint8_t* src, bool half, size_t count, float* dst);

// Index of the first NaN or ±Inf among `count` values at `src` (fp32 or fp16), or -1.
int64_t first_non_finite(const uint8_t* src, bool half, size_t count);

}  // namespace pp

#include "core/mmap.h"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <limits>

#include "core/error.h"
#include "core/parallel.h"
#include "core/simd.h"

#ifndef _WIN32
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#endif

namespace pp {

#ifndef _WIN32

std::shared_ptr<MappedFile> MappedFile::open(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw Error("E_IO", path + ": cannot open: " + std::strerror(errno));
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    throw Error("E_IO", path + ": cannot stat: " + std::strerror(err));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    throw Error("E_IO", path + ": not a regular file");
  }
  size_t size = static_cast<size_t>(st.st_size);
  const uint8_t* data = nullptr;
  if (size > 0) {  // mmap refuses length 0: an empty file simply has no mapping
    void* p = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
      int err = errno;
      ::close(fd);
      throw Error("E_IO", path + ": cannot memory-map " + std::to_string(size) + " bytes: " + std::strerror(err));
    }
    data = static_cast<const uint8_t*>(p);
  }
  ::close(fd);  // the mapping keeps the file itself alive
  return std::shared_ptr<MappedFile>(new MappedFile(path, data, size));
}

MappedFile::~MappedFile() {
  if (data_) ::munmap(const_cast<uint8_t*>(data_), size_);
}

void MappedFile::advise(Advice advice, size_t offset, size_t length) const {
  if (!data_ || offset >= size_) return;
  length = std::min(length, size_ - offset);
  static const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  size_t begin = offset / page * page;  // madvise wants a page-aligned start
  int flag = MADV_NORMAL;
  switch (advice) {
    case Advice::Normal: flag = MADV_NORMAL; break;
    case Advice::Sequential: flag = MADV_SEQUENTIAL; break;
    case Advice::Random: flag = MADV_RANDOM; break;
    case Advice::WillNeed: flag = MADV_WILLNEED; break;
    case Advice::DontNeed: flag = MADV_DONTNEED; break;
  }
  ::madvise(const_cast<uint8_t*>(data_) + begin, length + (offset - begin), flag);
}

#else

std::shared_ptr<MappedFile> MappedFile::open(const std::string& path) {
  throw Error("E_IO", path + ": memory mapping is not implemented on this platform");
}
MappedFile::~MappedFile() {}
void MappedFile::advise(Advice, size_t, size_t) const {}

#endif

namespace {

// Values per parallel block: ~1 MiB of output, big enough to amortise scheduling.
constexpr size_t kBlock = size_t(1) << 18;
// Below this many values a copy runs on the calling thread alone.
constexpr size_t kParallelMin = size_t(1) << 21;

void copy_block(const uint8_t* src, bool half, size_t count, float* dst) {
  if (!half) {
    std::memcpy(dst, src, count * sizeof(float));
    return;
  }
  if (reinterpret_cast<uintptr_t>(src) % alignof(uint16_t) == 0) {
    half_to_float_n(reinterpret_cast<const uint16_t*>(src), dst, count);
    return;
  }
  // Unaligned fp16 (possible in safetensors files): bounce through an aligned buffer.
  uint16_t tmp[4096];
  for (size_t done = 0; done < count; done += 4096) {
    size_t n = std::min<size_t>(4096, count - done);
    std::memcpy(tmp, src + done * 2, n * 2);
    half_to_float_n(tmp, dst + done, n);
  }
}

// First bad value in a block, or -1. Scans 256 values at a time without branching (so the
// compiler can vectorise), then pins down the exact index only in a flagged group.
template <typename Bits>
int64_t scan_block(const uint8_t* src, size_t count, Bits exponent_mask) {
  constexpr size_t group = 256;
  for (size_t g = 0; g < count; g += group) {
    size_t n = std::min(group, count - g);
    unsigned bad = 0;
    for (size_t i = 0; i < n; ++i) {
      Bits bits;
      std::memcpy(&bits, src + (g + i) * sizeof(Bits), sizeof(Bits));
      bad |= (bits & exponent_mask) == exponent_mask;
    }
    if (!bad) continue;
    for (size_t i = 0; i < n; ++i) {
      Bits bits;
      std::memcpy(&bits, src + (g + i) * sizeof(Bits), sizeof(Bits));
      if ((bits & exponent_mask) == exponent_mask) return static_cast<int64_t>(g + i);
    }
  }
  return -1;
}

int64_t scan_any(const uint8_t* src, bool half, size_t count) {
  return half ? scan_block<uint16_t>(src, count, uint16_t(0x7c00)) : scan_block<uint32_t>(src, count, 0x7f800000u);
}

}  // namespace

void copy_to_f32(const uint8_t* src, bool half, size_t count, float* dst) {
  const size_t item = half ? 2 : 4;
  if (count < kParallelMin) {
    copy_block(src, half, count, dst);
    return;
  }
  int64_t blocks = static_cast<int64_t>((count + kBlock - 1) / kBlock);
  parallel_for(blocks, 1, [&](int64_t b, int64_t e) {
    for (int64_t k = b; k < e; ++k) {
      size_t first = static_cast<size_t>(k) * kBlock;
      size_t n = std::min(kBlock, count - first);
      copy_block(src + first * item, half, n, dst + first);
    }
  });
}

int64_t first_non_finite(const uint8_t* src, bool half, size_t count) {
  const size_t item = half ? 2 : 4;
  if (count < kParallelMin) return scan_any(src, half, count);
  int64_t blocks = static_cast<int64_t>((count + kBlock - 1) / kBlock);
  std::atomic<int64_t> best{std::numeric_limits<int64_t>::max()};
  parallel_for(blocks, 1, [&](int64_t b, int64_t e) {
    for (int64_t k = b; k < e; ++k) {
      size_t first = static_cast<size_t>(k) * kBlock;
      if (static_cast<int64_t>(first) >= best.load(std::memory_order_relaxed)) return;  // an earlier hit exists
      int64_t hit = scan_any(src + first * item, half, std::min(kBlock, count - first));
      if (hit < 0) continue;
      int64_t at = static_cast<int64_t>(first) + hit, cur = best.load();
      while (at < cur && !best.compare_exchange_weak(cur, at)) {
      }
      return;
    }
  });
  int64_t at = best.load();
  return at == std::numeric_limits<int64_t>::max() ? -1 : at;
}

}  // namespace pp

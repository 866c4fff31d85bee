#include "core/mmap.h"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <limits>
#include <mutex>
#include <vector>

#include "core/error.h"
#include "core/parallel.h"
#include "core/simd.h"

#ifndef _WIN32
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#endif

namespace pp {

#ifndef _WIN32

namespace {

// ---- The SIGBUS guard -----------------------------------------------------------------------
//
// A table of the live mappings that the signal handler can read without locks: each slot is a
// small seqlock (an odd `seq` means a writer is changing it; a reader that sees `seq` change
// while it read the slot ignores the slot). Only atomics are touched in the handler, plus one
// mmap() call, so it is async-signal-safe in practice on Linux and macOS. Writers (open and
// close of mappings, never inside the handler) serialise on a mutex.

// More mappings than the kernel allows a process by default (vm.max_map_count = 65530).
constexpr int kSlots = 1 << 16;

struct Slot {
  std::atomic<uint32_t> seq{0};
  std::atomic<uintptr_t> base{0};
  std::atomic<uintptr_t> length{0};  // 0: free
  std::atomic<uint32_t> damaged{0};
};

Slot g_slots[kSlots];
std::atomic<int> g_slots_used{0};  // slots [0, used) have been handed out at least once
std::mutex g_slots_mutex;
std::vector<int>* g_free_slots = nullptr;  // guarded by g_slots_mutex; never freed (process lifetime)
std::atomic<uint64_t> g_faults{0};
uintptr_t g_page_size = 4096;
struct sigaction g_previous_action;  // what SIGBUS did before the guard (zero = SIG_DFL)
std::once_flag g_install_once;

static_assert(std::atomic<uintptr_t>::is_always_lock_free && std::atomic<uint32_t>::is_always_lock_free,
              "the SIGBUS handler needs lock-free atomics");

// A fault at `addr`: if it lies in a registered mapping, maps zero pages from the faulting page
// to the end of that mapping (so the read goes on, and later pages do not fault one by one),
// marks the mapping damaged and returns true.
bool absorb_fault(uintptr_t addr) {
  const int used = g_slots_used.load();
  for (int i = 0; i < used; ++i) {
    Slot& s = g_slots[i];
    const uint32_t seq = s.seq.load();
    if (seq & 1) continue;  // being changed: it cannot be a mapping in use by a reader
    const uintptr_t base = s.base.load();
    const uintptr_t length = s.length.load();
    if (s.seq.load() != seq) continue;
    if (length == 0 || addr < base || addr - base >= length) continue;
    const uintptr_t page = addr & ~(g_page_size - 1);
    const uintptr_t end = (base + length + g_page_size - 1) & ~(g_page_size - 1);
    void* p = ::mmap(reinterpret_cast<void*>(page), end - page, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    if (p == MAP_FAILED) return false;  // out of memory maps: let the fault take its course
    s.damaged.store(1);
    g_faults.fetch_add(1);
    return true;
  }
  return false;
}

// Hands a signal the guard does not own to whatever handled SIGBUS before.
void chain_to_previous(int sig, siginfo_t* info, void* context) {
  const struct sigaction& prev = g_previous_action;
  if (prev.sa_flags & SA_SIGINFO) {
    if (prev.sa_sigaction) prev.sa_sigaction(sig, info, context);
    return;
  }
  if (prev.sa_handler == SIG_IGN) return;
  if (prev.sa_handler == SIG_DFL) {
    // Restore the default action: a real fault recurs when the instruction is retried and then
    // terminates the process as it would have without us; a signal sent by kill() is re-sent.
    struct sigaction dfl;
    std::memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    ::sigaction(SIGBUS, &dfl, nullptr);
    if (info == nullptr || info->si_code <= 0) ::raise(SIGBUS);
    return;
  }
  prev.sa_handler(sig);
}

void on_sigbus(int sig, siginfo_t* info, void* context) {
  const int saved_errno = errno;
  // si_code > 0: raised by the kernel for a memory access (not sent by another process).
  const bool ours = info != nullptr && info->si_code > 0 && absorb_fault(reinterpret_cast<uintptr_t>(info->si_addr));
  errno = saved_errno;
  if (!ours) chain_to_previous(sig, info, context);
}

void install_guard() {
  std::call_once(g_install_once, [] {
    long page = ::sysconf(_SC_PAGESIZE);
    if (page > 0) g_page_size = static_cast<uintptr_t>(page);
    g_free_slots = new std::vector<int>();
    struct sigaction action;
    std::memset(&action, 0, sizeof action);
    action.sa_sigaction = on_sigbus;
    action.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESTART;
    sigemptyset(&action.sa_mask);
    ::sigaction(SIGBUS, nullptr, &g_previous_action);
    ::sigaction(SIGBUS, &action, nullptr);
  });
}

// A slot for [base, base + length), or -1 when the table is full.
int register_mapping(const uint8_t* base, size_t length) {
  install_guard();
  std::lock_guard<std::mutex> lock(g_slots_mutex);
  int slot;
  if (!g_free_slots->empty()) {
    slot = g_free_slots->back();
    g_free_slots->pop_back();
  } else {
    slot = g_slots_used.load();
    if (slot == kSlots) return -1;
  }
  Slot& s = g_slots[slot];
  s.seq.fetch_add(1);
  s.damaged.store(0);
  s.base.store(reinterpret_cast<uintptr_t>(base));
  s.length.store(length);
  s.seq.fetch_add(1);
  if (slot == g_slots_used.load()) g_slots_used.store(slot + 1);
  return slot;
}

// Called before munmap, so no new mapping at the same address can meet a stale slot.
void unregister_mapping(int slot) {
  std::lock_guard<std::mutex> lock(g_slots_mutex);
  Slot& s = g_slots[slot];
  s.seq.fetch_add(1);
  s.length.store(0);
  s.base.store(0);
  s.damaged.store(0);
  s.seq.fetch_add(1);
  g_free_slots->push_back(slot);
}

FileStamp stamp_of(const struct stat& st) {
  FileStamp stamp;
  stamp.size = static_cast<uint64_t>(st.st_size);
#ifdef __APPLE__
  stamp.mtime_sec = st.st_mtimespec.tv_sec;
  stamp.mtime_nsec = st.st_mtimespec.tv_nsec;
#else
  stamp.mtime_sec = st.st_mtim.tv_sec;
  stamp.mtime_nsec = st.st_mtim.tv_nsec;
#endif
  return stamp;
}

const char* kind_of(mode_t mode) {
  if (S_ISDIR(mode)) return "a folder";
  if (S_ISFIFO(mode)) return "a named pipe";
  if (S_ISSOCK(mode)) return "a socket";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  return "not a regular file";
}

}  // namespace

std::shared_ptr<MappedFile> MappedFile::open(const std::string& path, int fd_in) {
  // O_NONBLOCK: opening a named pipe must not wait for a writer (it is refused just below).
  int fd = fd_in >= 0 ? ::fcntl(fd_in, F_DUPFD_CLOEXEC, 0) : ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) throw Error("E_IO", path + ": cannot open: " + std::strerror(errno));
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    throw Error("E_IO", path + ": cannot stat: " + std::strerror(err));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    throw Error("E_IO", path + ": " + kind_of(st.st_mode) + ", not a regular file");
  }
  size_t size = static_cast<size_t>(st.st_size);
  const uint8_t* data = nullptr;
  int slot = -1;
  if (size > 0) {  // mmap refuses length 0: an empty file simply has no mapping
    void* p = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
      int err = errno;
      ::close(fd);
      throw Error("E_IO", path + ": cannot memory-map " + std::to_string(size) + " bytes: " + std::strerror(err));
    }
    data = static_cast<const uint8_t*>(p);
    slot = register_mapping(data, size);
    if (slot < 0) {
      ::munmap(p, size);
      ::close(fd);
      throw Error("E_IO", path + ": cannot memory-map: " + std::to_string(kSlots) + " files are mapped already");
    }
  }
  return std::shared_ptr<MappedFile>(new MappedFile(path, fd, data, size, stamp_of(st), slot));
}

MappedFile::~MappedFile() {
  if (slot_ >= 0) unregister_mapping(slot_);
  if (data_) ::munmap(const_cast<uint8_t*>(data_), size_);
  if (fd_ >= 0) ::close(fd_);
}

bool MappedFile::intact() const {
  if (slot_ >= 0 && g_slots[slot_].damaged.load()) return false;
  struct stat st;
  if (::fstat(fd_, &st) != 0) return false;
  return stamp_of(st) == stamp_;
}

void MappedFile::check_intact() const {
  if (!intact()) throw Error("E_IO", "file " + path_ + " changed or was truncated while pairpick was reading it");
}

uint64_t mmap_faults_absorbed() { return g_faults.load(); }

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

std::shared_ptr<MappedFile> MappedFile::open(const std::string& path, int) {
  throw Error("E_IO", path + ": memory mapping is not implemented on this platform");
}
MappedFile::~MappedFile() {}
bool MappedFile::intact() const { return true; }
void MappedFile::check_intact() const {}
uint64_t mmap_faults_absorbed() { return 0; }
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

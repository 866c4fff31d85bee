// addon.mmap.open(path, fd?) → a handle over a read-only mapping of the whole file (see src/io/mmap.ts).
//
// Lifetime: the mapping is a std::shared_ptr<MappedFile>. The handle holds one reference until
// close(); the ArrayBuffer from buffer() holds one until it is garbage-collected (its finalizer
// only drops a shared_ptr, so it is safe whenever and on whichever thread Node runs it); every
// job in flight holds one until it settles. munmap happens when the last reference goes, so
// close() while a read is running, or while a view is still in use, never frees memory in use.
//
// Changed files: every read, gather and scan ends with MappedFile::check_intact(), so a file
// truncated or rewritten while it was being read rejects with E_IO instead of resolving with the
// zero pages the SIGBUS guard (core/mmap.h) put in place of the vanished ones; check() does the
// same for views, which their users call once they are done with the memory.
#include <cmath>
#include <memory>

#include "common.h"
#include "core/mmap.h"
#include "core/parallel.h"

namespace pp::binding {
namespace {

using FileRef = std::shared_ptr<MappedFile>;

class MmapHandle : public Napi::ObjectWrap<MmapHandle> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "MappedFile",
                       {
                           InstanceAccessor<&MmapHandle::Size>("size"),
                           InstanceAccessor<&MmapHandle::Closed>("closed"),
                           InstanceAccessor<&MmapHandle::Path>("path"),
                           InstanceAccessor<&MmapHandle::MtimeNs>("mtimeNs"),
                           InstanceMethod<&MmapHandle::Check>("check"),
                           InstanceMethod<&MmapHandle::Buffer>("buffer"),
                           InstanceMethod<&MmapHandle::Read>("read"),
                           InstanceMethod<&MmapHandle::Gather>("gather"),
                           InstanceMethod<&MmapHandle::FirstNonFinite>("firstNonFinite"),
                           InstanceMethod<&MmapHandle::Advise>("advise"),
                           InstanceMethod<&MmapHandle::Close>("close"),
                       });
  }

  explicit MmapHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<MmapHandle>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsString()) Throw(env, "E_INTERNAL", "mmap.open: expected a path string");
    path_ = info[0].As<Napi::String>().Utf8Value();
    int fd = -1;
    if (HasArg(info, 1)) {
      double v = ArgDouble(info, 1, "fd");
      if (!(v >= 0) || v != std::floor(v) || v > 2147483647.0) Throw(env, "E_INTERNAL", "mmap.open: fd must be a descriptor number");
      fd = static_cast<int>(v);
    }
    try {
      file_ = MappedFile::open(path_, fd);
    } catch (const pp::Error& e) {
      Throw(env, e.code(), e.what());
    }
    size_ = file_->size();
  }

 private:
  Napi::Value Size(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), static_cast<double>(size_)); }
  Napi::Value Closed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), !file_); }
  Napi::Value Path(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), path_); }
  // The file's modification time (ns since the epoch) when it was mapped, as fs.stat's bigint mtimeNs.
  Napi::Value MtimeNs(const Napi::CallbackInfo& info) {
    if (!file_) return info.Env().Undefined();
    const FileStamp& t = file_->stamp();
    return Napi::BigInt::New(info.Env(), static_cast<int64_t>(t.mtime_sec) * 1000000000 + t.mtime_nsec);
  }

  // check(): throws E_IO when the file was truncated or rewritten since it was mapped.
  Napi::Value Check(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    try {
      Open(env)->check_intact();
    } catch (const pp::Error& e) {
      Throw(env, e.code(), e.what());
    }
    return env.Undefined();
  }

  const FileRef& Open(Napi::Env env) const {
    if (!file_) Throw(env, "E_STATE", path_ + ": mapping used after close()");
    return file_;
  }

  // A byte offset or count argument: a non-negative integer (doubles are exact up to 2^53).
  static size_t ArgSize(const Napi::CallbackInfo& info, size_t i, const char* name) {
    double v = ArgDouble(info, i, name);
    if (!(v >= 0) || v != std::floor(v) || v > 9007199254740992.0) Throw(info.Env(), "E_INTERNAL", std::string(name) + ": expected a non-negative integer");
    return static_cast<size_t>(v);
  }

  // The external ArrayBuffer over the whole mapping; created once, then the same object.
  // (One buffer per mapping: V8 must never see two ArrayBuffers over the same memory.)
  Napi::Value Buffer(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const FileRef& file = Open(env);
    if (!buffer_.IsEmpty()) return buffer_.Value();
    Napi::ArrayBuffer ab;
    if (file->size() == 0) {
      ab = Napi::ArrayBuffer::New(env, 0);
    } else {
      auto* hold = new FileRef(file);
      try {
        ab = Napi::ArrayBuffer::New(
            env, const_cast<uint8_t*>(file->data()), file->size(), [](Napi::Env, void*, FileRef* h) { delete h; }, hold);
      } catch (...) {
        delete hold;  // e.g. a runtime that forbids external buffers: the caller falls back to copies
        throw;
      }
    }
    buffer_ = Napi::Persistent(ab);
    return ab;
  }

  // read(byteOffset, count, half, dst: Float32Array, dstOffset) → Promise<void>
  Napi::Value Read(const Napi::CallbackInfo& info) {
    const Access a = ParseRange(info, "read");
    size_t dstLength = 0;
    float* dst = ArgF32(info, 3, "dst", &dstLength);
    size_t dstOffset = ArgSize(info, 4, "dstOffset");
    if (dstOffset > dstLength || a.n > dstLength - dstOffset) Throw(info.Env(), "E_INTERNAL", "mmap.read: destination too small");
    float* out = dst + dstOffset;
    return RunChecked(info, a.file, [file = a.file, src = a.src, half = a.half, count = a.n, out, offset = a.offset, item = a.item] {
      if (!count) return;
      // Big reads of a cold file: ask the kernel to start reading ahead before we fault page by page.
      if (count * item >= (size_t(8) << 20)) file->advise(Advice::WillNeed, offset, count * item);
      copy_to_f32(src, half, count, out);
    });
  }

  // gather(byteOffset, dim, half, rows: Float64Array, dst: Float32Array, dstRows: Int32Array) → Promise<void>
  Napi::Value Gather(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const Access a = ParseAccess(info, "dim");
    const FileRef& file = a.file;
    const size_t offset = a.offset, dim = a.n, rowBytes = a.n * a.item;
    const bool half = a.half;
    size_t n = 0, dstLength = 0, nDst = 0;
    const double* rows = ArgTyped<double, napi_float64_array>(info, 3, "rows", &n);
    float* dst = ArgF32(info, 4, "dst", &dstLength);
    const int32_t* dstRows = ArgI32(info, 5, "dstRows", &nDst);
    if (dim == 0 || nDst != n) Throw(env, "E_INTERNAL", "mmap.gather: bad arguments");
    if (offset > file->size()) Throw(env, "E_INTERNAL", path_ + ": gather past the end of the mapping");
    size_t fileRows = (file->size() - offset) / rowBytes;
    size_t dstRowCount = dstLength / dim;
    for (size_t i = 0; i < n; ++i) {
      double r = rows[i];
      if (!(r >= 0) || r != std::floor(r) || r >= static_cast<double>(fileRows)) Throw(env, "E_INTERNAL", path_ + ": gather row out of range");
      if (dstRows[i] < 0 || static_cast<size_t>(dstRows[i]) >= dstRowCount) Throw(env, "E_INTERNAL", "mmap.gather: destination row out of range");
    }
    const uint8_t* base = a.src;
    return RunChecked(info, file, [base, half, dim, rowBytes, rows, dst, dstRows, n] {
      auto body = [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) {
          copy_to_f32(base + static_cast<size_t>(rows[i]) * rowBytes, half, dim, dst + static_cast<size_t>(dstRows[i]) * dim);
        }
      };
      if (n * dim < (size_t(1) << 20)) body(0, static_cast<int64_t>(n));
      else parallel_for(static_cast<int64_t>(n), std::max<int64_t>(1, (1 << 16) / static_cast<int64_t>(dim)), body);
    });
  }

  // firstNonFinite(byteOffset, count, half) → Promise<number> (value index from byteOffset, or -1)
  Napi::Value FirstNonFinite(const Napi::CallbackInfo& info) {
    const Access a = ParseRange(info, "scan");
    auto result = std::make_shared<int64_t>(-1);
    return RunChecked(
        info, a.file, [src = a.src, half = a.half, count = a.n, result] { *result = count ? first_non_finite(src, half, count) : -1; },
        [result](Napi::Env env) -> Napi::Value { return Napi::Number::New(env, static_cast<double>(*result)); });
  }

  // advise(kind, byteOffset, byteLength)
  Napi::Value Advise(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const FileRef& file = Open(env);
    std::string kind = info.Length() > 0 && info[0].IsString() ? info[0].As<Napi::String>().Utf8Value() : "";
    Advice advice;
    if (kind == "normal") advice = Advice::Normal;
    else if (kind == "sequential") advice = Advice::Sequential;
    else if (kind == "random") advice = Advice::Random;
    else if (kind == "willneed") advice = Advice::WillNeed;
    else if (kind == "dontneed") advice = Advice::DontNeed;
    else Throw(env, "E_INTERNAL", "mmap.advise: unknown advice '" + kind + "'");
    file->advise(advice, ArgSize(info, 1, "byteOffset"), ArgSize(info, 2, "byteLength"));
    return env.Undefined();
  }

  // close(): drops the handle's reference (and its hold on the ArrayBuffer). Idempotent.
  Napi::Value Close(const Napi::CallbackInfo& info) {
    file_.reset();
    buffer_.Reset();
    return info.Env().Undefined();
  }

  // The arguments every access starts with: (byteOffset, count or dim, half).
  struct Access {
    FileRef file;
    size_t offset, n;
    bool half;
    size_t item;         // bytes per value
    const uint8_t* src;  // the mapping at byteOffset (null for an empty file)
  };
  Access ParseAccess(const Napi::CallbackInfo& info, const char* secondName) {
    FileRef file = Open(info.Env());
    const size_t offset = ArgSize(info, 0, "byteOffset");
    const size_t n = ArgSize(info, 1, secondName);
    const bool half = info.Length() > 2 && info[2].ToBoolean().Value();
    const uint8_t* src = file->data() && offset <= file->size() ? file->data() + offset : nullptr;
    return Access{std::move(file), offset, n, half, half ? size_t(2) : size_t(4), src};
  }
  // (byteOffset, count, half): `count` values from byteOffset, which must lie inside the mapping.
  Access ParseRange(const Napi::CallbackInfo& info, const std::string& op) {
    Access a = ParseAccess(info, "count");
    if (a.offset > a.file->size() || a.n > (a.file->size() - a.offset) / a.item) {
      Throw(info.Env(), "E_INTERNAL", path_ + ": " + op + " past the end of the mapping");
    }
    return a;
  }

  // Runs `work` on a worker thread, then fails the call with E_IO if the file was truncated or
  // rewritten meanwhile; the mapping and the call's object arguments stay alive until it is done.
  static Napi::Value RunChecked(const Napi::CallbackInfo& info, FileRef file, PromiseWorker::Work work,
                                PromiseWorker::Done done = nullptr) {
    auto* worker = new PromiseWorker(
        info.Env(), [file, work = std::move(work)] { work(); file->check_intact(); }, std::move(done));
    worker->KeepArgs(info);
    return worker->Start();
  }

  std::string path_;
  FileRef file_;
  size_t size_ = 0;
  Napi::Reference<Napi::ArrayBuffer> buffer_;
};

Napi::Value OpenMapping(const Napi::CallbackInfo& info) {
  auto* ctor = static_cast<Napi::FunctionReference*>(info.Data());
  Napi::Env env = info.Env();
  return ctor->New({info.Length() > 0 ? info[0] : env.Undefined(), info.Length() > 1 ? info[1] : env.Undefined()});
}

}  // namespace

void RegisterMmap(Napi::Env env, Napi::Object exports) {
  auto* ctor = new Napi::FunctionReference(Napi::Persistent(MmapHandle::Define(env)));
  env.AddCleanupHook([ctor] { delete ctor; });
  Napi::Object mmap = Napi::Object::New(env);
  mmap.Set("open", Napi::Function::New(env, OpenMapping, "open", ctor));
  mmap.Set("faultsAbsorbed", Napi::Function::New(env, [](const Napi::CallbackInfo& info) -> Napi::Value {
             return Napi::Number::New(info.Env(), static_cast<double>(mmap_faults_absorbed()));
           }));
  exports.Set("mmap", mmap);
}

}  // namespace pp::binding

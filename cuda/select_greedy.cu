// The selection engine, part 4 (see select.cuh): the greedy loop (MMCSAL, k-center, k-means++
// seeding) runs `steps` picks per call entirely on the device: choose (argmax of the score, or the
// sampleSquared rule) → record → centre-to-centre distances → the fused δ update with
// triangle-inequality pruning (pp::sel::prune_skips, the rule of select.cc) and a block-level
// max/argmax → final reduce. The host synchronises once per call (resident pools).
//
// Graph replay. On resident pools one pick is a fixed sequence of 5–7 small launches; it is
// captured once into a CUDA graph (PickGraph, select.cuh) and each pick is one cudaGraphLaunch.
// So the kernels read everything that changes from pick to pick from device memory: the step and
// centre counters (PickCounter, advanced by k_final_max at the end of a pick), the pick itself,
// the newest centre (always at `cv`; its copy for pruning at centres + id · total). The graph is
// captured again only when something it bakes in changes (a buffer that moved, pruning turned
// off at its caps; see pick_graph_key). Streamed pools keep direct launches: between the kernels
// of a pick the host reads the pick, uploads its row from the caller's arrays and gathers the
// rows pruning cannot skip, which a graph cannot do.
//
// What the graph saves, against the floor of the pick (select.cuh, lane_dot: 2 GB per unpruned
// pass at 1M × 2 × 512 fp16, ≈ 0.6 ms at 3.35 TB/s): a pick is 5–6 kernels (4–5 once pruning is
// off), ≈ 2–3 µs of host launch cost each, ≈ 10–18 µs per pick, against one graph launch of
// ≈ 2–3 µs — ≤ 3 % of the unpruned floor, and hidden while the host queues ahead of the device.
// It matters late in a k-center run, when pruning leaves ≈ 9 bytes per row (≈ 3 µs of HBM per
// pick at 1M rows): there the host's launch rate would set the pace, and one launch per pick
// lets the device run 4–6× more picks per second of host time.
#include "select.cuh"

namespace pp_cuda::sel {
namespace {

constexpr long long kSampleBlock = pp::sel::kSampleBlockRows;
constexpr size_t kMinCallSteps = 64;

struct Best {
  float v;
  long long i;
};

// Larger value, then lower index.
__device__ __forceinline__ Best better(Best a, Best b) {
  if (a.i < 0) return b;
  if (b.i < 0) return a;
  if (b.v > a.v || (b.v == a.v && b.i < a.i)) return b;
  return a;
}

__device__ Best block_best(Best b) {
  __shared__ float sv[kThreads / 32];
  __shared__ long long si[kThreads / 32];
  for (int o = 16; o; o >>= 1) {
    Best other{__shfl_xor_sync(kFullMask, b.v, o), __shfl_xor_sync(kFullMask, b.i, o)};
    b = better(b, other);
  }
  const int w = threadIdx.x / 32, lane = threadIdx.x & 31;
  if (lane == 0) {
    sv[w] = b.v;
    si[w] = b.i;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    for (int k = 1; k < (int)(blockDim.x / 32); ++k) b = better(b, Best{sv[k], si[k]});
  }
  return b;  // valid in thread 0
}

// δ update for the newest centre (pruned) and the block's max δ / argmax over candidates.
// cd: centre-to-centre values of the centres before this one (null without pruning); owners are
// always older centres, so cd[o] is one this pick computed.
__global__ void k_update(View v, Shape s, Centre c, const float* cd, const PickCounter* at, double slack, double margin, int track_owner,
                         float* delta, int* owner_of, const unsigned char* taken, const int* pick, float* part_v,
                         long long* part_i) {
  if (*pick < 0) return;
  const int id = at->id;
  const int lane = threadIdx.x & 31;
  const long long warps = (long long)gridDim.x * (blockDim.x / 32);
  Best mine{-INFINITY, -1};
  for (long long r = (long long)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32; r < v.count; r += warps) {
    const long long gid = view_global(v, r);
    if (taken[gid]) continue;
    float d = delta[gid];
    const int o = owner_of[gid];
    const bool pruned = cd && o >= 0 && pp::sel::prune_skips(cd[o], d, slack, margin);
    if (!pruned) {
      const float x = warp_row_value(v, s, c, view_local(v, r), gid);
      if (x < d) {
        d = x;
        if (lane == 0) {
          delta[gid] = x;
          owner_of[gid] = track_owner ? id : -1;
        }
      }
    }
    mine = better(mine, Best{d, gid});
  }
  // Every lane of a warp saw the same rows: lane 0's copy is the warp's.
  Best b = block_best(lane == 0 ? mine : Best{-INFINITY, -1});
  if (threadIdx.x == 0) {
    part_v[blockIdx.x] = b.v;
    part_i[blockIdx.x] = b.i;
  }
}

// Streamed pools: which rows of a block [b0, b0 + n) the δ update must read — candidates (not
// taken) that the pruning rule cannot skip for the newest centre, the same test k_update makes
// from the same δ, owners and centre distances. slot[r] = the row's place in the compact upload
// (−1: not read), rows[slot] = r, rows[n] = how many. One block numbers them in row order (a
// prefix sum per blockDim rows; up to 1024 threads, a multiple of 32), so the upload order is
// deterministic.
//
// Roofline of a streamed pick: the block's rows cross the host link (≈ 25–50 GB/s PCIe, 2 GB per
// pass over 1M × 2 × 512 fp16: 40–80 ms per pick) unless skipped; this test reads 9 bytes and
// writes 8 per row on the device, and the list costs 4 bytes per row on the link. Late in a
// k-center run most rows are pruned, so the link carries a small fraction of the pool per pick.
constexpr int kNeedThreads = 1024;  // most threads
__global__ void __launch_bounds__(kNeedThreads) k_needed_rows(long long b0, long long n, const float* cd, double slack, double margin,
                                                              const float* delta, const int* owner_of, const unsigned char* taken,
                                                              const int* pick, int* slot, int* rows) {
  __shared__ int warp_total[kNeedThreads / 32];
  __shared__ int base;
  const int lane = threadIdx.x & 31, warp = threadIdx.x / 32;
  if (threadIdx.x == 0) base = 0;
  const bool none = *pick < 0;  // nothing was picked: k_update returns at once
  const int warps = blockDim.x / 32;
  for (long long r0 = 0; r0 < n; r0 += blockDim.x) {
    const long long r = r0 + threadIdx.x;
    bool need = false;
    if (r < n && !none) {
      const long long gid = b0 + r;
      const int o = owner_of[gid];
      need = !taken[gid] && !(cd && o >= 0 && pp::sel::prune_skips(cd[o], delta[gid], slack, margin));
    }
    const unsigned ballot = __ballot_sync(kFullMask, need);
    if (lane == 0) warp_total[warp] = __popc(ballot);
    __syncthreads();
    int before = base;
    for (int w = 0; w < warp; ++w) before += warp_total[w];
    before += __popc(ballot & ((1u << lane) - 1u));
    if (r < n) slot[r] = need ? before : -1;
    if (need) rows[before] = (int)r;
    __syncthreads();
    if (threadIdx.x == 0)
      for (int w = 0; w < warps; ++w) base += warp_total[w];
    __syncthreads();
  }
  if (threadIdx.x == 0) rows[n] = base;
}

// Max δ over candidates and its row, from the blocks' partials; the last kernel of a pick, so it
// also advances the pick counters for the next one (every kernel of this pick has read them).
__global__ void k_final_max(const float* part_v, const long long* part_i, int parts, const int* pick, float* delta_max,
                            long long* argmax, PickCounter* at) {
  if (threadIdx.x == 0) {
    at->t++;
    at->id++;
  }
  if (*pick < 0) return;
  Best b{-INFINITY, -1};
  for (int p = threadIdx.x; p < parts; p += blockDim.x) b = better(b, Best{part_v[p], part_i[p]});
  b = block_best(b);
  if (threadIdx.x == 0) {
    *delta_max = b.i >= 0 ? b.v : -INFINITY;
    *argmax = b.i;
  }
}

// Score partials: base(i) + w·δ(i)/Δ (δ̂ ≡ 0 without centres), in double.
__global__ void k_score(const float* base, const float* delta, const unsigned char* taken, long long rows, double w,
                        const PickCounter* at, const float* delta_max, long long* part_i, double* part_s) {
  const double dmax = *delta_max;
  const bool use = at->id > 0 && dmax > 0 && isfinite(dmax);
  double bs = -INFINITY;
  long long bi = -1;
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < rows; i += (long long)gridDim.x * blockDim.x) {
    if (taken[i]) continue;
    const double sc = (double)base[i] + w * (use ? (double)delta[i] / dmax : 0.0);
    if (bi < 0 || sc > bs) {
      bs = sc;
      bi = i;
    }
  }
  __shared__ double ss[kThreads];
  __shared__ long long si[kThreads];
  ss[threadIdx.x] = bs;
  si[threadIdx.x] = bi;
  __syncthreads();
  if (threadIdx.x == 0) {
    for (int t = 1; t < (int)blockDim.x; ++t)
      if (si[t] >= 0 && (bi < 0 || ss[t] > bs || (ss[t] == bs && si[t] < bi))) {
        bs = ss[t];
        bi = si[t];
      }
    part_s[blockIdx.x] = bs;
    part_i[blockIdx.x] = bi;
  }
}

// The pick from the blocks' score partials: a block-wide reduction (larger score, then lower row).
__global__ void k_final_score(const double* part_s, const long long* part_i, int parts, int* pick) {
  __shared__ double ss[kThreads];
  __shared__ long long si[kThreads];
  double bs = -INFINITY;
  long long bi = -1;
  for (int p = threadIdx.x; p < parts; p += blockDim.x)
    if (part_i[p] >= 0 && (bi < 0 || part_s[p] > bs || (part_s[p] == bs && part_i[p] < bi))) {
      bs = part_s[p];
      bi = part_i[p];
    }
  ss[threadIdx.x] = bs;
  si[threadIdx.x] = bi;
  __syncthreads();
  for (int half = blockDim.x / 2; half > 0; half >>= 1) {
    if ((int)threadIdx.x < half) {
      const double os = ss[threadIdx.x + half];
      const long long oi = si[threadIdx.x + half];
      if (oi >= 0 && (si[threadIdx.x] < 0 || os > ss[threadIdx.x] || (os == ss[threadIdx.x] && oi < si[threadIdx.x]))) {
        ss[threadIdx.x] = os;
        si[threadIdx.x] = oi;
      }
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) *pick = (int)si[0];
}

__global__ void k_pick_argmax(const long long* argmax, int* pick) { *pick = (int)*argmax; }

// sampleSquared (k-means++ seeding): the rule of SelectionContext.greedyStep over blocks of
// kSampleBlock rows. Bytes per pick: δ and taken, 5 bytes a row (5 MB per 1M rows, ~2 µs of HBM
// time); one thread per block of rows (the first design) was latency-bound at ~2 ms a pick, so
// both steps run a block of kSampleThreads threads per row block, each thread over a run of
// kSampleRun consecutive rows, combined in thread order (deterministic).
constexpr int kSampleThreads = 256;
constexpr int kSampleRun = (int)(kSampleBlock / kSampleThreads);  // 16
static_assert(kSampleBlock % kSampleThreads == 0, "sample block split");

// Thread-order exclusive prefix of the threads' run sums (shared scratch of kSampleThreads).
__device__ double block_exclusive_prefix(double v, double* scratch, double* total) {
  scratch[threadIdx.x] = v;
  __syncthreads();
  if (threadIdx.x == 0) {
    double acc = 0;
    for (int k = 0; k < kSampleThreads; ++k) {
      const double x = scratch[k];
      scratch[k] = acc;
      acc += x;
    }
    *total = acc;
  }
  __syncthreads();
  return scratch[threadIdx.x];
}

// Step 1, one block per row block: the float64 sum of δ² over candidates, the first candidate
// and the last candidate with δ > 0.
__global__ void __launch_bounds__(kSampleThreads) k_sample_blocks(const float* delta, const unsigned char* taken, long long rows,
                                                                  double* sums, long long* first, long long* last_pos) {
  __shared__ double scratch[kSampleThreads];
  __shared__ double total;
  __shared__ long long firsts[kSampleThreads], lasts[kSampleThreads];
  const long long b = blockIdx.x;
  const long long r0 = b * kSampleBlock + (long long)threadIdx.x * kSampleRun;
  double s = 0;
  long long f = -1, l = -1;
  for (long long i = r0; i < min(rows, r0 + kSampleRun); ++i) {
    if (taken[i]) continue;
    if (f < 0) f = i;
    const double d = delta[i];
    if (d > 0) l = i;
    s += d * d;
  }
  firsts[threadIdx.x] = f;
  lasts[threadIdx.x] = l;
  block_exclusive_prefix(s, scratch, &total);
  if (threadIdx.x == 0) {
    long long bf = -1, bl = -1;
    for (int k = 0; k < kSampleThreads; ++k) {
      if (bf < 0) bf = firsts[k];
      if (lasts[k] >= 0) bl = lasts[k];
    }
    sums[b] = total;
    first[b] = bf;
    last_pos[b] = bl;
  }
}

// Step 2, one block: the row block where the running sum passes u·Σδ², then the row within it
// (each thread checks its run; the first crossing run in thread order holds the pick).
__global__ void __launch_bounds__(kSampleThreads) k_sample_pick(const float* delta, const unsigned char* taken, long long rows,
                                                                long long blocks, const double* sums, const long long* first_in,
                                                                const long long* last_in, const double* uniforms, const PickCounter* at, int* pick) {
  __shared__ double scratch[kSampleThreads];
  __shared__ double total_in_block;
  __shared__ long long chosen, first, last_positive;
  __shared__ double acc0, target;
  __shared__ int found;
  __shared__ long long hits[kSampleThreads], lasts[kSampleThreads];
  if (threadIdx.x == 0) {
    first = -1;
    last_positive = -1;
    double total = 0;
    for (long long b = 0; b < blocks; ++b) {
      if (first < 0) first = first_in[b];
      if (last_in[b] >= 0) last_positive = last_in[b];
      total += sums[b];
    }
    found = 1;
    if (first < 0) {
      *pick = -1;
    } else if (!(total > 0) || !isfinite(total)) {
      *pick = (int)first;
    } else {
      found = 0;
      target = uniforms[at->t] * total;
      double acc = 0;
      long long b = 0;
      for (; b < blocks; ++b) {
        if (acc + sums[b] > target) break;
        acc += sums[b];
      }
      if (b == blocks) {
        *pick = (int)last_positive;
        found = 1;
      }
      chosen = b;
      acc0 = acc;
    }
  }
  __syncthreads();
  if (found) return;
  const long long r0 = chosen * kSampleBlock + (long long)threadIdx.x * kSampleRun;
  const long long r1 = min(rows, r0 + kSampleRun);
  double s = 0;
  long long l = -1;
  for (long long i = r0; i < r1; ++i) {
    if (taken[i]) continue;
    const double d = delta[i];
    if (d > 0) l = i;
    s += d * d;
  }
  lasts[threadIdx.x] = l;
  double acc = acc0 + block_exclusive_prefix(s, scratch, &total_in_block);
  long long hit = -1;
  for (long long i = r0; i < r1 && hit < 0; ++i) {
    if (taken[i]) continue;
    const double d = delta[i];
    acc += d * d;
    if (acc > target) hit = i;
  }
  hits[threadIdx.x] = hit;
  __syncthreads();
  if (threadIdx.x == 0) {
    long long p = -1, last_in_block = -1;
    for (int k = 0; k < kSampleThreads && p < 0; ++k) {
      if (lasts[k] >= 0) last_in_block = lasts[k];
      p = hits[k];
    }
    if (p < 0)
      for (int k = 0; k < kSampleThreads; ++k)
        if (lasts[k] >= 0) last_in_block = lasts[k];
    *pick = (int)(p >= 0 ? p : last_in_block >= 0 ? last_in_block : last_positive);
  }
}

// Records step t's pick, marks it taken and (resident pools) writes its normalised row as the
// newest centre to cv and, when pruning (centres not null), to its slot centres + id · total.
__global__ void k_record(const int* pick, const PickCounter* at, const float* delta, const float* delta_max, unsigned char* taken,
                         int* picks, float* div, float* div_max, View all, Shape s, float* cv, float* centres, int total, int write_centre) {
  const int p = *pick;
  const int t = at->t;
  if (threadIdx.x == 0) picks[t] = p;
  if (p < 0) return;
  if (threadIdx.x == 0) {
    div[t] = delta[p];
    div_max[t] = *delta_max;
    taken[p] = 1;
  }
  if (!write_centre) return;
  float* kept = centres ? centres + (long long)at->id * total : nullptr;
  int off = 0;
  for (int m = 0; m < s.M; ++m) {
    const float inv = s.inv[m][p];
    for (int x = threadIdx.x; x < s.dim[m]; x += blockDim.x) {
      const float v = load_value(all.data[m], s.half[m], (long long)p * s.dim[m] + x) * inv;
      cv[off + x] = v;
      if (kept) kept[off + x] = v;
    }
    off += s.dim[m];
  }
}

// Centre-to-centre values d(centre_s, newest) for the centres before the newest, s < id (warp per centre).
__global__ void k_centre_dist(const float* centres, const PickCounter* at, int total, Shape s, Centre c, const int* pick, float* cd) {
  if (*pick < 0) return;
  const int count = at->id;
  const int lane = threadIdx.x & 31;
  const int warps = gridDim.x * (blockDim.x / 32);
  const bool cross = c.form == PP_FORM_MULTIMODAL && c.gamma != 0.f;
  for (int w = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32; w < count; w += warps) {
    const float* a = centres + (long long)w * total;
    float uni = 0.f, cr = 0.f, sum = 0.f;
    for (int x = 0; x < s.M; ++x)
      for (int y = 0; y < s.M; ++y) {
        if (x != y && !cross) continue;
        float acc = 0.f;
        for (int t = lane; t < s.dim[x]; t += 32) acc = fmaf(a[c.off[x] + t], c.cv[c.off[y] + t], acc);
        for (int o = 16; o; o >>= 1) acc += __shfl_xor_sync(kFullMask, acc, o);
        if (c.form == PP_FORM_MULTIMODAL) {
          if (x == y)
            uni += unit_distance(acc);
          else
            cr += unit_distance(acc);
        } else if (x == y) {
          sum += acc;
        }
      }
    if (lane == 0) cd[w] = c.form == PP_FORM_MULTIMODAL ? (cross ? uni + c.gamma * cr : uni) : sqrtf(fmaxf(0.f, 2.f * s.M - 2.f * sum));
  }
}

Centre make_centre(const pp_cuda_select* s) {
  Centre c{};
  c.cv = s->cv.get();  // the newest centre always lives here (k_record, upload_centre)
  c.form = s->g_form;
  c.gamma = s->g_gamma;
  for (int m = 0; m < s->M; ++m) c.off[m] = s->offsets[m];
  return c;
}

// Pruning keeps the centres with id below this (prune_center_cap rows, at most
// kPruneMaxCenterBytes of centre rows); from that centre on it is off.
long long prune_limit(const pp_cuda_select* s) {
  return std::min<long long>(pp::sel::prune_center_cap(s->rows), pp::sel::kPruneMaxCenterBytes / (4LL * s->total));
}
bool pruning_for(const pp_cuda_select* s, long long id) { return id < prune_limit(s); }

// Device room for the picks' centres [from, to): their kept rows and centre-to-centre values when
// pruning, and the δ update's partials. Grown with room to spare (at least kMinCallSteps more
// centres, or double), so that the next calls keep the captured pick's buffers. Issued before any
// capture (a graph must not allocate).
void reserve_update(pp_cuda_select* s, long long from, long long to) {
  const long long limit = prune_limit(s), kept = std::min(to, limit);
  const long long have = (long long)s->centres.size() / s->total;  // centres there is room for
  if (kept > from && kept > have) {
    const long long room = std::min(limit, std::max(kept + (long long)kMinCallSteps, 2 * have));
    s->centres.resize((size_t)(room * s->total), (size_t)from * s->total);
    s->cd.resize((size_t)room);
  }
  const long long block = s->block_rows();
  const size_t parts = (size_t)grid_for(std::min(block, s->rows), kThreads / 32, 8 * s->sms) * ceil_div(s->rows, block);
  s->part_v.resize(parts);
  s->part_i.resize(parts);
  if (!s->resident) {
    s->need_slot.resize((size_t)block);
    s->need_rows.resize((size_t)block + 1);
  }
}

// The δ update for the newest centre (at cv; its pick in *pick, its id in the pick counter):
// centre-to-centre values when pruning, the pruned scan, the max/argmax for the next pick (which
// advances the counter). Resident pools: kernels only. Streamed: the host gathers each block's
// rows that pruning cannot skip between the kernels.
void enqueue_update(pp_cuda_select* s, bool pruning) {
  const Centre c = make_centre(s);
  const Shape shape = s->shape();
  const float* cd = nullptr;
  if (pruning) {
    // A fixed grid (sized for the most centres pruning keeps): the count is read on the device.
    k_centre_dist<<<grid_for(prune_limit(s), kThreads / 32, 8 * s->sms), kThreads, 0, s->stream>>>(
        s->centres.get(), s->step.get(), s->total, shape, c, s->pick.get(), s->cd.get());
    check_launch("k_centre_dist");
    cd = s->cd.get();
  }
  const long long block = s->block_rows();
  const int blocks_per_pass = grid_for(std::min(block, s->rows), kThreads / 32, 8 * s->sms);
  const long long passes = ceil_div(s->rows, block);
  std::vector<int> rows_needed;
  std::vector<std::vector<unsigned char>> gathered((size_t)s->M);  // kept until the pass's sync
  for (long long p = 0; p < passes; ++p) {
    const long long b0 = p * block, n = std::min(block, s->rows - b0);
    View v{};
    if (s->resident) {
      v = s->range_view(b0, n);
    } else {
      // Streamed: only the rows pruning cannot skip cross the link, packed at the front of the
      // staging buffers; k_update finds row r's values through slot[r].
      const int need_threads = (int)std::min<long long>(kNeedThreads, (n + 31) / 32 * 32);
      k_needed_rows<<<1, need_threads, 0, s->stream>>>(b0, n, cd, s->g_slack, s->g_margin, s->delta.get(), s->owner.get(),
                                                       s->taken.get(), s->pick.get(), s->need_slot.get(), s->need_rows.get());
      check_launch("k_needed_rows");
      rows_needed.resize((size_t)n + 1);
      s->download(rows_needed.data(), s->need_rows.get(), ((size_t)n + 1) * sizeof(int));
      s->sync();
      const long long count = rows_needed[(size_t)n];
      v.start = b0;
      v.count = n;
      v.local = s->need_slot.get();
      for (int m = 0; m < s->M; ++m) {
        const size_t rb = (size_t)s->dims[m] * s->elem(m);
        std::vector<unsigned char>& g = gathered[(size_t)m];
        g.resize((size_t)count * rb);
        const auto* src = static_cast<const unsigned char*>(s->host[m]) + (size_t)b0 * rb;
        for (long long i = 0; i < count; ++i) std::memcpy(g.data() + i * rb, src + (size_t)rows_needed[(size_t)i] * rb, rb);
        s->upload(s->stage[m].get(), g.data(), g.size());
        v.data[m] = s->stage[m].get();
      }
    }
    k_update<<<blocks_per_pass, kThreads, 0, s->stream>>>(v, shape, c, cd, s->step.get(), s->g_slack, s->g_margin, pruning ? 1 : 0,
                                                          s->delta.get(), s->owner.get(), s->taken.get(), s->pick.get(),
                                                          s->part_v.get() + p * blocks_per_pass, s->part_i.get() + p * blocks_per_pass);
    check_launch("k_update");
    if (!s->resident) s->sync();  // the staging buffer is reused
  }
  k_final_max<<<1, kThreads, 0, s->stream>>>(s->part_v.get(), s->part_i.get(), (int)(blocks_per_pass * passes), s->pick.get(),
                                             s->delta_max.get(), s->argmax.get(), s->step.get());
  check_launch("k_final_max");
}

// Writes row `row`'s normalised values (from the host copy) as the newest centre: to cv, and to
// its slot among the kept centres when pruning.
void upload_centre(pp_cuda_select* s, long long row, long long id, bool pruning) {
  std::vector<float> cvh((size_t)s->total);
  s->normalised_row(row, cvh.data());
  s->upload(s->cv.get(), cvh.data(), s->total * sizeof(float));
  if (pruning) s->upload(s->centres.get() + id * s->total, cvh.data(), s->total * sizeof(float));
  s->sync();  // cvh is pageable and about to go away
}

// Sets the device pick counters (the next pick is step `t` of this call and centre `id`).
void set_counter(pp_cuda_select* s, long long t, long long id) {
  const PickCounter at{(int)t, (int)id};
  s->upload(s->step.get(), &at, sizeof at);
}

// Steps 1–2 of a pick: choose it (argmax of δ, the MMCSAL score, or sampleSquared) and record it;
// resident pools also write its row as the newest centre.
void enqueue_choose_and_record(pp_cuda_select* s, const View& all, bool pruning, int score_blocks, long long sblocks) {
  const long long rows = s->rows;
  if (s->g_mode == PP_GREEDY_SAMPLE_SQUARED) {
    k_sample_blocks<<<(unsigned)sblocks, kSampleThreads, 0, s->stream>>>(s->delta.get(), s->taken.get(), rows, s->sblock_sums.get(),
                                                                         s->sblock_first.get(), s->sblock_last.get());
    check_launch("k_sample_blocks");
    k_sample_pick<<<1, kSampleThreads, 0, s->stream>>>(s->delta.get(), s->taken.get(), rows, sblocks, s->sblock_sums.get(),
                                                       s->sblock_first.get(), s->sblock_last.get(), s->uniforms.get(), s->step.get(),
                                                       s->pick.get());
    check_launch("k_sample_pick");
  } else if (s->g_has_base) {
    k_score<<<score_blocks, kThreads, 0, s->stream>>>(s->base.get(), s->delta.get(), s->taken.get(), rows, s->g_w, s->step.get(),
                                                      s->delta_max.get(), s->part_i.get(), s->part_s.get());
    check_launch("k_score");
    k_final_score<<<1, kThreads, 0, s->stream>>>(s->part_s.get(), s->part_i.get(), score_blocks, s->pick.get());
    check_launch("k_final_score");
  } else {
    k_pick_argmax<<<1, 1, 0, s->stream>>>(s->argmax.get(), s->pick.get());
    check_launch("k_pick_argmax");
  }
  k_record<<<1, kThreads, 0, s->stream>>>(s->pick.get(), s->step.get(), s->delta.get(), s->delta_max.get(), s->taken.get(),
                                          s->picks.get(), s->div.get(), s->div_max.get(), all, s->shape(), s->cv.get(),
                                          s->resident && pruning ? s->centres.get() : nullptr, s->total, s->resident ? 1 : 0);
  check_launch("k_record");
}

// Everything a captured pick bakes in (pointers, sizes, flags): the graph is reused while this is
// unchanged and captured again otherwise.
std::vector<uint64_t> pick_graph_key(const pp_cuda_select* s, bool pruning, int score_blocks, long long sblocks) {
  auto bits = [](double x) {
    uint64_t b;
    std::memcpy(&b, &x, sizeof b);
    return b;
  };
  std::vector<uint64_t> key = {(uint64_t)pruning, (uint64_t)s->g_mode, (uint64_t)s->g_has_base, (uint64_t)s->g_form, bits(s->g_gamma),
                               bits(s->g_w), bits(s->g_slack), bits(s->g_margin), (uint64_t)s->rows, (uint64_t)score_blocks,
                               (uint64_t)sblocks, (uint64_t)s->total, (uint64_t)s->sms};
  for (const void* p : {(const void*)s->delta.get(), (const void*)s->owner.get(), (const void*)s->taken.get(), (const void*)s->pick.get(),
                        (const void*)s->step.get(), (const void*)s->part_v.get(), (const void*)s->part_i.get(), (const void*)s->part_s.get(),
                        (const void*)s->delta_max.get(), (const void*)s->argmax.get(), (const void*)s->picks.get(), (const void*)s->div.get(),
                        (const void*)s->div_max.get(), (const void*)s->uniforms.get(), (const void*)s->sblock_sums.get(),
                        (const void*)s->sblock_first.get(), (const void*)s->sblock_last.get(), (const void*)s->base.get(),
                        (const void*)s->cv.get(), (const void*)s->centres.get(), (const void*)s->cd.get()})
    key.push_back((uint64_t)(uintptr_t)p);
  for (int m = 0; m < s->M; ++m) {
    key.push_back((uint64_t)(uintptr_t)s->dev[m].get());
    key.push_back((uint64_t)(uintptr_t)s->inv[m].get());
  }
  return key;
}

// One pick of a resident pool: a launch of the captured graph (captured first when the key changed).
void replay_pick(pp_cuda_select* s, bool pruning, int score_blocks, long long sblocks) {
  std::vector<uint64_t> key = pick_graph_key(s, pruning, score_blocks, sblocks);
  if (!s->pick_graph.matches(key)) {
    s->pick_graph.reset();
    const View all = s->range_view(0, s->rows);
    check(cudaStreamBeginCapture(s->stream, cudaStreamCaptureModeThreadLocal), "cudaStreamBeginCapture");
    cudaGraph_t graph = nullptr;
    try {
      enqueue_choose_and_record(s, all, pruning, score_blocks, sblocks);
      enqueue_update(s, pruning);
    } catch (...) {
      cudaStreamEndCapture(s->stream, &graph);  // ends the (failed) capture; the stream is usable again
      if (graph) cudaGraphDestroy(graph);
      cudaGetLastError();
      throw;
    }
    // A failed capture or instantiation is not sticky: its error is cleared so later calls work.
    const cudaError_t ended = cudaStreamEndCapture(s->stream, &graph);
    if (ended != cudaSuccess) cudaGetLastError();
    check(ended, "cudaStreamEndCapture");
    cudaGraphExec_t exec = nullptr;
    const cudaError_t made = cudaGraphInstantiate(&exec, graph, 0);
    cudaGraphDestroy(graph);
    if (made != cudaSuccess) cudaGetLastError();
    check(made, "cudaGraphInstantiate");
    s->pick_graph.set(exec, std::move(key));
  }
  check(cudaGraphLaunch(s->pick_graph.exec(), s->stream), "cudaGraphLaunch");
}

}  // namespace
}  // namespace pp_cuda::sel

using namespace pp_cuda;
using namespace pp_cuda::sel;

extern "C" {

int pp_cuda_select_greedy_init(pp_cuda_select* s, int form, double gamma, const float* base, double w_diversity,
                               const uint8_t* exclude, int mode, char* err, size_t err_len) {
  return guarded(err, err_len, [&] {
    if (form == PP_FORM_SIMILARITY) fail("greedy: the similarity form is not a distance");
    if (mode < 0 || mode >= PP_GREEDY_MODE_COUNT) fail("greedy: unknown mode " + std::to_string(mode));
    check_cross_dims(s->dims, form, gamma);
    const size_t rows = (size_t)s->rows;
    s->g_ready = false;
    s->delta.resize(rows);
    s->owner.resize(rows);
    s->taken.resize(rows);
    s->cv.resize(s->total);
    s->pick.resize(1);
    s->step.resize(1);
    s->delta_max.resize(1);
    s->argmax.resize(1);
    if (base) {
      s->base.resize(rows);
      s->upload(s->base.get(), base, rows * sizeof(float));
    }
    s->g_form = form;
    s->g_gamma = (float)gamma;
    s->g_w = w_diversity;
    s->g_mode = mode;
    s->g_has_base = base != nullptr;
    std::vector<float> inf(rows, INFINITY);
    std::vector<int> none(rows, -1);
    s->upload(s->delta.get(), inf.data(), rows * sizeof(float));
    s->upload(s->owner.get(), none.data(), rows * sizeof(int));
    s->upload(s->taken.get(), exclude, rows);
    // Max δ / argmax over candidates with no centre: +inf at the first candidate.
    long long first = -1;
    for (size_t i = 0; i < rows && first < 0; ++i)
      if (!exclude[i]) first = (long long)i;
    const float dmax = first >= 0 ? INFINITY : -INFINITY;
    s->upload(s->delta_max.get(), &dmax, sizeof(float));
    s->upload(s->argmax.get(), &first, sizeof(long long));
    s->sync();
    s->g_count = 0;
    const pp::sel::Metric metric{form, gamma};
    s->g_slack = 1.0 + pp::sel::prune_factor(metric, s->M);
    s->g_margin = pp::sel::prune_margin(metric, std::vector<int64_t>(s->dims.begin(), s->dims.end()));
    s->g_ready = true;
  });
}

int pp_cuda_select_greedy_add(pp_cuda_select* s, const int32_t* idx, int64_t n, char* err, size_t err_len) {
  return guarded(err, err_len, [&] {
    if (!s->g_ready) fail("greedyAddCenters before greedyInit");
    for (int64_t a = 0; a < n; ++a)
      if (idx[a] < 0 || idx[a] >= s->rows) fail("greedyAddCenters: row out of range");
    // Given centres come from the host one by one: direct launches (no graph).
    reserve_update(s, s->g_count, s->g_count + n);
    set_counter(s, 0, s->g_count);
    const unsigned char one = 1;
    for (int64_t a = 0; a < n; ++a) {
      const long long id = s->g_count;
      const int row = idx[a];
      s->upload(s->pick.get(), &row, sizeof(int));
      s->upload(s->taken.get() + row, &one, 1);
      upload_centre(s, row, id, pruning_for(s, id));
      enqueue_update(s, pruning_for(s, id));
      s->g_count = id + 1;
    }
    s->sync();
  });
}

int pp_cuda_select_greedy_step(pp_cuda_select* s, int64_t steps, const double* uniforms, int32_t* picks, float* diversity,
                               float* diversity_max, int64_t* made, char* err, size_t err_len) {
  return guarded(err, err_len, [&] {
    if (!s->g_ready) fail("greedyStep before greedyInit");
    *made = 0;
    if (steps <= 0) return;
    // Room for at least kMinCallSteps picks, so that calls of different lengths (the drivers call
    // with up to 64) keep the captured pick's buffers.
    const size_t room = std::max<size_t>((size_t)steps, kMinCallSteps);
    s->picks.resize(room);
    s->div.resize(room);
    s->div_max.resize(room);
    const long long rows = s->rows;
    const long long sblocks = ceil_div(rows, kSampleBlock);
    if (s->g_mode == PP_GREEDY_SAMPLE_SQUARED) {
      if (!uniforms) fail("sampleSquared needs uniforms");
      s->uniforms.resize(room);
      s->upload(s->uniforms.get(), uniforms, steps * sizeof(double));
      s->sblock_sums.resize((size_t)sblocks);
      s->sblock_first.resize((size_t)sblocks);
      s->sblock_last.resize((size_t)sblocks);
    }
    const int score_blocks = grid_for(rows, kThreads, 4 * s->sms);
    if (s->g_has_base) {
      s->part_s.resize((size_t)score_blocks);
      s->part_i.resize(std::max(s->part_i.size(), (size_t)score_blocks));
    }
    reserve_update(s, s->g_count, s->g_count + steps);
    set_counter(s, 0, s->g_count);
    if (s->resident) {
      // The whole call is queued without waiting: one graph launch per pick.
      for (int64_t t = 0; t < steps; ++t) replay_pick(s, pruning_for(s, s->g_count + t), score_blocks, sblocks);
    } else {
      for (int64_t t = 0; t < steps; ++t) {
        const long long id = s->g_count + t;
        const bool pruning = pruning_for(s, id);
        enqueue_choose_and_record(s, View{}, pruning, score_blocks, sblocks);
        // The pick's row is read from the caller's arrays (one sync per pick).
        int p = -1;
        s->download(&p, s->pick.get(), sizeof(int));
        s->sync();
        if (p < 0) break;
        upload_centre(s, p, id, pruning);
        enqueue_update(s, pruning);
      }
    }
    std::vector<int32_t> hp((size_t)steps);
    s->download(hp.data(), s->picks.get(), steps * sizeof(int));
    s->download(diversity, s->div.get(), steps * sizeof(float));
    s->download(diversity_max, s->div_max.get(), steps * sizeof(float));
    s->sync();
    int64_t n = 0;
    while (n < steps && hp[n] >= 0) {
      picks[n] = hp[n];
      ++n;
    }
    *made = n;
    s->g_count += n;
  });
}

}  // extern "C"

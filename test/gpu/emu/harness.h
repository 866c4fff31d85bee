// What every emulator checker (parity.cpp, select_parity.cpp, warm_parity.cpp) shares: the seeded
// generator, the failure count and EXPECT, and the emulated runtime's knobs (emu_runtime.cpp).
// Each checker is one translation unit, so the definitions below live in it.
#pragma once
#include <cstddef>
#include <cstdio>
#include <random>

extern long emu_copies, emu_pageable_large_copies, emu_pinned_copies, emu_h2d_bytes;
extern long emu_device_syncs, emu_live_streams, emu_fail_mallocs_after, emu_blocking_frees, emu_stream_syncs;
void emu_set_mem(size_t bytes);
size_t emu_used_mem();
void emu_set_schedule(unsigned long long seed);
// Kernel launches: run at once from host code (not recorded into a graph), graph launches,
// stream captures begun, kernels run by graph replays.
long long emu_direct_launches();
long long emu_graph_launches();
long long emu_captures();
long long emu_replayed_kernels();
extern long emu_invalidate_captures;  // > 0: that many next captures fail (invalidated at once)

static std::mt19937_64 rng;
static int failures = 0;
static double normal() {
  static std::normal_distribution<double> n(0, 1);
  return n(rng);
}
static double uni() { return std::uniform_real_distribution<double>(0, 1)(rng); }

#define EXPECT(cond, ...)                                \
  do {                                                   \
    if (!(cond)) {                                       \
      failures++;                                        \
      std::printf("  FAIL %s:%d: ", __FILE__, __LINE__); \
      std::printf(__VA_ARGS__);                          \
      std::printf("\n");                                 \
    }                                                    \
  } while (0)

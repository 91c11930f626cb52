// How the process's heap treats large blocks. glibc's malloc serves every block above 32 MB (and
// above its dynamic threshold) with its own mmap and unmaps it on free, so each training step's
// big tensors — a [V, H] head or embedding gradient is 312 MB at H = 512 with Qwen3's 152,670-row
// vocabulary — come back as fresh pages that the kernel zero-fills on first touch. Measured on a
// ~101M model (docs/performance.md, bench_step): 28% of a Stage-1 step's cycles in clear_page, and
// a step 1.5x slower than with the blocks kept. Applied by the `train` command only. The `reuse` policy serves all blocks from the heap and
// never trims it, so the memory freed by one step is what the next step's tensors get.
#pragma once

#include <string>

namespace coordexp::util {

// Applies COORDEXP_MALLOC once per process (later calls return the first result):
//   reuse (default): mallopt(M_MMAP_MAX, 0) and mallopt(M_TRIM_THRESHOLD, INT32_MAX): RSS stays
//                    at the run's peak instead of falling between steps;
//   system: glibc's defaults (also when GLIBC_TUNABLES sets any glibc.malloc tunable: the user's
//           choice wins).
// Without glibc nothing changes. Returns a line for the log ("heap: ..."); throws ConfigError naming
// COORDEXP_MALLOC for any other value.
std::string configure_heap();

}  // namespace coordexp::util

// CPU compute threads: LibTorch's intra-op pool and the system BLAS's own pool, set together.
// Debian's LibTorch runs its matmuls in the system BLAS (BLIS after scripts/setup.sh), whose thread
// count LibTorch does not control: BLIS reads BLIS_NUM_THREADS (else OMP_NUM_THREADS) once, at its
// first call, and otherwise runs single-threaded. Official LibTorch builds use MKL, which follows
// at::set_num_threads; for them the variable is harmless.
#pragma once

namespace coordexp::util {

// Threads for one process: hardware threads / LOCAL_WORLD_SIZE (torchrun's processes per node), >= 1.
int default_compute_threads();

// at::set_num_threads(n), and BLIS_NUM_THREADS = n for the BLAS unless the user exported
// BLIS_NUM_THREADS before the first call. Effective for the BLAS only before its first matmul, so
// call it at start-up. Returns n.
int set_compute_threads(int n);

}  // namespace coordexp::util

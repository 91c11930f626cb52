# All third-party dependencies come from Debian packages (see docs/dependencies.md); nothing is
# vendored. An official LibTorch (CPU or CUDA) can be used instead with -DCMAKE_PREFIX_PATH=...
find_package(Torch REQUIRED)
find_package(nlohmann_json 3 REQUIRED)
find_package(yaml-cpp REQUIRED)
find_package(CLI11 CONFIG REQUIRED)
find_package(spdlog REQUIRED)
find_package(OpenCV REQUIRED COMPONENTS core imgproc imgcodecs)
find_package(PkgConfig REQUIRED)
pkg_check_modules(PCRE2 REQUIRED IMPORTED_TARGET libpcre2-8)
find_path(UTF8PROC_INCLUDE_DIR utf8proc.h REQUIRED)
find_library(UTF8PROC_LIBRARY utf8proc REQUIRED)
add_library(coordexp_utf8proc INTERFACE)
target_include_directories(coordexp_utf8proc INTERFACE ${UTF8PROC_INCLUDE_DIR})
target_link_libraries(coordexp_utf8proc INTERFACE ${UTF8PROC_LIBRARY})
find_package(Threads REQUIRED)

# Run-time BLAS threads. Debian's LibTorch does its matmuls in the system libblas.so.3; the BLIS
# build of it (scripts/setup.sh selects it) exports only the BLAS interface, so its thread count is
# fixed at its first call. libblis.so.4, from the same BLIS package, exports the same BLAS symbols
# plus bli_thread_set_num_threads. Linking it ahead of LibTorch (as a direct dependency of every
# executable, kept with --no-as-needed) makes LibTorch's sgemm_/sgemv_/... calls bind to it, since
# an executable's own dependencies come first in symbol lookup, and lets util::ScopedComputeThreads
# run decode steps on one BLAS thread inside a trainer that uses more (docs/performance.md). With
# another BLAS (an official LibTorch with MKL) nothing is linked and util::blas_threads_settable()
# says false. -DCOORDEXP_LINK_BLIS=OFF turns it off.
option(COORDEXP_LINK_BLIS "Link BLIS's libblis.so.4 ahead of LibTorch so BLAS threads can change at run time" ON)
set(COORDEXP_BLIS_LINK "")
if(COORDEXP_LINK_BLIS)
  find_library(COORDEXP_BLIS_LIBRARY NAMES libblis.so.4 blis)
  if(COORDEXP_BLIS_LIBRARY)
    set(COORDEXP_BLIS_LINK "-Wl,--push-state,--no-as-needed" ${COORDEXP_BLIS_LIBRARY} "-Wl,--pop-state")
    message(STATUS "coordexp: BLAS calls bind to ${COORDEXP_BLIS_LIBRARY} (run-time thread count)")
  else()
    message(STATUS "coordexp: no libblis.so.4; BLAS threads are fixed at the BLAS's first call")
  endif()
endif()

# Torch's imported targets carry its compile flags (ABI define); TORCH_CXX_FLAGS mirrors them.
string(APPEND CMAKE_CXX_FLAGS " ${TORCH_CXX_FLAGS}")

# c10d: Debian's LibTorch ships the Gloo backend; its headers include <gloo/...> from libgloo-dev.
# Official LibTorch builds bundle them. CUDA/NCCL paths are compiled only when Torch provides CUDA.
set(COORDEXP_HAS_CUDA OFF)
if(TARGET torch_cuda OR TORCH_CUDA_LIBRARIES)
  set(COORDEXP_HAS_CUDA ON)
endif()
message(STATUS "coordexp: LibTorch ${Torch_VERSION}, CUDA build: ${COORDEXP_HAS_CUDA}")

set(COORDEXP_DEP_TARGETS
  ${COORDEXP_BLIS_LINK}  # first: LibTorch's BLAS calls bind to it
  ${TORCH_LIBRARIES}
  nlohmann_json::nlohmann_json
  yaml-cpp
  CLI11::CLI11
  spdlog::spdlog
  opencv_core opencv_imgproc opencv_imgcodecs
  PkgConfig::PCRE2
  coordexp_utf8proc
  Threads::Threads)
if(COORDEXP_HAS_CUDA)
  list(APPEND COORDEXP_DEP_TARGETS)
  add_compile_definitions(COORDEXP_WITH_CUDA=1)
endif()

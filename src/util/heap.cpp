// COORDEXP_MALLOC (heap.h): glibc's mallopt, applied once.
#include "coordexp/util/heap.h"

#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "coordexp/util/error.h"

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace coordexp::util {

std::string configure_heap() {
  static const std::string line = []() -> std::string {
    const char* env = std::getenv("COORDEXP_MALLOC");
    const std::string policy = env && *env ? env : "reuse";
    if (policy == "system") return "heap: glibc defaults (COORDEXP_MALLOC=system)";
    if (policy != "reuse")
      throw ConfigError("COORDEXP_MALLOC=" + policy + " is not a heap policy", "COORDEXP_MALLOC",
                        "unset it (reuse, the default) or set reuse or system");
#if defined(__GLIBC__)
    const char* tunables = std::getenv("GLIBC_TUNABLES");
    if (tunables && std::strstr(tunables, "glibc.malloc."))
      return "heap: GLIBC_TUNABLES sets malloc tunables; glibc defaults otherwise (COORDEXP_MALLOC not applied)";
    const bool ok = mallopt(M_MMAP_MAX, 0) == 1 && mallopt(M_TRIM_THRESHOLD, INT32_MAX) == 1;
    return ok ? "heap: large blocks reused between steps (COORDEXP_MALLOC=reuse; =system for glibc's defaults)"
              : "heap: mallopt refused; glibc defaults kept";
#else
    return "heap: not glibc; the C library's defaults kept";
#endif
  }();
  return line;
}

}  // namespace coordexp::util

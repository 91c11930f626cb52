# Use ccache when present (2-core machines: rebuilds must be cheap).
find_program(CCACHE_PROGRAM ccache)
if(CCACHE_PROGRAM)
  set(CMAKE_CXX_COMPILER_LAUNCHER ${CCACHE_PROGRAM})
  message(STATUS "coordexp: using ccache ${CCACHE_PROGRAM}")
endif()

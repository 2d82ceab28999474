# Finds Herald's dependencies. Debian ships no CMake config for CAF, so this
# file finds its library and headers and makes the target Herald::caf_core.
# The same for hiredis (Herald::hiredis), the Redis client behind
# `serve_options<T>::redis`. Used by Herald's own build and by HeraldConfig.cmake for consumers.
include_guard(GLOBAL)

macro(herald_find_dependencies)
  set(THREADS_PREFER_PTHREAD_FLAG ON)
  find_package(Threads REQUIRED)
  find_package(Boost 1.81 REQUIRED)
  find_package(ZLIB REQUIRED)
  # TLS (serve_options<T>::tls): Debian's libssl-dev.
  find_package(OpenSSL 3 REQUIRED)
  if(NOT TARGET Herald::caf_core)
    find_path(HERALD_CAF_INCLUDE_DIR caf/actor_system.hpp)
    find_library(HERALD_CAF_CORE_LIBRARY caf_core)
    if(NOT HERALD_CAF_INCLUDE_DIR OR NOT HERALD_CAF_CORE_LIBRARY)
      message(FATAL_ERROR
        "CAF not found: install libcaf-dev (apt-get install libcaf-dev)")
    endif()
    add_library(Herald::caf_core UNKNOWN IMPORTED)
    set_target_properties(Herald::caf_core PROPERTIES
      IMPORTED_LOCATION ${HERALD_CAF_CORE_LIBRARY}
      INTERFACE_INCLUDE_DIRECTORIES ${HERALD_CAF_INCLUDE_DIR})
  endif()
  if(NOT TARGET Herald::hiredis)
    find_path(HERALD_HIREDIS_INCLUDE_DIR hiredis/async.h)
    find_library(HERALD_HIREDIS_LIBRARY hiredis)
    if(NOT HERALD_HIREDIS_INCLUDE_DIR OR NOT HERALD_HIREDIS_LIBRARY)
      message(FATAL_ERROR
        "hiredis not found: install libhiredis-dev (apt-get install "
        "libhiredis-dev)")
    endif()
    add_library(Herald::hiredis UNKNOWN IMPORTED)
    set_target_properties(Herald::hiredis PROPERTIES
      IMPORTED_LOCATION ${HERALD_HIREDIS_LIBRARY}
      INTERFACE_INCLUDE_DIRECTORIES ${HERALD_HIREDIS_INCLUDE_DIR})
  endif()
endmacro()

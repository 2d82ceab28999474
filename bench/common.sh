# Shared by the benchmark's scripts (sourced, not run).

# default_build_dir ROOT: the build directory to take the benchmark's
# programs from when none is given: build-bench/ (made by bench/setup.sh)
# when it has them, else build/.
default_build_dir() {
  if [ -x "$1/build-bench/bench/herald-bench-server" ] \
     && [ -x "$1/build-bench/bench/herald-bench-client" ]; then
    echo "$1/build-bench"
  else
    echo "$1/build"
  fi
}

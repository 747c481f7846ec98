#!/usr/bin/env bash
# Builds the fuzz targets of fuzz/ (the fuzz preset: clang-14, libFuzzer,
# ASan + UBSan) and runs each, one after the other, for SECONDS (default 60)
# on a copy of its seed corpus kept in build/fuzz/run/ (it grows from run to
# run). Fails, naming the input that broke a target, when one is found.
#
# Usage: scripts/fuzz.sh [SECONDS] [TARGET...]   e.g. scripts/fuzz.sh 300 lease_fuzzer
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-60}
shift $(($# > 0 ? 1 : 0))
targets=("$@")
if ((${#targets[@]} == 0)); then
  for source in fuzz/*_fuzzer.cpp; do targets+=("$(basename "$source" .cpp)"); done
fi

cmake --preset fuzz >/dev/null
cmake --build --preset fuzz

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
[[ -x /usr/lib/llvm-14/bin/llvm-symbolizer ]] &&
  export ASAN_SYMBOLIZER_PATH=/usr/lib/llvm-14/bin/llvm-symbolizer

run=build/fuzz/run
failed=()
for target in "${targets[@]}"; do
  case $target in
    query_fuzzer) dict=fuzz/query.dict ;;
    joblog_fuzzer) dict=fuzz/joblog.dict ;;
    run_options_fuzzer) dict=fuzz/run.dict ;;
    flowfile_fuzzer) dict=fuzz/flow.dict ;;
    output_text_fuzzer) dict= ;;
    *) dict=fuzz/json.dict ;;
  esac
  corpus=$run/corpus/$target
  artifacts=$run/artifacts/$target
  log=$run/$target.log
  rm -rf "$artifacts"
  mkdir -p "$corpus" "$artifacts"
  cp fuzz/corpus/"$target"/* "$corpus"/
  if build/fuzz/"$target" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$artifacts"/ ${dict:+-dict=$dict} "$corpus" \
    >"$log" 2>&1; then
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    echo "fuzz: $target: ${seconds} s, ${runs:-?} runs, $(ls "$corpus" | wc -l) inputs in its corpus, nothing found"
  else
    input=$(ls -t "$artifacts"/* 2>/dev/null | head -n 1)
    tail -n 60 "$log"
    echo "fuzz: $target FAILED on ${input:-an input it did not save} (log: $log)"
    echo "fuzz: run it again with: build/fuzz/$target ${input:-}"
    failed+=("$target")
  fi
done
if ((${#failed[@]})); then
  echo "fuzz: findings in ${failed[*]}"
  exit 1
fi

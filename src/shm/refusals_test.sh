#!/usr/bin/env bash
# What ferry's shared objects refuse at compile time: each program below must
# fail to compile with a ferry message saying what is wrong.
# Usage: refusals_test.sh COMPILER INCLUDE_DIR
set -euo pipefail
compiler=$1 include=$2
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
failures=0

# refused NAME EXPECTED_MESSAGE <<< PROGRAM_BODY (a main() is added around it)
refused() {
  local name=$1 expected=$2 source="$scratch/$1.cpp" output="$scratch/$1.out"
  {
    cat <<'HEADER'
#include <ferry/shared_value.hpp>
#include <string>
#include <vector>
struct Big { long values[8]; };
HEADER
    echo "int main() {"
    cat
    echo "}"
  } > "$source"
  if "$compiler" -std=c++20 -fsyntax-only -I"$include" "$source" > "$output" 2>&1; then
    echo "FAIL $name: it compiled"
    failures=$((failures + 1))
  elif ! grep -qF -- "$expected" "$output"; then
    echo "FAIL $name: no message \"$expected\"; the compiler said:"
    head -20 "$output"
    failures=$((failures + 1))
  else
    echo "ok   $name"
  fi
}

refused string_value "T must be trivially copyable" <<< 'ferry::Value<std::string> text;'
refused vector_array "T must be trivially copyable" <<< 'ferry::Array<std::vector<int>> lists(2);'
refused pointer_value "T must be trivially copyable (and not a pointer)" <<< \
  'ferry::Value<int*> pointer;'
refused atomic_of_big "only lock-free atomics work between processes" <<< \
  'ferry::Value<Big> big; big.atomic();'

# And what must compile.
cat > "$scratch/accepted.cpp" <<'EOF2'
#include <ferry/shared_value.hpp>
#include <array>
struct Point { double x, y; };
enum class Color { red, green };
int main() {
  ferry::Value<Point> point;
  ferry::Value<Color> color;
  ferry::Array<std::array<char, 8>> names(2);
  ferry::Value<long> count;
  count.atomic().fetch_add(1);
}
EOF2
if "$compiler" -std=c++20 -fsyntax-only -I"$include" "$scratch/accepted.cpp" > "$scratch/accepted.out" 2>&1; then
  echo "ok   accepted"
else
  echo "FAIL accepted:"
  head -20 "$scratch/accepted.out"
  failures=$((failures + 1))
fi

exit $((failures > 0))

#!/usr/bin/env bash
# What ferry::Pool refuses at compile time, and how: each program below must
# fail to compile with a ferry message saying what is wrong, and with little
# else (one error, not pages of std::tuple internals).
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
    cat <<'EOF'
#include <ferry/pool.hpp>
#include <string_view>
struct Opaque {};
int two(int a, double b) { return a + static_cast<int>(b); }
int one(int a) { return a; }
int changes(int& a) { return ++a; }
int pointer(const char* text) { return text[0]; }
int view(std::string_view text) { return static_cast<int>(text.size()); }
int opaque(Opaque) { return 0; }
const int& reference(const int& a) { return a; }
EOF
    echo "int main() { ferry::Pool pool(1);"
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
  elif (( $(grep -c 'error:' "$output") > 2 )); then
    echo "FAIL $name: $(grep -c 'error:' "$output") errors where one says it all:"
    grep 'error:' "$output" | head -10
    failures=$((failures + 1))
  else
    echo "ok   $name"
  fi
}

refused too_few_arguments "the number of arguments differs" <<< 'pool.submit(two, 1);'
refused too_many_arguments "the number of arguments differs" <<< 'pool.submit(one, 1, 2);'
refused argument_of_another_type "an argument does not convert" <<< \
  'pool.submit(one, std::string("x"));'
refused non_const_reference "non-const reference (T&)" <<< 'int x = 1; pool.submit(changes, x);'
refused pointer_parameter "a pointer or a view" <<< 'pool.submit(pointer, "text");'
refused view_parameter "a pointer or a view" <<< 'pool.submit(view, std::string("text"));'
refused capturing_lambda "without captures" <<< \
  'int k = 2; pool.submit([k](int n) { return n * k; }, 1);'
refused generic_lambda "concrete parameter types" <<< 'pool.submit([](auto n) { return n; }, 1);'
refused function_object "not a capturing lambda, a std::function" <<< \
  'std::function<int(int)> f = one; pool.submit(f, 1);'
refused untransferable_parameter "cannot cross a process boundary" <<< \
  'pool.submit(opaque, Opaque{});'
refused reference_result "must return a value" <<< 'pool.submit(reference, 1);'
refused map_of_two_parameters "exactly one parameter" <<< \
  'pool.map(two, std::vector<int>{1});'
refused map_of_wrong_items "do not convert to the task's parameter" <<< \
  'pool.map(one, std::vector<std::string>{"x"});'
refused starmap_of_wrong_size "number of elements differs" <<< \
  'pool.starmap(two, std::vector<std::tuple<int>>{{1}});'
refused imap_of_capturing_lambda "without captures" <<< \
  'int k = 2; for (int r : pool.imap([k](int n) { return n * k; }, std::vector<int>{1})) (void)r;'
refused imap_of_void_task "imap needs a task that returns a value" <<< \
  'for (int r : pool.imap([](int) {}, std::vector<int>{1})) (void)r;'

if (( failures > 0 )); then
  echo "$failures refusal(s) wrong"
  exit 1
fi
echo "every refusal names the mistake"

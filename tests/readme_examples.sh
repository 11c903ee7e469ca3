#!/usr/bin/env bash
# Runs every example of README.md against a running demo, as written, and
# fails with the command and its output when one fails.
#
#   ./deploy/demo.sh --detach && tests/readme_examples.sh [--list] [--verbose] [README.md]
#
#   --list     print the examples and how each is run, run nothing
#   --verbose  print every example's output, not only a failing one's
#
# Run it from the repository root (examples use ./build/... and var/demo/...
# relative to it, and read the demo's settings with `. var/demo/env`).
#
# Which blocks are examples: every fenced block tagged ```sh must follow,
# on the line before, a marker comment saying how to run it:
#   <!-- example -->                   run it; it must exit 0 (within 60 s)
#   <!-- example fails -->             it must exit non-zero (a refusal shown on purpose)
#   <!-- example output="TEXT" -->     its output must also contain TEXT
#   <!-- example runs-for=N -->        a command that runs until stopped: it must not
#                                      fail within N s; it is then stopped (SIGTERM)
#   <!-- example timeout=N -->         allow N s instead of 60
#   <!-- example skip="WHY" -->        not run here (the demo and the tests themselves)
# Attributes combine. Illustrations (output, file formats) use ```text or
# other tags and are never run. A ```sh block without a marker is an error, so
# a new example cannot go unchecked.
#
# Each block runs in `bash -e -o pipefail`, in a session of its own that is
# killed when it ends, so nothing it starts outlives it.
set -uo pipefail

LIST=0
VERBOSE=0
README=README.md
while [ $# -gt 0 ]; do
  case "$1" in
    --list) LIST=1 ;;
    --verbose) VERBOSE=1 ;;
    -h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 0 ;;
    -*) echo "readme_examples.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    *) README=$1 ;;
  esac
  shift
done
[ -f "$README" ] || { echo "readme_examples.sh: no file '$README'" >&2; exit 2; }

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# One file per ```sh block (block-N.sh) and its marker (block-N.meta:
# "LINE ATTRIBUTES"); an unmarked block is reported and counted.
awk -v work="$WORK" '
  function fail(msg) { print FILENAME ":" NR ": " msg > "/dev/stderr"; bad++ }
  in_block && /^```/ { in_block = 0; close(file); prev = ""; next }
  in_block { print > file; next }
  /^```sh[[:space:]]*$/ {
    if (prev !~ /^<!-- example( .*)? -->[[:space:]]*$/) {
      fail("a ```sh block without an <!-- example ... --> marker on the line before")
    }
    n++
    file = sprintf("%s/block-%03d.sh", work, n)
    attrs = prev
    sub(/^<!-- example ?/, "", attrs); sub(/ ?-->[[:space:]]*$/, "", attrs)
    printf "%d %s\n", NR + 1, attrs > sprintf("%s/block-%03d.meta", work, n)
    close(sprintf("%s/block-%03d.meta", work, n))
    printf "" > file
    in_block = 1
    next
  }
  { prev = $0 }
  END { if (in_block) fail("a ```sh block that never closes"); exit (bad > 0) }
' "$README" || exit 1

# attr NAME META: the value of NAME="..." or NAME=N in META; "" if absent,
# "yes" for a bare flag.
attr() {
  local meta=$2
  if [[ "$meta" =~ (^|[[:space:]])$1=\"([^\"]*)\" ]]; then echo "${BASH_REMATCH[2]}"
  elif [[ "$meta" =~ (^|[[:space:]])$1=([^[:space:]]+) ]]; then echo "${BASH_REMATCH[2]}"
  elif [[ "$meta" =~ (^|[[:space:]])$1($|[[:space:]]) ]]; then echo yes
  fi
}

if [ "$LIST" -eq 0 ] && [ ! -f var/demo/env ]; then
  echo "readme_examples.sh: no demo running here (var/demo/env is missing):" \
    "start one with ./deploy/demo.sh --detach" >&2
  exit 2
fi

passed=0 failed=0 skipped=0
for meta_file in "$WORK"/block-*.meta; do
  [ -e "$meta_file" ] || break
  block=${meta_file%.meta}.sh
  read -r line meta < "$meta_file"
  where="$README:$line"
  if [ "$LIST" -eq 1 ]; then
    echo "== $where ${meta:+($meta)}"
    cat "$block"
    continue
  fi
  skip=$(attr skip "$meta")
  if [ -n "$skip" ]; then
    echo "skip $where: $skip"
    skipped=$((skipped + 1))
    continue
  fi
  expect_fail=$(attr fails "$meta")
  output=$(attr output "$meta")
  runs_for=$(attr runs-for "$meta")
  limit=$(attr timeout "$meta")
  limit=${limit:-${runs_for:-60}}
  out="$WORK/out"
  started=$(date +%s)
  setsid bash -e -o pipefail "$block" > "$out" 2>&1 < /dev/null &
  pid=$!
  timed_out=0
  while kill -0 "$pid" 2>/dev/null; do
    if [ $(( $(date +%s) - started )) -ge "$limit" ]; then
      timed_out=1
      # SIGTERM, not SIGINT: a background job of a script starts with SIGINT
      # ignored, and so does everything it runs.
      kill -TERM -- "-$pid" 2>/dev/null
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      break
    fi
    sleep 0.2
  done
  rc=0
  wait "$pid" || rc=$?
  kill -KILL -- "-$pid" 2>/dev/null  # whatever the block left running
  took=$(( $(date +%s) - started ))

  why=""
  if [ -n "$runs_for" ]; then
    [ "$timed_out" -eq 1 ] || [ "$rc" -eq 0 ] || why="stopped by itself with exit status $rc"
  elif [ "$timed_out" -eq 1 ]; then
    why="still running after ${limit} s"
  elif [ -n "$expect_fail" ]; then
    [ "$rc" -ne 0 ] || why="exit status 0, but the README shows it failing"
  else
    [ "$rc" -eq 0 ] || why="exit status $rc"
  fi
  if [ -z "$why" ] && [ -n "$output" ] && ! grep -qF -- "$output" "$out"; then
    why="its output lacks '$output'"
  fi
  if [ -z "$why" ]; then
    echo "ok   $where (${took} s)"
    [ "$VERBOSE" -eq 1 ] && sed 's/^/  /' "$out"
    passed=$((passed + 1))
  else
    echo "FAIL $where: $why"
    echo "---- the example:"
    sed 's/^/  /' "$block"
    echo "---- its output:"
    sed 's/^/  /' "$out" | tail -60
    echo "----"
    failed=$((failed + 1))
  fi
done
[ "$LIST" -eq 1 ] && exit 0
echo "README examples: $passed passed, $failed failed, $skipped not run here"
[ "$failed" -eq 0 ]

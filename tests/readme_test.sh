#!/usr/bin/env bash
# The ctest "readme": starts the demo stack (deploy/demo.sh --detach) on a
# free loopback port in a temporary directory, runs every README example
# against it (tests/readme_examples.sh), and stops everything however it ends.
#
#   tests/readme_test.sh SOURCE_DIR BUILD_DIR [readme_examples.sh flags, e.g. --verbose]
#
# The examples run in a scratch root: every top-level entry of SOURCE_DIR
# linked in, `build` linked to BUILD_DIR and a `var/` of its own, so they run
# exactly as written (./build/..., var/demo/...) without touching the
# checkout's var/.
set -uo pipefail
SRC=$(cd "${1:?usage: readme_test.sh SOURCE_DIR BUILD_DIR}" && pwd)
BUILD=$(cd "${2:?usage: readme_test.sh SOURCE_DIR BUILD_DIR}" && pwd)

TMP=$(mktemp -d "${TMPDIR:-/tmp}/derms-readme.XXXXXX")
ROOT="$TMP/root"
mkdir -p "$ROOT/var"
for entry in "$SRC"/* "$SRC"/.clang-format; do
  name=$(basename "$entry")
  [ -e "$entry" ] || continue
  case "$name" in build|build-*|var) continue ;; esac
  ln -s "$entry" "$ROOT/$name"
done
ln -s "$BUILD" "$ROOT/build"

stop() {
  local rc=$?
  trap - EXIT INT TERM
  if [ -f "$ROOT/var/demo/demo.pid" ]; then
    "$ROOT/deploy/demo.sh" --stop > "$TMP/stop.log" 2>&1 || cat "$TMP/stop.log"
  fi
  # Anything of the demo's session still there (a demo that did not stop).
  if [ -n "${DEMO_PGID:-}" ]; then
    kill -KILL -- "-$DEMO_PGID" 2>/dev/null || true
  fi
  rm -rf "$TMP"
  exit "$rc"
}
trap stop EXIT
trap 'exit 1' INT TERM

# A free loopback port: one nothing listens on, from a range the system does
# not hand out to outgoing connections.
PORT=""
for _ in $(seq 100); do
  p=$(( 20000 + RANDOM % 12000 ))
  if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then PORT=$p; break; fi
done
[ -n "$PORT" ] || { echo "readme_test.sh: no free port found" >&2; exit 1; }

# --duration bounds the demo even if this script is killed outright.
cd "$ROOT"
if ! ./deploy/demo.sh --detach --no-build --port "$PORT" --duration 400; then
  echo "readme_test.sh: the demo did not start" >&2
  exit 1
fi
DEMO_PGID=$(cat var/demo/demo.pid)  # setsid: the demo leads its own process group
echo
tests/readme_examples.sh "${@:3}" README.md

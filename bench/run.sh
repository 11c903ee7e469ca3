#!/usr/bin/env bash
# Every benchmark, each side by side with its baseline in the same run, on
# its own Mosquitto on a loopback port. Prints a table and writes
# var/bench/results.json. Figures are medians of BENCH_REPEATS runs (default
# 3) with their spread (min..max).
#
#   ./bench/run.sh                      # everything
#   ./bench/run.sh alloc memory         # only these, of: ingest rt footprint outbox alloc memory schedule history curtail plugin
#   BENCH_MESSAGES=100000 BENCH_REPEATS=5 BENCH_BIG_FLEET=0 ./bench/run.sh
#   BENCH_BUILD_DIR=build-bench BENCH_OUT=/tmp/bench ./bench/run.sh alloc
#
# ingest, rt and footprint go through the broker. rt holds its N edge agents,
# and its floor N plain responders, in the same number of child processes
# (BENCH_RT_PROCS, default one per 1,000 clients), so that neither side
# measures one process's Paho juggling thousands of sockets.
# alloc (dispatch allocation down a virtual DER tree vs one pass over the members, per policy) and
# memory (aggregator bytes per DER with the fleet loaded vs the DER's wire
# messages, one process per run) are in-process, and so is schedule (the
# cheapest charging schedule for one device over a week of 5-minute prices,
# closed form vs GLPK's simplex on the same instance, same cost required).
# history is in-process too, on SQLite files in $BENCH_OUT/history: the
# Store's telemetry insert rate beside a bare batched INSERT loop into the
# same schema (runs alternating, in one process), the same ingest with long
# analytical queries running on another connection beside it alone, and the
# bytes a simulated fleet's rollups take on disk, projected to five years of
# 1,000 DERs (and raw rows per sample, for the raw window).
# curtail is in-process too: the fair PV curtailment LP on the IEEE 123-bus
# over-voltage scenario, built and solved by C++/GLPK beside the same LP
# built independently in Python and solved by SciPy's HiGHS
# (bench/python_curtail.py), the four policies, objectives equal to 1e-6.
# outbox is the edge agent's footprint at 1-second telemetry with its SQLite
# outbox in use: the broker away (every sample kept), and away with the
# outbox full at its cap (100,000 samples; every sample drops the oldest),
# each beside the same agent keeping its samples in memory (--outbox memory).
# plugin: the broker's throughput on the ingest stream (one DER's telemetry at
# QoS 1, published under its own login, to a subscriber logged in as the
# aggregator) with the DERMS broker plugin loaded (identity, ACL, payload
# validation, rate limiter; its rate and burst raised so nothing is dropped)
# against the same broker configuration without it, runs alternating.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
M=${BENCH_MESSAGES:-200000}        # telemetry messages per ingest run
R=${BENCH_REPEATS:-3}
BIG=${BENCH_BIG_FLEET:-10000}      # 0 skips the 10,000-agent round trip
RT_PROCS=${BENCH_RT_PROCS:-0}      # processes holding a round trip's clients (0: one per 1,000)
FOOTPRINT_S=${BENCH_FOOTPRINT_S:-20}
FLEET=${BENCH_FLEET_DERS:-100000}  # DERs in the alloc and memory benchmarks
ALLOC_REPEATS=${BENCH_ALLOC_REPEATS:-5}  # timed allocations per alloc run, after a warm-up
SCHED_INTERVALS=${BENCH_SCHEDULE_INTERVALS:-2016}  # 5-minute prices: a week
SCHED_REPEATS=${BENCH_SCHEDULE_REPEATS:-21}       # timed solves of each kind per schedule run
POLICIES=${BENCH_POLICIES:-pro_rata soc_balance merit_order fair_share}
HIST_RECORDS=${BENCH_HISTORY_RECORDS:-500000}          # telemetry rows per store-insert run
HIST_QUERY_RECORDS=${BENCH_HISTORY_QUERY_RECORDS:-300000}  # per run of the ingest under queries
HIST_PREFILL=${BENCH_HISTORY_PREFILL:-2000000}         # rows in the table the queries read
HIST_DAYS=${BENCH_HISTORY_DAYS:-14}                    # days of 1-minute telemetry rolled up
CURTAIL_REPEATS=${BENCH_CURTAIL_REPEATS:-21}           # timed builds+solves of each side per run
BUILD=${BENCH_BUILD_DIR:-build}    # another tree is configured and built here, bench targets only
DIR=${BENCH_OUT:-$ROOT/var/bench}  # replaced

ALL="ingest rt footprint outbox alloc memory schedule history curtail plugin"
SEL=${*:-$ALL}
for b in $SEL; do
  case " $ALL " in *" $b "*) ;; *) echo "run.sh: unknown benchmark '$b' (one of: $ALL)" >&2; exit 2 ;; esac
done
want() { case " $SEL " in *" $1 "*) return 0 ;; esac; return 1; }

./deploy/install-deps.sh
# The Python comparison runs on Debian's interpreter and packages.
if want ingest; then
    for p in python3-paho-mqtt python3-protobuf; do
      dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || EXTRA="${EXTRA:-} $p"
    done
fi
if [ -n "${EXTRA:-}" ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $EXTRA >/dev/null
fi
case $BUILD in /*) ;; *) BUILD="$ROOT/$BUILD" ;; esac
if [ "$BUILD" = "$ROOT/build" ]; then
  ./deploy/build.sh >/dev/null
else
  cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE="${BUILD_TYPE:-RelWithDebInfo}" >/dev/null
  cmake --build "$BUILD" -j"$(nproc)" --target derms-bench derms-edge-agent derms_broker_plugin \
    derms-broker-passwd >/dev/null
fi
if want curtail && [ ! -x "$BUILD/bench/derms-feeder-bench" ]; then
  cmake --build "$BUILD" -j"$(nproc)" --target derms-feeder-bench >/dev/null
fi

rm -rf "$DIR"; mkdir -p "$DIR/py"
BENCH="$BUILD/bench/derms-bench"
EDGE="$BUILD/edge_agent/derms-edge-agent"
if want ingest; then protoc --python_out="$DIR/py" -I "$ROOT/proto" derms/v1/derms.proto; fi
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
# The broker holds a descriptor per client: the big round trip needs more
# than BIG (or 1,000) of them. Beyond the hard limit only root can go.
NOFILE=$(( (BIG > 1000 ? BIG : 1000) + 1000 ))
if want rt && [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt "$NOFILE" ]; then
  ulimit -n "$NOFILE" 2>/dev/null || true
fi
if want rt && [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt "$NOFILE" ]; then
  echo "run.sh: ulimit -n is $(ulimit -n) (hard $(ulimit -Hn)), too few for $BIG clients on one broker;" \
    "raise the hard limit or set BENCH_BIG_FLEET lower" >&2
  exit 1
fi

BROKER_PID=""
trap '[ -z "$BROKER_PID" ] || kill $BROKER_PID 2>/dev/null || true; wait 2>/dev/null || true' EXIT
if want ingest || want rt || want footprint || want plugin; then
  PORT=18900
  while (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; do PORT=$((PORT + 1)); done
  BROKER="tcp://127.0.0.1:$PORT"
  cat > "$DIR/mosquitto.conf" <<CONF
listener $PORT 127.0.0.1
allow_anonymous true
user $(id -un)
persistence false
max_inflight_messages 1000
# 0 should mean "no limit" but drops every message in 2.0.11: a large bound.
max_queued_messages 10000000
max_connections -1
CONF
  mosquitto -c "$DIR/mosquitto.conf" > "$DIR/mosquitto.log" 2>&1 &
  BROKER_PID=$!
  for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.1; done
fi

field() { sed -n "s/.*\"$1\": \([0-9.e+-]*\).*/\1/p" "$2" | tail -1; }

# A consumer on the telemetry stream, then the load generator pinned to one
# core. Prints the consumer's rate (messages per second, first to last).
ingest_run() {
  local out="$DIR/consumer.out"
  : > "$out"
  "$@" > "$out" 2>>"$DIR/consumer.err" &
  local pid=$!
  for _ in $(seq 300); do grep -q READY "$out" && break; sleep 0.1; done
  taskset -c 0 "$BENCH" --broker "$BROKER" loadgen --messages "$M" --ders 1000 > "$DIR/loadgen.out"
  wait "$pid" || { echo "consumer failed: $*" >&2; cat "$out" >&2; return 1; }
  field rate "$out"
}

# median and min..max of the numbers on stdin
stats() { sort -g | awk '{v[NR]=$1} END {m = (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2;
  printf "%.6g %.6g %.6g\n", m, v[1], v[NR]}'; }

declare -A S   # name -> "median min max"
collect() { local name=$1; shift; local vals=""; for ((i=0; i<R; i++)); do vals+="$("$@")"$'\n'; done
  S[$name]=$(printf '%s' "$vals" | stats); echo "  $name: ${S[$name]}" >&2; }
# The same for a command printing two numbers measured side by side in one
# process: ours, then its baseline.
collect_pair() { local a=$1 b=$2 out x y va="" vb=""; shift 2
  for ((i=0; i<R; i++)); do out=$("$@"); read -r x y <<< "$out"; va+="$x"$'\n'; vb+="$y"$'\n'; done
  S[$a]=$(printf '%s' "$va" | stats); S[$b]=$(printf '%s' "$vb" | stats)
  echo "  $a: ${S[$a]}; $b: ${S[$b]}" >&2; }

if want plugin; then
  # A second broker: the first one's configuration plus the plugin.
  PPORT=$((PORT + 1))
  while (exec 3<>"/dev/tcp/127.0.0.1/$PPORT") 2>/dev/null; do PPORT=$((PPORT + 1)); done
  printf 'bat-00000\nagg\n' | "$BUILD/broker_plugin/derms-broker-passwd" --iterations 1000 \
    --passwords "$DIR/plugin-passwords.txt" > "$DIR/plugin.passwd"
  DER_PW=$(awk '$1 == "bat-00000" {print $2}' "$DIR/plugin-passwords.txt")
  AGG_PW=$(awk '$1 == "agg" {print $2}' "$DIR/plugin-passwords.txt")
  sed "s/^listener $PORT /listener $PPORT /" "$DIR/mosquitto.conf" > "$DIR/mosquitto-plugin.conf"
  cat >> "$DIR/mosquitto-plugin.conf" <<CONF
plugin $BUILD/broker_plugin/derms_broker_plugin.so
plugin_opt_password_file $DIR/plugin.passwd
plugin_opt_aggregators agg
plugin_opt_rate_factor 1000000
plugin_opt_rate_burst 1000000
CONF
  mosquitto -c "$DIR/mosquitto-plugin.conf" > "$DIR/mosquitto-plugin.log" 2>&1 &
  PLUGIN_BROKER_PID=$!
  trap '[ -z "$BROKER_PID" ] || kill $BROKER_PID 2>/dev/null || true; kill $PLUGIN_BROKER_PID 2>/dev/null || true; wait 2>/dev/null || true' EXIT
  for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$PPORT") 2>/dev/null && break; sleep 0.1; done
  # One run on BROKER_URI: the counter's rate (messages per second).
  plugin_run() {
    local out="$DIR/consumer.out"
    : > "$out"
    "$BENCH" --broker "$1" --username agg --password "$AGG_PW" count --messages "$M" \
      > "$out" 2>>"$DIR/consumer.err" &
    local pid=$!
    for _ in $(seq 300); do grep -q READY "$out" && break; sleep 0.1; done
    taskset -c 0 "$BENCH" --broker "$1" --username bat-00000 --password "$DER_PW" \
      loadgen --messages "$M" --ders 1 > "$DIR/loadgen.out"
    wait "$pid" || { echo "consumer failed on $1" >&2; cat "$out" >&2; return 1; }
    field rate "$out"
  }
  plugin_pair() { echo "$(plugin_run "tcp://127.0.0.1:$PPORT") $(plugin_run "$BROKER")"; }
  echo "Broker plugin: $M telemetry messages, QoS 1, with the plugin vs without, $R pairs" >&2
  collect_pair plugin_broker plain_broker plugin_pair
  grep -h "derms:" "$DIR/mosquitto-plugin.log" | head -3 >&2 || true
fi

if want ingest; then
  echo "Ingest: $M telemetry messages from 1,000 DERs, QoS 1, $R runs each" >&2
  collect bare ingest_run "$BENCH" --broker "$BROKER" count --messages "$M"
  collect aggregator ingest_run "$BENCH" --broker "$BROKER" ingest --messages "$M" --db "$DIR/ingest.db"
  collect python ingest_run /usr/bin/python3 bench/python_ingest.py --broker-host 127.0.0.1 \
    --broker-port "$PORT" --messages "$M" --db "$DIR/python.db" --proto-out "$DIR/py"
fi

# Prints the seconds taken; a run that timed out is noted in $DIR/timeouts.
# Every run's result line (with the processes used and their CPU seconds)
# is kept in $DIR/rt.jsonl.
rt_run() {
  "$BENCH" --broker "$BROKER" "$@" --procs "$RT_PROCS" > "$DIR/rt.out" 2>>"$DIR/rt.err" || true
  grep '"name": "rt_' "$DIR/rt.out" >> "$DIR/rt.jsonl" || true
  grep -q '"timeout": true' "$DIR/rt.out" && echo "$* --ders" >> "$DIR/timeouts"
  field seconds "$DIR/rt.out"
}
# The processes that held the clients of the last round trip of this kind and size.
rt_procs() { { grep "\"name\": \"$1\"" "$DIR/rt.jsonl" 2>/dev/null || true; } | grep "\"ders\": $2," |
  tail -1 | sed -n 's/.*"procs": \([0-9]*\).*/\1/p' || true; }
if want rt; then
  echo "Dispatch round trip" >&2
  collect rt_floor_1000 rt_run rt-floor --ders 1000
  collect rt_dispatch_1000 rt_run rt-dispatch --ders 1000 --dir "$DIR/rt"
  if [ "$BIG" -gt 0 ]; then
    collect rt_floor_big rt_run rt-floor --ders "$BIG"
    collect rt_dispatch_big rt_run rt-dispatch --ders "$BIG" --dir "$DIR/rt"
  fi
fi

# Resident memory (kB) and CPU (% of one core) of a process after a while.
footprint() {
  "$@" > /dev/null 2>&1 &
  local pid=$!
  sleep "$FOOTPRINT_S"
  local rss ticks
  rss=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
  ticks=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  kill -INT "$pid"; wait "$pid" 2>/dev/null || true
  echo "$rss $(awk -v t="$ticks" -v hz="$(getconf CLK_TCK)" -v s="$FOOTPRINT_S" 'BEGIN {printf "%.3f", 100 * t / hz / s}')"
}
if want footprint; then
  echo "Edge agent footprint at 1 s telemetry, ${FOOTPRINT_S} s" >&2
  read -r EDGE_RSS EDGE_CPU < <(footprint "$EDGE" --broker "$BROKER" --der-id bench-edge --type BATTERY \
    --substation bench --max-discharge-kw 5 --max-charge-kw 5 --capacity-kwh 10 \
    --telemetry-interval-s 1 --state-dir "$DIR/edge-state" --log-level warn)
  read -r MIN_RSS MIN_CPU < <(footprint "$BENCH" --broker "$BROKER" minimal-edge --duration-s $((FOOTPRINT_S + 5)))
  EDGE_BYTES=$(stat -c %s "$EDGE")
  strip -o "$DIR/edge-stripped" "$EDGE"; EDGE_STRIPPED=$(stat -c %s "$DIR/edge-stripped")
fi

if want outbox; then
  echo "Edge agent footprint with the outbox in use (broker away), 1 s telemetry, ${FOOTPRINT_S} s each" >&2
  # Nothing listens on port 1: every connect is refused, so every sample is kept.
  AWAY="tcp://127.0.0.1:1"
  edge_away() { footprint "$EDGE" --broker "$AWAY" --der-id bench-outbox --type BATTERY --substation bench \
    --max-discharge-kw 5 --max-charge-kw 5 --capacity-kwh 10 --telemetry-interval-s 1 --log-level error "$@"; }
  read -r OB_RSS OB_CPU < <(edge_away --state-dir "$DIR/outbox-away")
  OB_ROWS=$(python3 -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("SELECT COUNT(*) FROM outbox").fetchone()[0])' \
    "$DIR/outbox-away/bench-outbox.outbox.sqlite")
  # An outbox already at its default cap: 100,000 samples of a day and more
  # (70-byte payloads, one a second back from now).
  mkdir -p "$DIR/outbox-full"
  python3 - "$DIR/outbox-full/bench-outbox.outbox.sqlite" <<'PY'
import os, sqlite3, sys, time
db = sqlite3.connect(sys.argv[1])
db.executescript('''
CREATE TABLE outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, seq INTEGER NOT NULL,
  timestamp_ms INTEGER NOT NULL, payload BLOB NOT NULL);
CREATE TABLE outbox_counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT INTO outbox_counters VALUES ('dropped', 0);
PRAGMA user_version = 1;''')
now = int(time.time() * 1000)
db.executemany('INSERT INTO outbox (seq, timestamp_ms, payload) VALUES (?, ?, ?)',
               ((i, now - (100000 - i) * 1000, os.urandom(70)) for i in range(1, 100001)))
db.commit()
PY
  read -r OBF_RSS OBF_CPU < <(edge_away --state-dir "$DIR/outbox-full")
  OBF_DROPPED=$(python3 -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("SELECT value FROM outbox_counters").fetchone()[0])' \
    "$DIR/outbox-full/bench-outbox.outbox.sqlite")
  read -r OBM_RSS OBM_CPU < <(edge_away --state-dir "$DIR/outbox-memory" --outbox memory)
fi

# Prints the median allocation ms and the floor's, from one process.
alloc_run() {
  "$BENCH" alloc --ders "$FLEET" --policy "$1" --repeats "$ALLOC_REPEATS" > "$DIR/alloc.out" || return 1
  echo "$(field alloc_ms "$DIR/alloc.out") $(field floor_ms "$DIR/alloc.out")"
}
if want alloc; then
  echo "Dispatch allocation over $FLEET DERs in a nested virtual DER tree, $ALLOC_REPEATS per run" >&2
  for p in $POLICIES; do collect_pair "alloc_$p" "alloc_floor_$p" alloc_run "$p"; done
fi

# Prints the aggregator's resident bytes per DER and the wire bytes per DER.
memory_run() {
  "$BENCH" vder-memory --ders "$FLEET" > "$DIR/memory.out" || return 1
  echo "$(field bytes_per_der "$DIR/memory.out") $(field wire_bytes_per_der "$DIR/memory.out")"
}
if want memory; then
  echo "Aggregator memory with $FLEET DERs loaded, one process per run" >&2
  collect_pair vder_memory vder_memory_wire memory_run
fi

# Prints the closed form's median ms and GLPK's, from one process (which
# fails unless both find the same cost).
schedule_run() {
  "$BENCH" schedule --intervals "$SCHED_INTERVALS" --repeats "$SCHED_REPEATS" > "$DIR/schedule.out" \
    || return 1
  echo "$(field ours_ms "$DIR/schedule.out") $(field lp_ms "$DIR/schedule.out")"
}
if want schedule; then
  echo "Charging schedule, one device, $SCHED_INTERVALS 5-minute prices: closed form vs GLPK LP," \
    "$SCHED_REPEATS solves each per run" >&2
  collect_pair schedule schedule_lp schedule_run
fi

# Prints the C++ side's total ms over the four policies and Python's, from
# one process (which fails unless every objective agrees to 1e-6).
curtail_run() {
  "$BUILD/bench/derms-feeder-bench" --repeats "$CURTAIL_REPEATS" --dir "$DIR" \
    --scenario "$ROOT/feeder/scenarios/ieee123_overvoltage.toml" \
    --script "$ROOT/bench/python_curtail.py" > "$DIR/curtail.out" || return 1
  cat "$DIR/curtail.out" >> "$DIR/curtail.all"
  echo "$(field ours_ms "$DIR/curtail.out") $(field py_ms "$DIR/curtail.out")"
}
if want curtail; then
  echo "Curtailment LP, IEEE 123-bus, 4 policies: C++/GLPK vs Python/SciPy HiGHS," \
    "$CURTAIL_REPEATS builds+solves each per run" >&2
  collect_pair curtail curtail_py curtail_run
fi

# The store figures come from one process each (runs alternating inside it):
# its JSON line gives each side's median, min and max.
from_json() { echo "$(field "$1" "$2") $(field "$1_min" "$2") $(field "$1_max" "$2")"; }
if want history; then
  echo "Telemetry history: Store insert vs bare INSERT loop, $HIST_RECORDS rows, $R runs each" >&2
  H="$DIR/history"
  "$BENCH" store-insert --records "$HIST_RECORDS" --repeats "$R" --dir "$H" > "$DIR/store-insert.out"
  S[hist_insert]=$(from_json ours_rate "$DIR/store-insert.out")
  S[hist_insert_floor]=$(from_json floor_rate "$DIR/store-insert.out")
  echo "  hist_insert: ${S[hist_insert]}; hist_insert_floor: ${S[hist_insert_floor]}" >&2
  echo "Telemetry history: the same ingest ($HIST_QUERY_RECORDS rows, table of $HIST_PREFILL) with" \
    "long queries running vs alone, $R runs each" >&2
  "$BENCH" store-insert-under-query --records "$HIST_QUERY_RECORDS" --prefill "$HIST_PREFILL" \
    --repeats "$R" --dir "$H" > "$DIR/store-insert-under-query.out"
  for k in rate commit_gap_ms wal_mb; do
    S[hist_busy_$k]=$(from_json "busy_$k" "$DIR/store-insert-under-query.out")
    S[hist_quiet_$k]=$(from_json "quiet_$k" "$DIR/store-insert-under-query.out")
    echo "  hist_busy_$k: ${S[hist_busy_$k]}; hist_quiet_$k: ${S[hist_quiet_$k]}" >&2
  done
  echo "Telemetry history: bytes on disk, 1,000 simulated DERs over $HIST_DAYS days" >&2
  "$BENCH" history-size --days "$HIST_DAYS" --dir "$H" > "$DIR/history-size.out"
  rm -rf "$H"
fi

med() { echo "${S[$1]}" | cut -d' ' -f1; }
spread() { echo "${S[$1]}" | awk '{printf "%s..%s", $2, $3}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }

CPU_MODEL=$(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)
{
  echo
  echo "Machine: $(nproc) cores, $CPU_MODEL, $(free -g | awk '/Mem/ {print $2}') GiB; Mosquitto $(mosquitto -h 2>/dev/null | head -1 | awk '{print $3}')"
  printf '%-58s %14s %18s %14s %8s\n' "benchmark" "ours (median)" "spread" "baseline" "ratio"
  if want ingest; then
    printf '%-58s %14s %18s %14s %8s\n' "ingest msg/s: aggregator vs bare subscriber (goal >= 0.9)" \
      "$(med aggregator)" "$(spread aggregator)" "$(med bare)" "$(ratio "$(med aggregator)" "$(med bare)")"
    printf '%-58s %14s %18s %14s %8s\n' "ingest msg/s: aggregator vs Python (paho, protobuf, sqlite3)" \
      "$(med aggregator)" "$(spread aggregator)" "$(med python)" "$(ratio "$(med aggregator)" "$(med python)")"
  fi
  if want plugin; then
    printf '%-58s %14s %18s %14s %8s\n' "broker msg/s: with the DERMS plugin vs without (goal >= 0.9)" \
      "$(med plugin_broker)" "$(spread plugin_broker)" "$(med plain_broker)" \
      "$(ratio "$(med plugin_broker)" "$(med plain_broker)")"
  fi
  if want rt; then
    printf '%-58s %14s %18s %14s %8s\n' \
      "dispatch round trip s, 1,000 agents vs plain (processes: $(rt_procs rt_dispatch 1000))" \
      "$(med rt_dispatch_1000)" "$(spread rt_dispatch_1000)" "$(med rt_floor_1000)" \
      "$(ratio "$(med rt_dispatch_1000)" "$(med rt_floor_1000)")"
    printf '%-58s %14s %18s %14s %8s\n' "  the plain round trips alone" "$(med rt_floor_1000)" \
      "$(spread rt_floor_1000)" "-" "-"
    if [ "$BIG" -gt 0 ]; then
      big_ours="$(med rt_dispatch_big)"; big_ratio="$(ratio "$(med rt_dispatch_big)" "$(med rt_floor_big)")"
      big_floor="$(med rt_floor_big)"
      if grep -q "rt-dispatch --ders $BIG" "$DIR/timeouts" 2>/dev/null; then
        big_ours="timed out"; big_ratio="-"
      fi
      if grep -q "rt-floor --ders $BIG" "$DIR/timeouts" 2>/dev/null; then
        big_floor="timed out"; big_ratio="-"
      fi
      printf '%-58s %14s %18s %14s %8s\n' \
        "dispatch round trip s, $BIG agents vs plain (processes: $(rt_procs rt_dispatch "$BIG"))" \
        "$big_ours" "$(spread rt_dispatch_big)" "$big_floor" "$big_ratio"
      printf '%-58s %14s %18s %14s %8s\n' "  the plain round trips alone" "$big_floor" \
        "$(spread rt_floor_big)" "-" "-"
    fi
  fi
  if want footprint; then
    printf '%-58s %14s %18s %14s %8s\n' "edge agent resident memory kB vs bare client" "$EDGE_RSS" "-" "$MIN_RSS" \
      "$(ratio "$EDGE_RSS" "$MIN_RSS")"
    printf '%-58s %14s %18s %14s %8s\n' "edge agent CPU % of a core vs bare client" "$EDGE_CPU" "-" "$MIN_CPU" "-"
    printf '%-58s %14s\n' "edge agent binary bytes (stripped)" "$EDGE_BYTES ($EDGE_STRIPPED)"
  fi
  if want outbox; then
    printf '%-58s %14s %18s %14s %8s\n' "edge RSS kB, broker away: SQLite outbox vs memory" "$OB_RSS" "-" "$OBM_RSS" \
      "$(ratio "$OB_RSS" "$OBM_RSS")"
    printf '%-58s %14s %18s %14s %8s\n' "edge CPU %, broker away: SQLite outbox vs memory" "$OB_CPU" "-" "$OBM_CPU" "-"
    printf '%-58s %14s %18s %14s %8s\n' "edge RSS kB, outbox full (100,000, drops) vs memory" "$OBF_RSS" "-" "$OBM_RSS" \
      "$(ratio "$OBF_RSS" "$OBM_RSS")"
    printf '%-58s %14s %18s %14s %8s\n' "edge CPU %, outbox full (100,000, drops) vs memory" "$OBF_CPU" "-" "$OBM_CPU" "-"
    printf '%-58s %14s\n' "  samples kept / dropped (oldest) in those runs" "$OB_ROWS / $OBF_DROPPED"
  fi
  if want alloc; then
    for p in $POLICIES; do
      printf '%-58s %14s %18s %14s %8s\n' "alloc ms, $p, $FLEET DERs vs 1 pass (goal < 20)" \
        "$(med "alloc_$p")" "$(spread "alloc_$p")" "$(med "alloc_floor_$p")" \
        "$(ratio "$(med "alloc_$p")" "$(med "alloc_floor_$p")")"
    done
  fi
  if want memory; then
    printf '%-58s %14s %18s %14s %8s\n' "aggregator bytes/DER, $FLEET loaded vs wire (goal < 1024)" \
      "$(med vder_memory)" "$(spread vder_memory)" "$(med vder_memory_wire)" \
      "$(ratio "$(med vder_memory)" "$(med vder_memory_wire)")"
  fi
  if want schedule; then
    # The ratio here is the baseline over ours: how many times faster.
    printf '%-58s %14s %18s %14s %8s\n' "schedule ms, week of 5-min prices vs GLPK LP (goal >= 100)" \
      "$(med schedule)" "$(spread schedule)" "$(med schedule_lp)" \
      "$(ratio "$(med schedule_lp)" "$(med schedule)")"
  fi
  if want curtail; then
    # The ratio here is the baseline over ours: how many times faster.
    printf '%-58s %14s %18s %14s %8s\n' "curtail LP ms, 123-bus, 4 policies vs SciPy HiGHS (goal >= 50)" \
      "$(med curtail)" "$(spread curtail)" "$(med curtail_py)" \
      "$(ratio "$(med curtail_py)" "$(med curtail)")"
  fi
  if want history; then
    printf '%-58s %14s %18s %14s %8s\n' "telemetry insert rows/s: Store vs bare INSERT (goal >= 0.8)" \
      "$(med hist_insert)" "$(spread hist_insert)" "$(med hist_insert_floor)" \
      "$(ratio "$(med hist_insert)" "$(med hist_insert_floor)")"
    printf '%-58s %14s %18s %14s %8s\n' "telemetry insert rows/s: long queries running vs none" \
      "$(med hist_busy_rate)" "$(spread hist_busy_rate)" "$(med hist_quiet_rate)" \
      "$(ratio "$(med hist_busy_rate)" "$(med hist_quiet_rate)")"
    printf '%-58s %14s %18s %14s %8s\n' "  longest time between commits ms: queries vs none" \
      "$(med hist_busy_commit_gap_ms)" "$(spread hist_busy_commit_gap_ms)" \
      "$(med hist_quiet_commit_gap_ms)" \
      "$(ratio "$(med hist_busy_commit_gap_ms)" "$(med hist_quiet_commit_gap_ms)")"
    printf '%-58s %14s %18s %14s %8s\n' "  largest WAL file MB: queries vs none" \
      "$(med hist_busy_wal_mb)" "$(spread hist_busy_wal_mb)" "$(med hist_quiet_wal_mb)" \
      "$(ratio "$(med hist_busy_wal_mb)" "$(med hist_quiet_wal_mb)")"
    HS="$DIR/history-size.out"
    printf '%-58s %14s %18s %14s %8s\n' "rollup bytes per 5-min bucket (all resolutions, on disk)" \
      "$(field bytes_per_bucket "$HS")" "-" "-" "-"
    printf '%-58s %14s %18s %14s %8s\n' "rollup GB, 5 years x 1,000 DERs vs 5 GB (goal < 1)" \
      "$(field projected_gb "$HS")" "-" "$(field goal_gb "$HS")" "$(field ratio "$HS")"
    printf '%-58s %14s %18s %14s %8s\n' \
      "raw telemetry bytes/sample (90 d x 1,000 DERs: $(field raw_90d_gb "$HS") GB)" \
      "$(field raw_bytes_per_sample "$HS")" "-" "-" "-"
  fi
} | tee "$DIR/table.txt"

# One entry a line, joined with commas.
J=("\"machine\": {\"cores\": $(nproc), \"cpu\": \"$CPU_MODEL\"}"
   "\"benchmarks\": \"$SEL\""
   "\"messages\": $M, \"repeats\": $R")
if want rt; then
  p=$(rt_procs rt_dispatch 1000); J+=("\"rt_procs_1000\": ${p:-null}")
  if [ "$BIG" -gt 0 ]; then p=$(rt_procs rt_dispatch "$BIG"); J+=("\"rt_big_fleet\": $BIG, \"rt_procs_big\": ${p:-null}"); fi
fi
if want alloc || want memory; then
  J+=("\"fleet_ders\": $FLEET, \"alloc_repeats_per_run\": $ALLOC_REPEATS")
fi
if want schedule; then
  J+=("\"schedule_intervals\": $SCHED_INTERVALS, \"schedule_repeats_per_run\": $SCHED_REPEATS")
fi
if want curtail; then
  J+=("\"curtail_repeats_per_run\": $CURTAIL_REPEATS")
fi
if want history; then
  J+=("\"history_records\": $HIST_RECORDS, \"history_query_records\": $HIST_QUERY_RECORDS,
    \"history_prefill\": $HIST_PREFILL, \"history_days\": $HIST_DAYS")
  J+=("\"store_insert\": $(cat "$DIR/store-insert.out")")
  J+=("\"store_insert_under_query\": $(cat "$DIR/store-insert-under-query.out")")
  J+=("\"history_size\": $(cat "$DIR/history-size.out")")
fi
for k in "${!S[@]}"; do
  read -r m lo hi <<< "${S[$k]}"
  J+=("\"$k\": {\"median\": $m, \"min\": $lo, \"max\": $hi}")
done
if want footprint; then
  J+=("\"edge_footprint\": {\"rss_kb\": $EDGE_RSS, \"cpu_pct\": $EDGE_CPU, \"baseline_rss_kb\": $MIN_RSS,
    \"baseline_cpu_pct\": $MIN_CPU, \"binary_bytes\": $EDGE_BYTES, \"stripped_bytes\": $EDGE_STRIPPED}")
fi
if want outbox; then
  J+=("\"edge_outbox\": {\"away_rss_kb\": $OB_RSS, \"away_cpu_pct\": $OB_CPU, \"full_rss_kb\": $OBF_RSS,
    \"full_cpu_pct\": $OBF_CPU, \"memory_rss_kb\": $OBM_RSS, \"memory_cpu_pct\": $OBM_CPU,
    \"away_rows_kept\": $OB_ROWS, \"full_rows_dropped\": $OBF_DROPPED}")
fi
{
  echo "{"
  for ((i=0; i<${#J[@]}; i++)); do
    if [ "$i" -lt $((${#J[@]} - 1)) ]; then echo "  ${J[$i]},"; else echo "  ${J[$i]}"; fi
  done
  echo "}"
} > "$DIR/results.json"
echo "Results: $DIR/results.json" >&2

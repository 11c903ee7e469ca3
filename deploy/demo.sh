#!/usr/bin/env bash
# The main job on embedded defaults, from a fresh Debian 12 machine: installs
# what is missing, builds, starts a local Mosquitto, the aggregator (SQLite),
# and a simulated fleet of mixed DERs on two substations in fast simulated
# time, grouped into the virtual DER tree of
# cloud_aggregator/aggregator.example.toml; drives a grid scenario where load
# swings above and below supply, shows the tree's live aggregates and each
# dispatch run, and ends with a utility dispatch to the root of the tree; at the
# start it imports a week of prices and has one EV charge at least cost.
# Once it runs it writes DIR/env, the settings a shell needs to talk to it
# (`. var/demo/env`: DEMO_PORT, DEMO_BROKER, DEMO_DB, DEMO_TIME, ...).
# Stops everything it started on Ctrl-C, SIGTERM, --stop or after --duration.
#
#   ./deploy/demo.sh [--duration SECONDS] [--count N] [--port PORT] [--speed X]
#                    [--scenario swing|none] [--dir DIR] [--detach] [--no-build]
#   ./deploy/demo.sh --stop [--dir DIR]
#
#   --duration SECONDS  wall seconds to run, then a utility dispatch and a summary;
#                       0 (default): until Ctrl-C or --stop
#   --count N           simulated DERs, 1..100000 (default 100)
#   --port PORT         the broker's loopback port, 1024..65535 (default 18830)
#   --speed X           simulated seconds per wall second, 1..10000 (default 60)
#   --scenario NAME     swing (default): a grid status for sub-1 and sub-2 every
#                       ~2 s, load swinging around supply; none: no grid status
#                       (pause a running one: touch DIR/pause, rm to resume)
#   --dir DIR           database, logs and env file (default var/demo); emptied at
#                       start, so it must be missing, empty or an earlier demo's
#   --detach            run in the background: returns once the demo is ready,
#                       printing its env file; the output goes to DIR/demo.log
#   --no-build          skip installing packages and building: use ./build as is
#   --stop              stop the demo running in --dir (detached or not)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

usage() { awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; }
bad_flag() {  # FLAG RULE: a clear error, exit 2 before anything starts
  echo "demo.sh: $1: $2 (see --help)" >&2
  exit 2
}

DURATION=0        # wall seconds; 0 = until Ctrl-C
COUNT=100         # DERs in the fleet
PORT=18830        # loopback port of the demo's broker
SPEED=60          # simulated seconds per wall second: a day in 24 minutes
SCENARIO=swing    # swing | none
DIR=var/demo      # relative to the repository
DETACH=0
BUILD=1
STOP=0
while [ $# -gt 0 ]; do
  flag=$1
  value=""
  has_value=0
  case "$flag" in
    --*=*) value=${flag#*=}; flag=${flag%%=*}; has_value=1 ;;
  esac
  case "$flag" in
    --duration|--count|--port|--speed|--scenario|--dir)
      if [ "$has_value" -eq 0 ]; then
        [ $# -ge 2 ] || bad_flag "$flag" "needs a value"
        value=$2
        shift
      fi
      ;;
    --detach|--no-build|--stop|-h|--help)
      [ "$has_value" -eq 0 ] || bad_flag "$flag" "takes no value"
      ;;
    *) bad_flag "$1" "unknown argument" ;;
  esac
  shift
  case "$flag" in
    --duration)
      [[ "$value" =~ ^[0-9]{1,7}$ ]] ||
        bad_flag --duration "'$value' must be a whole number of seconds, 0 (until stopped) or more"
      DURATION=$((10#$value)) ;;
    --count)
      [[ "$value" =~ ^[0-9]{1,6}$ ]] && ((10#$value >= 1 && 10#$value <= 100000)) ||
        bad_flag --count "'$value' must be a whole number from 1 to 100000"
      COUNT=$((10#$value)) ;;
    --port)
      [[ "$value" =~ ^[0-9]{1,5}$ ]] && ((10#$value >= 1024 && 10#$value <= 65535)) ||
        bad_flag --port "'$value' must be a whole number from 1024 to 65535"
      PORT=$((10#$value)) ;;
    --speed)
      [[ "$value" =~ ^[0-9]{1,5}$ ]] && ((10#$value >= 1 && 10#$value <= 10000)) ||
        bad_flag --speed "'$value' must be a whole number from 1 to 10000 (simulated seconds per wall second)"
      SPEED=$((10#$value)) ;;
    --scenario)
      [[ "$value" == swing || "$value" == none ]] ||
        bad_flag --scenario "'$value' must be 'swing' or 'none'"
      SCENARIO=$value ;;
    --dir)
      [ -n "$value" ] || bad_flag --dir "must not be empty"
      DIR=$value ;;
    --detach) DETACH=1 ;;
    --no-build) BUILD=0 ;;
    --stop) STOP=1 ;;
    -h|--help) usage; exit 0 ;;
  esac
done
case "$DIR" in /*) ;; *) DIR="$ROOT/$DIR" ;; esac
DIR=${DIR%/}
[ -n "$DIR" ] || bad_flag --dir "must not be /"

# The demo running in DIR, if any: its pid.
running_pid() {
  local pid
  pid=$(cat "$DIR/demo.pid" 2>/dev/null) || return 1
  [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

if [ "$STOP" -eq 1 ]; then
  pid=$(running_pid) || { echo "demo.sh: no demo running in $DIR"; exit 0; }
  echo "Stopping the demo (pid $pid)..."
  kill -TERM "$pid"
  for _ in $(seq 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then
    echo "demo.sh: the demo (pid $pid) did not stop within 30 s" >&2
    exit 1
  fi
  [ -f "$DIR/demo.log" ] && sed -n '/^Stopping the fleet/,$p' "$DIR/demo.log"
  exit 0
fi

# The child a --detach started: the parent has checked, built and prepared DIR.
CHILD=${DERMS_DEMO_CHILD:-0}
unset DERMS_DEMO_CHILD
if [ "$CHILD" -eq 0 ]; then
  if pid=$(running_pid); then
    echo "demo.sh: a demo is already running in $DIR (pid $pid): ./deploy/demo.sh --stop" \
      "--dir $DIR, or another --dir" >&2
    exit 2
  fi
  if [ -e "$DIR" ] && [ -n "$(ls -A "$DIR" 2>/dev/null)" ] && [ ! -f "$DIR/.derms-demo" ] &&
    [ ! -f "$DIR/derms.db" ]; then
    bad_flag --dir "'$DIR' holds files that are not an earlier demo's; it would be emptied"
  fi
  if [ "$BUILD" -eq 1 ]; then
    ./deploy/install-deps.sh
    ./deploy/build.sh
  fi
  rm -rf "$DIR"
  mkdir -p "$DIR"
  touch "$DIR/.derms-demo"
  if [ "$DETACH" -eq 1 ]; then
    # Its own session: a Ctrl-C in this terminal does not reach it.
    DERMS_DEMO_CHILD=1 setsid -w "$ROOT/deploy/demo.sh" --no-build --dir "$DIR" --duration "$DURATION" \
      --count "$COUNT" --port "$PORT" --speed "$SPEED" --scenario "$SCENARIO" \
      > "$DIR/demo.log" 2>&1 < /dev/null &
    child=$!
    for _ in $(seq 1200); do
      [ -f "$DIR/env" ] && break
      kill -0 "$child" 2>/dev/null || break
      sleep 0.1
    done
    if [ ! -f "$DIR/env" ]; then
      echo "demo.sh: the demo did not get ready; its output ($DIR/demo.log):" >&2
      tail -20 "$DIR/demo.log" >&2
      kill -TERM "$child" 2>/dev/null || true
      exit 1
    fi
    echo "The demo runs in the background (pid $child, output in $DIR/demo.log)."
    echo "Its settings, for a shell: . ${DIR#"$ROOT"/}/env"
    grep -v '^#' "$DIR/env" | sed 's/^/  /'
    shown_dir=${DIR#"$ROOT"/}
    [ "$shown_dir" = var/demo ] && shown_dir="" || shown_dir=" --dir $shown_dir"
    echo "Stop it: ./deploy/demo.sh --stop$shown_dir"
    exit 0
  fi
fi
echo $$ > "$DIR/demo.pid"

BIN="$ROOT/build"
BROKER="tcp://127.0.0.1:$PORT"
CTL=("$BIN/tools/dermsctl/dermsctl" --broker "$BROKER")

PIDS=()
cleanup() {
  trap - EXIT INT TERM
  echo
  echo "Stopping the fleet, the aggregator and the broker..."
  for ((i=${#PIDS[@]}-1; i>=0; i--)); do
    kill -TERM "${PIDS[$i]}" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "${PIDS[$i]}" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "${PIDS[$i]}" 2>/dev/null || true
    wait "${PIDS[$i]}" 2>/dev/null || true
  done
  rm -f "$DIR/env" "$DIR/demo.pid"
  if [ -f "$DIR/derms.db" ]; then
    echo
    echo "Database: $DIR/derms.db"
    sqlite3 "$DIR/derms.db" \
      "SELECT '  ' || (SELECT COUNT(*) FROM ders) || ' DERs, ' ||
              (SELECT COUNT(*) FROM telemetry) || ' telemetry samples, ' ||
              (SELECT COUNT(*) FROM dispatch_runs) || ' dispatch runs, ' ||
              (SELECT COUNT(*) FROM controls) || ' controls, ' ||
              (SELECT COUNT(*) FROM responses) || ' responses';" || true
    echo "  Try: sqlite3 $DIR/derms.db 'SELECT status, COUNT(*) FROM responses GROUP BY 1'"
    echo "       ./build/tools/dermsctl/dermsctl query --db $DIR/derms.db \"SELECT * FROM rollups WHERE resolution = '1h' AND kind = 'vder'\""
  fi
  echo "Logs: $DIR/{mosquitto,aggregator,fleet}.log"
}
trap cleanup EXIT
trap 'exit 0' INT TERM

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; }
if listening; then
  echo "demo.sh: --port $PORT: something already listens on 127.0.0.1:$PORT; choose another --port" >&2
  exit 2
fi
# Per-DER logins for the broker plugin, made on the fly: each simulated DER
# connects as its der_id with a password of its own (DIR/der-passwords.txt).
ITERATIONS=$(( COUNT > 1000 ? 100 : 1000 ))
"$BIN/tools/fleet/derms-fleet" --count "$COUNT" --substations sub-1,sub-2 --list-ids |
  "$BIN/broker_plugin/derms-broker-passwd" --iterations "$ITERATIONS" \
    --passwords "$DIR/der-passwords.txt" > "$DIR/passwd"
sed -e "s|@PORT@|$PORT|" -e "s|@DIR@|$DIR|" -e "s|@USER@|$(id -un)|" \
  -e "s|@PLUGIN@|$BIN/broker_plugin/derms_broker_plugin.so|" -e "s|@RATE_FACTOR@|$(( 10 * SPEED ))|" \
  deploy/mosquitto.conf > "$DIR/mosquitto.conf"
mosquitto -c "$DIR/mosquitto.conf" &
PIDS+=($!)
for _ in $(seq 50); do listening && break; sleep 0.1; done
if ! listening; then
  echo "demo.sh: the broker did not start on 127.0.0.1:$PORT (see $DIR/mosquitto.log)" >&2
  exit 1
fi

# The demo's aggregator configuration: the example's, with its named report
# every 10 s instead of every hour, so events/report shows something at once.
sed -e '/^\[\[report\]\]/,/^sql/s/^every_s = 3600 /every_s = 10   /' \
  cloud_aggregator/aggregator.example.toml > "$DIR/aggregator.toml"
grep -q '^every_s = 10 ' "$DIR/aggregator.toml" ||
  { echo "demo.sh: could not set the report's every_s in $DIR/aggregator.toml" >&2; exit 1; }

# One simulated clock for everyone: it starts at 06:00 solar time of the
# fleet's longitude (-122.4, 14:10 UTC) today and runs $SPEED times faster.
ANCHOR_MS=$(date +%s%3N)
START_MS=$(( $(date -u -d 'today 00:00' +%s) * 1000 + 50976000 ))
TIME=(--time-scale "$SPEED" --time-anchor-ms "$ANCHOR_MS" --time-start-ms "$START_MS")

"$BIN/cloud_aggregator/derms-aggregator" --config "$DIR/aggregator.toml" \
  --broker "$BROKER" --db "$DIR/derms.db" --client-id "derms-demo-$PORT" --control-duration-s 300 --status-interval-s 2 --prometheus-textfile "$DIR/derms.prom" \
  "${TIME[@]}" > "$DIR/aggregator.log" 2>&1 &
PIDS+=($!)
"$BIN/tools/fleet/derms-fleet" --broker "$BROKER" --count "$COUNT" \
  --substations sub-1,sub-2 --telemetry-interval-s 60 --state-dir "$DIR/fleet-state" \
  --credentials "$DIR/der-passwords.txt" "${TIME[@]}" > "$DIR/fleet.log" 2>&1 &
PIDS+=($!)

echo "Broker $BROKER, aggregator and $COUNT simulated DERs running (simulated time x$SPEED)."
if [ "$SCENARIO" = swing ]; then
  echo "The scenario publishes a grid status for sub-1 and sub-2 every ~2 s: a grid status you"
  echo "publish is replaced within seconds, and a control you send a dispatched DER is superseded by"
  echo "the next run. Pause it: touch ${DIR#"$ROOT"/}/pause (rm it to resume), or --scenario none."
else
  echo "Scenario 'none': no grid status is published; the DERs follow only what you send."
fi

# Wait for the fleet's births, so the first dispatch has its DERs.
for _ in $(seq 100); do
  n=$(sqlite3 "$DIR/derms.db" "SELECT COUNT(*) FROM ders" 2>/dev/null || echo 0)
  [ "${n:-0}" -ge "$COUNT" ] && break
  sleep 0.2
done

# Wholesale prices for the next seven simulated days, 15-minute intervals,
# cheap at night and at midday, and one EV owner asking for the cheapest
# 15 kWh in the next three hours: solved, then carried out by the EV's agent.
awk -v start="$START_MS" 'BEGIN {
  print "node,issued_ms,kind,start_ms,duration_s,price_per_mwh"
  for (i = 0; i < 96 * 7; i++) {
    h = (14 + i / 4) % 24
    p = 60 + 35 * sin((h - 9) / 24 * 6.283) + 20 * sin(h / 12 * 6.283) + (i * 37 % 11)
    printf "NODE-NORTH,%.0f,short_term,%.0f,900,%.2f\n", start, start + i * 900000, p
    printf "NODE-SOUTH,%.0f,short_term,%.0f,900,%.2f\n", start, start + i * 900000, p + 4
  }
}' > "$DIR/prices.csv"
"${CTL[@]}" prices import "$DIR/prices.csv" || echo "demo: price import failed"
EV=$(sqlite3 "$DIR/derms.db" "SELECT der_id FROM ders WHERE der_type = 'EV_CHARGER' AND
  substation_id = 'sub-1' ORDER BY der_id LIMIT 1" 2>/dev/null || true)
if [ -n "$EV" ]; then
  echo "--- charging schedule for $EV: 15 kWh within 3 simulated hours at least cost"
  "${CTL[@]}" "${TIME[@]}" schedule request --der "$EV" --max-charge-kw 11 --energy-kwh 15 \
    --efficiency 0.92 --ready-by +3h --wait 3 > "$DIR/schedule.jsonl" || true
  sleep 1
  sqlite3 "$DIR/derms.db" "SELECT '  ' || request_id || ' ' || status || ': ' ||
    printf('%.1f kWh, cost %.2f (charging at once: %.2f) ', energy_kwh, cost, immediate_cost) ||
    COALESCE(reason, '') FROM schedule_requests"
  echo "  (the whole result: $DIR/schedule.jsonl, or dermsctl schedule get ID)"
  echo
fi

# The broker plugin at work: one DER publishing telemetry as another, with its
# own valid login, is refused at the broker and counted on broker/status.
forger=$(sed -n 1p "$DIR/der-passwords.txt")
victim=$(sed -n 2p "$DIR/der-passwords.txt" | cut -d' ' -f1)
if [ -n "$victim" ]; then
  mosquitto_pub -p "$PORT" -u "${forger%% *}" -P "${forger#* }" -q 1 \
    -t "derms/v1/der/$victim/telemetry" -m forged 2>/dev/null || true
  denied=0
  for _ in $(seq 20); do
    broker_status=$(mosquitto_sub -p "$PORT" -t derms/v1/broker/status -C 1 -W 3 2>/dev/null || true)
    denied=$(printf '%s' "$broker_status" | grep -o '"der_other_der":[0-9]*' | cut -d: -f2)
    [ "${denied:-0}" -ge 1 ] && break
    sleep 0.5
  done
  echo "--- broker plugin: ${forger%% *} publishes telemetry as $victim"
  echo "  refused at the broker; derms/v1/broker/status counts it: der_other_der ${denied:-0}," \
    "connected DERs $(printf '%s' "$broker_status" | grep -o '"connected_ders":[0-9]*' | cut -d: -f2)"
  echo "  (mosquitto_sub -p $PORT -t derms/v1/broker/status -C 1)"
  echo
fi

# What a shell needs to talk to this demo: `. var/demo/env`. Written last, so
# its presence means the demo is ready.
cat > "$DIR/env.tmp" <<EOF
# deploy/demo.sh (pid $$) writes this when it is ready and removes it when it stops.
# In a shell: . ${DIR#"$ROOT"/}/env   (then \$DEMO_TIME is three dermsctl flags: leave it unquoted)
DEMO_PORT=$PORT  # the broker's port (--port)
DEMO_BROKER=$BROKER  # for --broker
DEMO_DB='$DIR/derms.db'  # the aggregator's database
DEMO_DIR='$DIR'  # --dir: logs, prices, the pause file
DEMO_TIME='${TIME[*]}'
DEMO_TIME_SCALE=$SPEED  # and the three numbers one by one
DEMO_TIME_ANCHOR_MS=$ANCHOR_MS
DEMO_TIME_START_MS=$START_MS
DEMO_SCENARIO=$SCENARIO  # --scenario
EOF
mv "$DIR/env.tmp" "$DIR/env"
echo "Talk to it from another shell:  . ${DIR#"$ROOT"/}/env   (broker port $PORT, database $DIR/derms.db)"
echo "  mosquitto_sub -p $PORT -t 'derms/v1/#' -v -C 20"
echo "  ./build/tools/dermsctl/dermsctl --broker $BROKER ${TIME[*]} control --der sub-1-bat-0001 --target-kw -5 --duration-s 600"
echo

# The grid scenario: each substation's load swings around its supply, so the
# DERs are asked to discharge, then to charge, and back. One tick every 2 s
# of wall time: the grid status, then what the aggregator sees.
sleep_until() {  # EPOCH_MS
  local wait_ms=$(( $1 - $(date +%s%3N) ))
  [ "$wait_ms" -le 0 ] || sleep "$(( wait_ms / 1000 )).$(printf '%03d' $(( wait_ms % 1000 )))"
}
started=$(date +%s)
started_ms=$(date +%s%3N)
step=0
while true; do
  now=$(date +%s)
  elapsed=$(( now - started ))
  if [ "$DURATION" -gt 0 ] && [ "$elapsed" -ge "$DURATION" ]; then
    [ -z "${shown:-}" ] || wait "$shown" || true
    # A utility asks the whole tree for 150 kW for ten simulated minutes; the
    # root splits it across north and south, and each down to its DERs.
    echo "--- utility dispatch: vder/utility/dispatch, 150 kW for 600 s"
    "${CTL[@]}" "${TIME[@]}" dispatch --vder utility --target-kw 150 --duration-s 600 || true
    sleep 2
    "${CTL[@]}" status
    # The history: rollups through SQL, capacity slots, a verified backup.
    echo
    echo "--- history: virtual DER 'north', last 5-minute rollups (dermsctl query on the rollups table)"
    "${CTL[@]}" query --db "$DIR/derms.db" \
      "SELECT datetime(bucket_ms / 1000, 'unixepoch') AS bucket_utc, samples,
              ROUND(mean_kw, 1) AS mean_kw, ROUND(min_kw, 1) AS min_kw, ROUND(max_kw, 1) AS max_kw,
              ROUND(export_kwh, 2) AS export_kwh, ROUND(import_kwh, 2) AS import_kwh,
              ROUND(capacity_kw, 1) AS capacity_kw, ROUND(availability, 3) AS availability
       FROM rollups WHERE resolution = '5m' AND kind = 'vder' AND id = 'north'
       ORDER BY bucket_ms DESC LIMIT 6" || true
    echo "--- slots: when could 'utility' deliver at least 100 kW? (dermsctl slots)"
    "${CTL[@]}" "${TIME[@]}" slots --db "$DIR/derms.db" --vder utility --min-kw 100 --from -1d || true
    echo "--- backup to a second location, verified (dermsctl backup)"
    "${CTL[@]}" backup --db "$DIR/derms.db" --dir "$DIR/backups" --keep 3 | head -3 || true
    break
  fi
  tick_ms=$(( started_ms + step * 2000 ))
  if [ "$SCENARIO" = swing ] && [ ! -e "$DIR/pause" ]; then
    # Triangle waves (integer arithmetic): sub-1 swings +-120 kW over 40 s,
    # sub-2 +-80 kW over 60 s. Both at once: each dermsctl takes ~0.5 s.
    p1=$(( elapsed % 40 )); w1=$(( p1 < 20 ? p1 * 12 - 120 : 360 - p1 * 12 ))
    p2=$(( elapsed % 60 )); w2=$(( p2 < 30 ? 80 - p2 * 16 / 3 : p2 * 16 / 3 - 240 ))
    "${CTL[@]}" grid --substation sub-1 --load-kw $(( 1000 + w1 )) --supply-kw 1000 >/dev/null &
    grid1=$!
    "${CTL[@]}" grid --substation sub-2 --load-kw $(( 800 + w2 )) --supply-kw 800 >/dev/null &
    wait "$grid1" "$!" || true
  fi
  # A second later, what the aggregator sees, printed in the background so
  # that a slow print never delays the next grid status.
  sleep_until $(( tick_ms + 1000 ))
  [ -z "${shown:-}" ] || wait "$shown" || true
  echo "--- t=${elapsed}s (simulated $(date -u -d "@$(( (START_MS + elapsed * SPEED * 1000) / 1000 ))" +%H:%M) UTC)$([ -e "$DIR/pause" ] && echo ', scenario paused')"
  "${CTL[@]}" status &
  shown=$!
  # The next tick not yet due (a slow machine skips ticks rather than bunching them).
  now_ms=$(date +%s%3N)
  step=$(( step + 1 ))
  while [ $(( started_ms + step * 2000 )) -le "$now_ms" ]; do step=$(( step + 1 )); done
  sleep_until $(( started_ms + step * 2000 ))
done

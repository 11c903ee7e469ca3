#!/usr/bin/env bash
# The main job on embedded defaults, from a fresh Debian 12 machine: installs
# what is missing, builds, starts a local Mosquitto, the aggregator (SQLite),
# and a simulated fleet of mixed DERs on two substations in fast simulated
# time, grouped into the virtual DER tree of
# cloud_aggregator/aggregator.example.toml; drives a grid scenario where load
# swings above and below supply, shows the tree's live aggregates and each
# dispatch run, and ends with a utility dispatch to the root of the tree; at the
# start it imports a day of prices and has one EV charge at least cost.
# Stops everything it started on Ctrl-C or after --duration SECONDS.
#
#   ./deploy/demo.sh [--duration SECONDS] [--count N] [--port PORT] [--speed X]
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

DURATION=0      # wall seconds; 0 = until Ctrl-C
COUNT=100       # DERs in the fleet
PORT=18830      # loopback port of the demo's broker
SPEED=60        # simulated seconds per wall second: a day in 24 minutes
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) DURATION="$2"; shift 2 ;;
    --count) COUNT="$2"; shift 2 ;;
    --port) PORT="$2"; shift 2 ;;
    --speed) SPEED="$2"; shift 2 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "demo.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
for n in "$DURATION" "$COUNT" "$PORT"; do
  [[ "$n" =~ ^[0-9]+$ ]] || { echo "demo.sh: '$n' must be a whole number" >&2; exit 2; }
done

./deploy/install-deps.sh
./deploy/build.sh

DIR="$ROOT/var/demo"
rm -rf "$DIR"
mkdir -p "$DIR"
BIN="$ROOT/build"
BROKER="tcp://127.0.0.1:$PORT"
CTL=("$BIN/tools/dermsctl/dermsctl" --broker "$BROKER")

PIDS=()
cleanup() {
  trap - EXIT INT TERM
  echo
  echo "Stopping the fleet, the aggregator and the broker..."
  for ((i=${#PIDS[@]}-1; i>=0; i--)); do
    kill -INT "${PIDS[$i]}" 2>/dev/null || true
    wait "${PIDS[$i]}" 2>/dev/null || true
  done
  if [ -f "$DIR/derms.db" ]; then
    echo
    echo "Database: $DIR/derms.db"
    sqlite3 "$DIR/derms.db" \
      "SELECT '  ' || (SELECT COUNT(*) FROM ders) || ' DERs, ' ||
              (SELECT COUNT(*) FROM telemetry) || ' telemetry samples, ' ||
              (SELECT COUNT(*) FROM dispatch_runs) || ' dispatch runs, ' ||
              (SELECT COUNT(*) FROM controls) || ' controls, ' ||
              (SELECT COUNT(*) FROM responses) || ' responses';"
    echo "  Try: sqlite3 $DIR/derms.db 'SELECT status, COUNT(*) FROM responses GROUP BY 1'"
    echo "       ./build/tools/dermsctl/dermsctl query --db $DIR/derms.db \"SELECT * FROM rollups WHERE resolution = '1h' AND kind = 'vder'\""
  fi
  echo "Logs: $DIR/{mosquitto,aggregator,fleet}.log"
}
trap cleanup EXIT
trap 'exit 0' INT TERM

sed -e "s|@PORT@|$PORT|" -e "s|@DIR@|$DIR|" -e "s|@USER@|$(id -un)|" \
  deploy/mosquitto.conf > "$DIR/mosquitto.conf"
mosquitto -c "$DIR/mosquitto.conf" &
PIDS+=($!)
for _ in $(seq 50); do
  (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
  sleep 0.1
done

# One simulated clock for everyone: it starts at 06:00 solar time of the
# fleet's longitude (-122.4, 14:10 UTC) today and runs $SPEED times faster.
ANCHOR_MS=$(date +%s%3N)
START_MS=$(( $(date -u -d 'today 00:00' +%s) * 1000 + 50976000 ))
TIME=(--time-scale "$SPEED" --time-anchor-ms "$ANCHOR_MS" --time-start-ms "$START_MS")

"$BIN/cloud_aggregator/derms-aggregator" --config cloud_aggregator/aggregator.example.toml \
  --broker "$BROKER" --db "$DIR/derms.db" --client-id "derms-demo-$PORT" --control-duration-s 300 --status-interval-s 2 "${TIME[@]}" > "$DIR/aggregator.log" 2>&1 &
PIDS+=($!)
"$BIN/tools/fleet/derms-fleet" --broker "$BROKER" --count "$COUNT" \
  --substations sub-1,sub-2 --telemetry-interval-s 60 --state-dir "$DIR/fleet-state" \
  "${TIME[@]}" > "$DIR/fleet.log" 2>&1 &
PIDS+=($!)

echo "Broker $BROKER, aggregator and $COUNT simulated DERs running (simulated time x$SPEED)."
echo "Watch it raw in another terminal:  mosquitto_sub -p $PORT -t 'derms/v1/aggregator/#' -v"
echo "Send a control in the demo's simulated time:"
echo "  ./build/tools/dermsctl/dermsctl --broker $BROKER ${TIME[*]} control --der sub-1-bat-0001 --target-kw -5 --duration-s 600"
echo

# Wholesale prices for the next simulated day, 15-minute intervals, cheap at
# night and at midday, and one EV owner asking for the cheapest 15 kWh in the
# next three hours: solved, then carried out by the EV's edge agent.
awk -v start="$START_MS" 'BEGIN {
  print "node,issued_ms,kind,start_ms,duration_s,price_per_mwh"
  for (i = 0; i < 96; i++) {
    h = (14 + i / 4) % 24
    p = 60 + 35 * sin((h - 9) / 24 * 6.283) + 20 * sin(h / 12 * 6.283) + (i * 37 % 11)
    printf "NODE-NORTH,%.0f,short_term,%.0f,900,%.2f\n", start, start + i * 900000, p
    printf "NODE-SOUTH,%.0f,short_term,%.0f,900,%.2f\n", start, start + i * 900000, p + 4
  }
}' > "$DIR/prices.csv"
sleep 3
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

# The grid scenario: each substation's load swings around its supply, so the
# DERs are asked to discharge, then to charge, and back.
started=$(date +%s)
step=0
while true; do
  now=$(date +%s)
  elapsed=$(( now - started ))
  if [ "$DURATION" -gt 0 ] && [ "$elapsed" -ge "$DURATION" ]; then
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
  # Triangle waves (integer arithmetic): sub-1 swings +-120 kW over 40 s,
  # sub-2 +-80 kW over 60 s.
  p1=$(( elapsed % 40 )); w1=$(( p1 < 20 ? p1 * 12 - 120 : 360 - p1 * 12 ))
  p2=$(( elapsed % 60 )); w2=$(( p2 < 30 ? 80 - p2 * 16 / 3 : p2 * 16 / 3 - 240 ))
  "${CTL[@]}" grid --substation sub-1 --load-kw $(( 1000 + w1 )) --supply-kw 1000 >/dev/null
  "${CTL[@]}" grid --substation sub-2 --load-kw $(( 800 + w2 )) --supply-kw 800 >/dev/null
  sleep 1
  if (( step % 2 == 0 )); then
    echo "--- t=${elapsed}s (simulated $(date -u -d "@$(( (START_MS + elapsed * SPEED * 1000) / 1000 ))" +%H:%M) UTC)"
    "${CTL[@]}" status
  fi
  step=$(( step + 1 ))
  sleep 1
done

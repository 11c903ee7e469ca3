#!/usr/bin/env bash
# Fair PV curtailment over MQTT on the IEEE 123-bus feeder: a Mosquitto on a
# loopback port, the aggregator holding the over-voltage scenario
# (feeder/scenarios/ieee123_overvoltage.toml) with a curtailment run every
# half hour of simulated time, and one PV edge agent at every load bus and
# phase (derms-fleet --feeder-scenario, rated 1.25 x the load, each with its
# feeder_node), through the middle of a day at 360 x. Each run places the PVs
# on the feeder at what their telemetry says is available, plans, checks the
# plan with the power flow and sends generation limits; the PVs hold their
# output under their caps and answer. At the end it prints every run from
# SQLite and draws the run that curtailed most (voltage by distance from the
# source, per phase, before and after, the 1.05 pu limit, each PV's ratio).
#
#   ./deploy/curtail_demo.sh [--port PORT] [--from HH] [--hours H]
#   (defaults: 18850, 9 UTC, 6 hours: about a minute of wall time)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PORT=18850
FROM=9
HOURS=6
SPEED=360
while [ $# -gt 0 ]; do
  case $1 in
    --port) PORT=$2; shift 2 ;;
    --from) FROM=$2; shift 2 ;;
    --hours) HOURS=$2; shift 2 ;;
    -h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 0 ;;
    *) echo "curtail_demo.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
for v in PORT FROM HOURS; do
  case ${!v} in ''|*[!0-9]*) echo "curtail_demo.sh: --${v,,} '${!v}' must be a whole number" >&2; exit 2 ;; esac
done
if [ "$PORT" -lt 1024 ] || [ "$PORT" -gt 65535 ]; then
  echo "curtail_demo.sh: --port $PORT outside 1024..65535" >&2; exit 2
fi
if [ "$FROM" -gt 23 ] || [ "$HOURS" -lt 1 ] || [ $((FROM + HOURS)) -gt 24 ]; then
  echo "curtail_demo.sh: --from $FROM --hours $HOURS must stay within one day" >&2; exit 2
fi

BIN=$ROOT/build
SCENARIO=$ROOT/feeder/scenarios/ieee123_overvoltage.toml
DIR=$ROOT/var/curtail-demo
for b in cloud_aggregator/derms-aggregator tools/fleet/derms-fleet tools/dermsctl/dermsctl; do
  if [ ! -x "$BIN/$b" ]; then ./deploy/install-deps.sh && ./deploy/build.sh >/dev/null; break; fi
done
command -v sqlite3 >/dev/null || ./deploy/install-deps.sh

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; }
if listening; then
  echo "curtail_demo.sh: something already listens on 127.0.0.1:$PORT; choose another --port" >&2
  exit 2
fi
rm -rf "$DIR"
mkdir -p "$DIR"
PIDS=()
cleanup() {
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
    kill "${PIDS[$i]}" 2>/dev/null || true
    wait "${PIDS[$i]}" 2>/dev/null || true
  done
}
trap cleanup EXIT

cat > "$DIR/mosquitto.conf" <<EOF
listener $PORT 127.0.0.1
allow_anonymous true
persistence false
user $(id -un)
max_queued_messages 100000
log_dest file $DIR/mosquitto.log
EOF
mosquitto -c "$DIR/mosquitto.conf" &
PIDS+=($!)
for _ in $(seq 50); do listening && break; sleep 0.1; done
listening || { echo "curtail_demo.sh: the broker did not start (see $DIR/mosquitto.log)" >&2; exit 1; }

# One simulated clock for the aggregator and the PVs: FROM:00 UTC today,
# SPEED times wall time, from a second from now (PVs at longitude 0: solar
# time is UTC).
DAY_MS=$(( $(date -u +%s) / 86400 * 86400 * 1000 ))
TIME=(--time-scale "$SPEED" --time-anchor-ms $(( $(date +%s%3N) + 1000 ))
      --time-start-ms $(( DAY_MS + FROM * 3600 * 1000 )))
cat > "$DIR/aggregator.toml" <<EOF
[dispatch]
enabled = false                   # no grid status here: curtailment only

[curtailment]
scenario = "$SCENARIO"
vder_id = "ieee123"               # the PVs' substation: its implicit virtual DER
policy = "equal_ratio"
every_s = 5                       # wall seconds: half an hour of the simulated day
control_duration_s = 3600         # a cap lasts an hour unless the next run renews it
EOF
BROKER="tcp://127.0.0.1:$PORT"
"$BIN/cloud_aggregator/derms-aggregator" --config "$DIR/aggregator.toml" --broker "$BROKER" \
  --db "$DIR/derms.db" --client-id "curtail-demo-$PORT" --status-interval-s 2 "${TIME[@]}" \
  > "$DIR/aggregator.log" 2>&1 &
PIDS+=($!)
WALL_S=$(( HOURS * 3600 / SPEED + 3 ))
echo "== $HOURS hours of the IEEE 123-bus feeder from $FROM:00 UTC in about $WALL_S s: 102 PV agents," \
     "a curtailment run every 30 simulated minutes"
"$BIN/tools/fleet/derms-fleet" --broker "$BROKER" --feeder-scenario "$SCENARIO" --pv-scale 1.25 \
  --substations ieee123 --latitude 0 --longitude 0 --telemetry-interval-s 60 \
  --state-dir "$DIR/fleet-state" --duration "$WALL_S" "${TIME[@]}" > "$DIR/fleet.log" 2>&1
kill "${PIDS[1]}" 2>/dev/null || true
wait "${PIDS[1]}" 2>/dev/null || true

echo "== every run (curtailment_runs in $DIR/derms.db)"
sqlite3 -header -column "$DIR/derms.db" "
  SELECT strftime('%H:%M', started_ms / 1000, 'unixepoch') AS utc, outcome,
         pvs, printf('%.1f', available_kw) AS available_kw,
         printf('%.1f', curtailed_kw) AS curtailed_kw, printf('%.4f', max_ratio) AS ratio,
         printf('%.4f', v_max_before_pu) AS v_max_before, printf('%.4f', v_max_after_pu) AS v_max_after
  FROM curtailment_runs ORDER BY run_id"
echo
echo "== the PVs' answers to their caps"
sqlite3 "$DIR/derms.db" "SELECT status, COUNT(*) FROM curtailment_members
  WHERE command_id != '' GROUP BY status" | sed 's/|/: /'
echo
if "$BIN/tools/dermsctl/dermsctl" feeder plot --db "$DIR/derms.db" --scenario "$SCENARIO" \
     --svg "$DIR/voltage-profile.svg"; then
  sqlite3 -csv -header "$DIR/derms.db" "
    SELECT m.der_id, m.feeder_node, m.available_kw, m.ratio, m.cap_kw, m.status, m.applied_kw
    FROM curtailment_members m
    WHERE m.run_id = (SELECT run_id FROM curtailment_runs ORDER BY curtailed_kw DESC LIMIT 1)
    ORDER BY m.der_id" > "$DIR/curtailment-per-pv.csv"
  echo "Wrote $DIR/voltage-profile.svg and $DIR/curtailment-per-pv.csv (the run that curtailed most)."
fi

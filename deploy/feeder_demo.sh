#!/usr/bin/env bash
# The IEEE 123-bus over-voltage scenario through a day, without MQTT: the
# feeder solver alone (deploy/curtail_demo.sh runs PV agents over MQTT).
# Prints each policy's day (kWh curtailed, ratios, Jain's index, the highest
# voltage after), then at the quarter-hour of peak PV writes, per policy, the
# voltage profile before and after as SVG and each PV's curtailment as CSV.
#
#   ./deploy/feeder_demo.sh [SCENARIO.toml] [OUT_DIR]
#   (defaults: feeder/scenarios/ieee123_overvoltage.toml, var/feeder-demo)
set -euo pipefail
cd "$(dirname "$0")/.."
SCENARIO=${1:-feeder/scenarios/ieee123_overvoltage.toml}
OUT=${2:-var/feeder-demo}
CTL=${DERMSCTL:-./build/tools/dermsctl/dermsctl}
if [ ! -x "$CTL" ]; then
  cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build build -j"$(nproc)" --target dermsctl >/dev/null
fi
mkdir -p "$OUT"
PV_SHAPE=$(sed -n 's/^pv_shape *= *"\(.*\)".*/\1/p' "$SCENARIO")
PV_SHAPE="$(dirname "$SCENARIO")/$PV_SHAPE"
# The quarter-hour of peak PV (0-based).
PEAK=$(tr -d '\r' < "$PV_SHAPE" | awk 'NF { if ($1 > m) { m = $1; i = n } n++ } END { print i }')

echo "== the day, every policy (96 quarter-hours, each answer checked by the power flow)"
"$CTL" feeder curtail --scenario "$SCENARIO" --day
echo
echo "== quarter-hour $PEAK (peak PV)"
"$CTL" feeder curtail --scenario "$SCENARIO" --step "$PEAK" || true
for p in equal_ratio per_area equal_kw min_total; do
  "$CTL" feeder curtail --scenario "$SCENARIO" --step "$PEAK" --policy "$p" \
    --svg "$OUT/voltage-$p.svg" > /dev/null || true
  "$CTL" feeder curtail --scenario "$SCENARIO" --step "$PEAK" --policy "$p" --format csv \
    > "$OUT/curtailment-$p.csv" || true
done
echo
echo "Wrote $OUT/voltage-{equal_ratio,per_area,equal_kw,min_total}.svg (voltage by distance, before"
echo "and after, the limit, each PV's ratio) and $OUT/curtailment-*.csv (one row per PV)."

#!/usr/bin/python3
"""An independent oracle for the charging optimiser.

Runs schedule_oracle_cases (random instances with OptimizeSingle's and
OptimizeShared's answers, one JSON object a line), solves every instance
again as a linear program with scipy's HiGHS, written from the problem
statement rather than from the C++ code, and checks that the costs and the
stored energy agree to a relative 1e-9. Exits non-zero on any mismatch.

    /usr/bin/python3 oracle_scipy.py path/to/schedule_oracle_cases [args...]
    ... | /usr/bin/python3 oracle_scipy.py -          # cases on stdin

The model: each device d charges at power x[d, j] in [0, max_charge_kw] in
each price interval clipped to its window [earliest_start_ms, ready_by_ms)
(at millisecond resolution), paying price / 1000 per kWh drawn; it stores
efficiency times what it draws, exactly min(energy_kwh, room) less a
shortfall s[d] >= 0. Under a shared import limit, the powers of the devices
charging at any instant sum to at most the limit. A device with an
undelivered price pays it per MWh of shortfall; the devices without one
first store as much as they can together, then the cheapest schedule that
stores that much is taken.
"""
import bisect
import json
import math
import subprocess
import sys

import numpy as np
from scipy.optimize import linprog
from scipy.sparse import coo_matrix

MS_PER_HOUR = 3.6e6
REL = 1e-9
ABS = 1e-9
HIGHS = {"primal_feasibility_tolerance": 1e-10, "dual_feasibility_tolerance": 1e-10}


def slots_of(need, prices):
    """(start_ms, end_ms, price_per_mwh) of every interval inside the window."""
    out = []
    for start, duration_s, price in prices:
        lo = max(start, need["earliest_start_ms"])
        hi = min(start + duration_s * 1000, need["ready_by_ms"])
        if hi > lo:
            out.append((lo, hi, price))
    return out


def target_of(need):
    energy = need["energy_kwh"]
    if need["soc_pct"] is not None and need["capacity_kwh"] is not None:
        energy = min(energy, (100.0 - need["soc_pct"]) / 100.0 * need["capacity_kwh"])
    return energy


def solve(case):
    """Returns per device (cost, stored kWh, shortfall kWh, undelivered cost)."""
    needs, prices, limit = case["needs"], case["prices"], case["limit_kw"]
    slots = [slots_of(n, prices) for n in needs]
    # Columns: every device's slot powers, then every device's shortfall.
    first, col = [], 0
    for s in slots:
        first.append(col)
        col += len(s)
    short = [col + d for d in range(len(needs))]
    ncols = col + len(needs)
    cost = np.zeros(ncols)
    upper = np.zeros(ncols)
    rows, cols, vals, b_eq = [], [], [], []
    for d, (need, s) in enumerate(zip(needs, slots)):
        for j, (lo, hi, price) in enumerate(s):
            h = (hi - lo) / MS_PER_HOUR
            cost[first[d] + j] = price / 1000.0 * h
            upper[first[d] + j] = need["max_charge_kw"]
            rows.append(d)
            cols.append(first[d] + j)
            vals.append(need["efficiency"] * h)
        upper[short[d]] = math.inf
        rows.append(d)
        cols.append(short[d])
        vals.append(1.0)
        b_eq.append(target_of(need))
    a_eq = coo_matrix((vals, (rows, cols)), shape=(len(needs), ncols)).tocsr()

    # The limit at every instant: between any two consecutive slot edges of
    # any device, the slots covering that stretch.
    ub_rows, ub_cols, b_ub = [], [], []
    if limit is not None:
        edges = sorted({t for s in slots for lo, hi, _ in s for t in (lo, hi)})
        starts = [[lo for lo, _, _ in s] for s in slots]
        for a, b in zip(edges, edges[1:]):
            covering = []
            for d, s in enumerate(slots):
                j = bisect.bisect_right(starts[d], a) - 1
                if j >= 0 and s[j][1] >= b:
                    covering.append(first[d] + j)
            if covering:
                ub_rows.extend([len(b_ub)] * len(covering))
                ub_cols.extend(covering)
                b_ub.append(limit)
    bounds = list(zip(np.zeros(ncols), upper))

    def run(objective, extra_rows=(), extra_b=()):
        r = list(ub_rows) + [len(b_ub) + i for i, row in enumerate(extra_rows) for _ in row]
        c = list(ub_cols) + [k for row in extra_rows for k in row]
        nrows = len(b_ub) + len(extra_rows)
        a_ub = coo_matrix((np.ones(len(r)), (r, c)), shape=(nrows, ncols)).tocsr() if nrows else None
        res = linprog(objective, A_ub=a_ub, b_ub=(list(b_ub) + list(extra_b)) if nrows else None,
                      A_eq=a_eq, b_eq=b_eq, bounds=bounds, method="highs", options=HIGHS)
        if res.status != 0:
            raise RuntimeError(f"HiGHS: {res.message}")
        return res.x

    must = [short[d] for d, n in enumerate(needs) if n["undelivered_price_per_mwh"] is None]
    extra_rows, extra_b = [], []
    if must:
        first_pass = np.zeros(ncols)
        first_pass[must] = 1.0
        x = run(first_pass)
        # The first optimum is exact only to HiGHS's tolerance: a hair of
        # slack keeps the second problem feasible, and a penalty on the
        # shortfall above any price per kWh stored keeps it from being spent.
        extra_rows, extra_b = [must], [max(0.0, float(sum(x[must]))) * (1 + 1e-9)]
    objective = cost.copy()
    if must:
        # Per kWh: a thousand times the dearest price per MWh stored.
        most_price = max(abs(p[2]) for p in prices)
        least_eff = min(n["efficiency"] for n in needs)
        most_v = max(abs(n["undelivered_price_per_mwh"] or 0) for n in needs)
        objective[must] = most_price / least_eff + most_v + 1.0
    for d, n in enumerate(needs):
        if n["undelivered_price_per_mwh"] is not None:
            objective[short[d]] = n["undelivered_price_per_mwh"] / 1000.0
    x = run(objective, extra_rows, extra_b)

    out = []
    for d, (need, s) in enumerate(zip(needs, slots)):
        grid = sum(min(max(x[first[d] + j], 0.0), need["max_charge_kw"]) * (hi - lo) / MS_PER_HOUR
                   for j, (lo, hi, _) in enumerate(s))
        spent = sum(x[first[d] + j] * cost[first[d] + j] for j in range(len(s)))
        stored = need["efficiency"] * grid
        shortfall = max(0.0, need["energy_kwh"] - stored)
        v = need["undelivered_price_per_mwh"]
        out.append((spent, stored, shortfall, shortfall * v / 1000.0 if v is not None else 0.0))
    return out


def close(a, b, scale=1.0):
    return abs(a - b) <= REL * max(abs(a), abs(b)) + ABS * scale


def main():
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    if sys.argv[1] == "-":
        lines = sys.stdin.read().splitlines()
    else:
        lines = subprocess.run(sys.argv[1:], check=True, capture_output=True,
                               text=True).stdout.splitlines()
    failures = 0
    counts = {"single": 0, "shared": 0}
    for number, line in enumerate(lines, 1):
        case = json.loads(line)
        counts[case["kind"]] += 1
        try:
            want = solve(case)
        except RuntimeError as e:
            failures += 1
            print(f"case {number} ({case['kind']}): {e}", file=sys.stderr)
            continue
        got = case["results"]
        energy = sum(n["energy_kwh"] for n in case["needs"])
        # Costs and stored energy summed over the devices: with ties in
        # price, optima differ in which device charges when, not in total.
        checks = {
            "cost": (sum(r["cost"] for r in got), sum(w[0] for w in want), 1.0),
            "cost with undelivered": (sum(r["cost"] + r["undelivered_cost"] for r in got),
                                      sum(w[0] + w[3] for w in want), 1.0),
            "stored kWh": (sum(r["energy_kwh"] for r in got), sum(w[1] for w in want),
                           max(1.0, energy)),
        }
        for what, (ours, oracle, scale) in checks.items():
            if not close(ours, oracle, scale):
                failures += 1
                print(f"case {number} ({case['kind']}, {len(case['needs'])} devices, "
                      f"{len(case['prices'])} intervals): {what} {ours!r} but HiGHS finds "
                      f"{oracle!r} (relative difference "
                      f"{abs(ours - oracle) / max(abs(oracle), 1e-300):.3g})", file=sys.stderr)
    print(f"oracle_scipy: {counts['single']} single and {counts['shared']} shared cases, "
          f"{failures} mismatches")
    if not lines:
        print("oracle_scipy: no cases", file=sys.stderr)
        return 1
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

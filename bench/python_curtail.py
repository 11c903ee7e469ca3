#!/usr/bin/env python3
"""The feeder curtailment LP built independently in Python and solved by
SciPy's HiGHS: the baseline of `derms-feeder-bench`.

Reads the linearised feeder the C++ side exported (buses with their fixed
demand and the power flow's correction, branches with their LinDistFlow
matrices, PVs with their available kW, the limits and the policy), builds
the same linear program from it (curtailment ratios, branch flows, squared
voltages; minimise curtailed kW) and solves it with
scipy.optimize.linprog(method="highs"), REPEATS times. Prints one JSON line:
the median milliseconds to build and solve, and the objective.

    python3 bench/python_curtail.py NETWORK.json REPEATS
"""
import json
import statistics
import sys
import time

import numpy as np
from scipy.optimize import linprog
from scipy.sparse import coo_matrix


def build_and_solve(net):
    base = net["per_phase_base_kva"]
    buses, branches, pvs = net["buses"], net["branches"], net["pvs"]
    policy = net["policy"]
    vmax = net["v_max_pu"] - net["margin_pu"]
    vmin = net["v_min_pu"] + net["margin_pu"]
    cost, lo, hi = [], [], []

    def column(c, low, high):
        cost.append(c)
        lo.append(low)
        hi.append(high)
        return len(cost) - 1

    alpha = [column(pv["available_kw"], 0.0, 1.0) for pv in pvs]
    flow = {}
    for k, br in enumerate(branches):
        for p in range(3):
            if br["phases"][p]:
                flow[k, p] = column(0.0, None, None)
    volt = {}
    for b, bus in enumerate(buses):
        if b == 0:
            continue
        for p in range(3):
            if bus["phases"][p]:
                off = bus["offset"][p]
                volt[b, p] = column(0.0, vmin * vmin - off, vmax * vmax - off)

    rows, cols, vals, rhs = [], [], [], []

    def equation(terms, value):
        r = len(rhs)
        for c, v in terms:
            rows.append(r)
            cols.append(c)
            vals.append(v)
        rhs.append(value)

    children = {}
    for k, br in enumerate(branches):
        children.setdefault(br["from"], []).append(k)
    at_bus = {}
    for i, pv in enumerate(pvs):
        at_bus.setdefault((pv["bus"], pv["phase"]), []).append(i)

    v0 = net["v0_sq"]
    for k, br in enumerate(branches):
        j = br["to"]
        for p in range(3):
            if not br["phases"][p]:
                continue
            here = at_bus.get((j, p), [])
            # Active power balance at the branch's far end.
            terms = [(flow[k, p], 1.0)]
            terms += [(flow[c, p], -1.0) for c in children.get(j, []) if (c, p) in flow]
            terms += [(alpha[i], -pvs[i]["available_kw"] / base) for i in here]
            equation(terms, buses[j]["p_load"][p] - sum(pvs[i]["available_kw"] for i in here) / base)
            # Squared voltage down the branch.
            i_bus = br["from"]
            if br["regulator"]:
                if i_bus == 0:
                    equation([(volt[j, p], 1.0)], br["ratio_sq"][p] * v0)
                else:
                    equation([(volt[j, p], 1.0), (volt[i_bus, p], -br["ratio_sq"][p])], 0.0)
                continue
            terms = [(volt[j, p], 1.0)]
            value = -sum(br["mq"][p][q] * br["q_flow"][q] for q in range(3) if br["phases"][q])
            if i_bus == 0:
                value += v0
            else:
                terms.append((volt[i_bus, p], -1.0))
            terms += [(flow[k, q], br["mp"][p][q]) for q in range(3)
                      if br["phases"][q] and br["mp"][p][q] != 0.0]
            equation(terms, value)

    if policy == "equal_ratio":
        shared = column(0.0, 0.0, 1.0)
        for a in alpha:
            equation([(a, 1.0), (shared, -1.0)], 0.0)
    elif policy == "per_area":
        area_col = {}
        for i, pv in enumerate(pvs):
            if pv["area"] not in area_col:
                area_col[pv["area"]] = column(0.0, 0.0, 1.0)
            equation([(alpha[i], 1.0), (area_col[pv["area"]], -1.0)], 0.0)
    elif policy == "equal_kw":
        each = column(0.0, 0.0, None)
        for i, pv in enumerate(pvs):
            if pv["available_kw"] > 0:
                equation([(alpha[i], pv["available_kw"]), (each, -1.0)], 0.0)

    a_eq = coo_matrix((vals, (rows, cols)), shape=(len(rhs), len(cost))).tocsr()
    res = linprog(np.array(cost), A_eq=a_eq, b_eq=np.array(rhs), bounds=list(zip(lo, hi)),
                  method="highs")
    if res.status != 0:
        return None
    return res.fun


def main():
    with open(sys.argv[1]) as f:
        net = json.load(f)
    repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 11
    build_and_solve(net)  # warm-up
    times, objective = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        objective = build_and_solve(net)
        times.append((time.perf_counter() - start) * 1000.0)
    print(json.dumps({"policy": net["policy"], "py_ms": statistics.median(times),
                      "py_ms_min": min(times), "py_ms_max": max(times),
                      "objective": objective}))


if __name__ == "__main__":
    main()

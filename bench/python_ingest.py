#!/usr/bin/python3
"""The "usual alternative" baseline: telemetry ingest written the way reference
Python DERMS code is (paho-mqtt 1.6, protobuf, stdlib sqlite3), doing the same
work per message as the C++ aggregator's HandleTelemetry: topic parse,
protobuf decode, ValidateTelemetry, DerRegistry::OnTelemetry and the batched
INSERT OR IGNORE of storage/store.cc.

Prints READY once subscribed, then one JSON line when --messages messages
have been committed (rejected ones count as processed so one bad message
cannot hang the run). Exit 0, or 1 on --timeout-s.
"""
import argparse
import json
import math
import re
import sqlite3
import sys
import time

import paho.mqtt.client as mqtt
from google.protobuf.message import DecodeError

# Same table and index as cloud_aggregator/storage/store.cc, same pragmas.
SCHEMA = """
PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;
CREATE TABLE IF NOT EXISTS telemetry (
  der_id TEXT NOT NULL, seq INTEGER NOT NULL, timestamp_ms INTEGER NOT NULL,
  received_ms INTEGER NOT NULL, active_power_kw REAL NOT NULL, reactive_power_kvar REAL,
  soc_pct REAL, voltage_v REAL, frequency_hz REAL, setpoint_kw REAL, run_time_s REAL,
  available_discharge_kw REAL, available_charge_kw REAL, baseline_kw REAL,
  command_id TEXT, alarms TEXT, is_historical INTEGER NOT NULL,
  PRIMARY KEY (der_id, seq)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS telemetry_by_time ON telemetry (timestamp_ms);
"""
INSERT = "INSERT OR IGNORE INTO telemetry VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"

TOPIC_FILTER = "derms/v1/der/+/telemetry"
ID_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")  # used with fullmatch: "$" would allow a "\n"
EARLIEST_MS = 946684800000  # 2000-01-01: earlier means a clock never set
DAY_MS = 24 * 3600 * 1000
MAX_KW = 1.0e6
COMMIT_INTERVAL_S = 0.2  # the C++ store's writer wakes every 200 ms


def in_range(v, lo, hi):
    # NaN fails every comparison and the bounds are finite, so this also
    # rejects NaN and +-inf like the C++ isfinite() && range check.
    return lo <= v <= hi


def validate_telemetry(t, topic_id, now_ms, severities):
    """Mirror of registry::ValidateTelemetry: the first failed check's code, or None."""
    if t.der_id != topic_id:
        return "id_mismatch"
    ok = (t.seq > 0
          and EARLIEST_MS <= t.timestamp_ms <= now_ms + DAY_MS
          and in_range(t.active_power_kw, -MAX_KW, MAX_KW)
          and in_range(t.reactive_power_kvar, -MAX_KW, MAX_KW)
          and (not t.HasField("soc_pct") or in_range(t.soc_pct, 0.0, 100.0))
          and in_range(t.voltage_v, 0.0, 1.0e6)
          and in_range(t.frequency_hz, 0.0, 1000.0)
          and (not t.HasField("setpoint_kw") or math.isfinite(t.setpoint_kw))
          and in_range(t.run_time_s, 0.0, 1.0e12)
          and in_range(t.available_discharge_kw, 0.0, MAX_KW)
          and in_range(t.available_charge_kw, 0.0, MAX_KW)
          and math.isfinite(t.baseline_kw)
          # proto3 enums are open in Python: unknown numbers arrive as plain ints.
          and all(a.severity in severities for a in t.alarms))
    return None if ok else "invalid_field"


class Ingest:
    def __init__(self, args, pb):
        self.pb = pb
        self.severities = frozenset(pb.Severity.values())
        self.target = args.messages
        self.batch_max = args.batch
        self.db = sqlite3.connect(args.db)
        self.db.executescript(SCHEMA)
        self.registry = {}  # der_id -> {"last": Telemetry, "last_heard_ms": int}
        self.batch = []
        self.pending = 0  # messages (accepted or rejected) since the last commit
        self.committed = 0
        self.rejected = {}
        self.stale = 0
        self.first_at = None
        self.done_at = None
        self.last_commit = time.monotonic()

    def on_connect(self, client, userdata, flags, rc, properties=None):
        if rc != 0:
            sys.exit(f"python_ingest: connect refused: {rc}")
        client.subscribe(TOPIC_FILTER, qos=1)

    def on_subscribe(self, client, userdata, mid, reason_codes, properties=None):
        if reason_codes[0].value >= 0x80:
            sys.exit(f"python_ingest: subscribe refused: {reason_codes[0]}")
        print("READY", flush=True)

    def reject(self, code):
        self.rejected[code] = self.rejected.get(code, 0) + 1

    # Everything runs in on_message, on the one thread that drives the network
    # loop, as typical paho code does: no locks, no queue. A variant handing
    # batches to a writer thread measured 4-10 % slower: the work is almost
    # all Python under the GIL, and sqlite3 is a small share of it.
    def on_message(self, client, userdata, msg):
        if self.first_at is None:
            self.first_at = time.monotonic()
        self.pending += 1
        now_ms = int(time.time() * 1000)
        parts = msg.topic.split("/")
        if len(parts) != 5 or parts[:3] != ["derms", "v1", "der"] or parts[4] != "telemetry":
            self.reject("bad_topic")
        elif not ID_RE.fullmatch(parts[3]):
            self.reject("invalid_id")
        elif not msg.payload:
            self.reject("empty_payload")
        else:
            self.handle_telemetry(parts[3], msg.payload, now_ms)
        if len(self.batch) >= self.batch_max:
            self.flush()

    def handle_telemetry(self, der_id, payload, now_ms):
        t = self.pb.Telemetry()
        try:
            t.ParseFromString(payload)
        except DecodeError:
            return self.reject("decode_error")
        code = validate_telemetry(t, der_id, now_ms, self.severities)
        if code:
            return self.reject(code)
        # DerRegistry::OnTelemetry: only a newer seq becomes the DER's state.
        der = self.registry.setdefault(der_id, {"last": None, "last_heard_ms": 0})
        if der["last"] is not None and t.seq <= der["last"].seq:
            self.stale += 1  # redelivered or historical: still stored below
        else:
            der["last"] = t
            if not t.is_historical:
                der["last_heard_ms"] = now_ms
        seq = t.seq if t.seq < 1 << 63 else t.seq - (1 << 64)  # C++ binds uint64 as int64
        alarms = ",".join(f"{a.code}:{self.pb.Severity.Name(a.severity)}" for a in t.alarms)
        self.batch.append((
            t.der_id, seq, t.timestamp_ms, now_ms, t.active_power_kw, t.reactive_power_kvar,
            t.soc_pct if t.HasField("soc_pct") else None, t.voltage_v, t.frequency_hz,
            t.setpoint_kw if t.HasField("setpoint_kw") else None, t.run_time_s,
            t.available_discharge_kw, t.available_charge_kw, t.baseline_kw, t.command_id,
            alarms, int(t.is_historical)))

    def flush(self):
        if self.batch:
            self.db.executemany(INSERT, self.batch)
            self.batch.clear()
        self.db.commit()
        self.last_commit = time.monotonic()
        self.committed += self.pending
        self.pending = 0
        if self.committed >= self.target and self.done_at is None:
            self.done_at = self.last_commit


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--broker-host", default="127.0.0.1")
    ap.add_argument("--broker-port", type=int, default=1883)
    ap.add_argument("--messages", type=int, required=True)
    ap.add_argument("--db", required=True)
    ap.add_argument("--proto-out", required=True, help="protoc --python_out directory")
    ap.add_argument("--timeout-s", type=float, default=300.0)
    ap.add_argument("--batch", type=int, default=5000)
    args = ap.parse_args()

    # protoc writes derms/v1/derms_pb2.py with no __init__.py: it imports as a
    # namespace package once the directory is on the path.
    sys.path.insert(0, args.proto_out)
    from derms.v1 import derms_pb2

    ing = Ingest(args, derms_pb2)
    client = mqtt.Client(client_id=f"python-ingest-{time.time_ns()}", protocol=mqtt.MQTTv5)
    client.on_connect = ing.on_connect
    client.on_subscribe = ing.on_subscribe
    client.on_message = ing.on_message
    client.connect(args.broker_host, args.broker_port, keepalive=60, clean_start=True)

    # Drive the loop ourselves instead of loop_forever() so the 200 ms commit
    # also happens when traffic stops with a partial batch.
    started = time.monotonic()
    deadline = started + args.timeout_s
    while ing.done_at is None and time.monotonic() < deadline:
        rc = client.loop(timeout=0.05)
        if rc != mqtt.MQTT_ERR_SUCCESS:
            sys.exit(f"python_ingest: connection lost: {mqtt.error_string(rc)}")
        if ing.pending and time.monotonic() - ing.last_commit >= COMMIT_INTERVAL_S:
            ing.flush()
    if ing.done_at is None and ing.pending:
        ing.flush()  # report what did make it before the timeout
    timed_out = ing.done_at is None

    begin = ing.first_at if ing.first_at is not None else started
    end = ing.done_at if not timed_out else time.monotonic()
    seconds = end - begin
    count = ing.target if not timed_out else ing.committed
    result = {"name": "python", "messages": count, "seconds": round(seconds, 6),
              "rate": round(count / seconds, 1) if seconds > 0 else 0.0,
              "rejected": sum(ing.rejected.values())}
    if timed_out:
        result["timeout"] = True
    print(json.dumps(result), flush=True)
    if ing.rejected:
        print(f"python_ingest: rejected by reason {ing.rejected}, stale {ing.stale}",
              file=sys.stderr)
    client.disconnect()
    ing.db.close()
    return 1 if timed_out else 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Prints the benchmark table from a bench/run.sh output folder (JSON reports)."""
import argparse
import glob
import json
import os
import re

PRESET_RATES = {"baseline": 100, "moderate": 500, "high": 1000, "extreme": 2000, "fanout": 250,
                "ingest": 20000, "connections": 0, "churn": 500, "spike": 1000, "slow-consumer": 500, "typing": 1000,
                "soak": 1000, "smoke": 100}


def preset_rate(scenario):
    return PRESET_RATES[scenario]


def fmt(x, digits=1):
    if x is None:
        return "–"
    if isinstance(x, float) and (x >= 1000 or digits == 0):
        return f"{x:,.0f}"
    return f"{x:,.{digits}f}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("folder")
    ap.add_argument("--p99-bound", type=float, default=100.0)
    args = ap.parse_args()
    reports = []
    for path in sorted(glob.glob(os.path.join(args.folder, "*.json"))):
        with open(path) as f:
            r = json.load(f)
        scenario, label = os.path.basename(path)[:-5].split("--", 1)
        r["_scenario"], r["_label"] = scenario, label
        r["_target"] = label.split("@")[0]
        reports.append(r)
    print(f"| scenario | system | conns | deliveries/s | acks/s | delivery p50 / p95 / p99 / p99.9 ms | ack p99 ms | missing / dup | server CPU s per 1k deliveries | server CPU µs per stored message | server RSS per 1k conns | loadgen CPU | ours ÷ this (deliveries/s) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for scenario in dict.fromkeys(r["_scenario"] for r in reports):
        group = [r for r in reports if r["_scenario"] == scenario and "@" not in r["_label"]]
        ours = next((r for r in group if r["_target"] == "ours"), None)
        for r in group:
            d = r["delivery_latency"]
            ratio = (ours["deliveries_per_sec"] / r["deliveries_per_sec"]) if ours and r["deliveries_per_sec"] else None
            sat = " (saturated)" if r["loadgen_saturated"] else ""
            # Acks are the stored messages (socketio-pg stores each acked send; the
            # other peers store nothing: per acked send).
            acked = r["acks_per_sec"] * r["params"]["duration"]
            per_msg = 1e6 * r["server"]["cpu_seconds"] / acked if acked else None
            print(f"| {scenario} | {r['_label']} | {r['connected']} | {fmt(r['deliveries_per_sec'], 0)} | {fmt(r['acks_per_sec'], 0)} "
                  f"| {fmt(d['p50_ms'])} / {fmt(d['p95_ms'])} / {fmt(d['p99_ms'])} / {fmt(d['p999_ms'])} "
                  f"| {fmt(r['ack_latency']['p99_ms'])} | {r['missing']} / {r['duplicates']} "
                  f"| {fmt(r['server']['cpu_seconds_per_1000_deliveries'], 3)} | {fmt(per_msg, 0)} "
                  f"| {fmt(r['server']['rss_per_1000_conns_bytes'] / 1048576, 1)} MiB "
                  f"| {fmt(r['loadgen_cpu_pct'], 0)}%{sat} | {fmt(ratio, 2) if ratio else '–'} |")
    sweeps = reports
    best = {}
    for r in sweeps:
        if r["delivery_latency"]["p99_ms"] <= args.p99_bound and r["missing"] == 0:
            key = (r["_scenario"], r["_target"])
            best[key] = max(best.get(key, 0), r["deliveries_per_sec"])
    if best:
        print()
        print(f"Throughput at p99 ≤ {args.p99_bound:g} ms (best run with nothing missing):")
        print()
        print("| scenario | system | deliveries/s | ours ÷ this |")
        print("|---|---|---|---|")
        for (scenario, target), value in sorted(best.items()):
            ours = best.get((scenario, "ours"))
            print(f"| {scenario} | {target} | {fmt(value, 0)} | {fmt(ours / value, 2) if ours and value else '–'} |")
    for name, what in (("pgbench", "one message per transaction"), ("pgbench-batched", "a batch of one room's messages per transaction")):
        txt = os.path.join(args.folder, f"ingest--{name}.txt")
        if not os.path.exists(txt):
            continue
        with open(txt) as f:
            text = f.read()
        m = re.search(r"tps = ([0-9.]+)", text)
        rows = re.search(r"rows per transaction: ([0-9]+)", text)
        if m:
            n = int(rows.group(1)) if rows else 1
            print(f"\npgbench floor (same schema, {what}): {float(m.group(1)) * n:,.0f} messages/s")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Where a send's time goes: the stage histograms (`chat_gateway_stage_seconds`,
`chat_worker_stage_seconds`) read from the servers' /metrics after a run,
summed over the processes, printed as p50 / p99 per stage in path order.
Quantiles are interpolated within buckets, as Prometheus's
histogram_quantile does.

    python3 bench/stages.py http://127.0.0.1:PORT/metrics ...
"""
import re
import sys
import urllib.request

# The path of a send, in order: (metric, stage, what it spans).
STAGES = [
    ("chat_gateway_stage_seconds", "publish", "gateway took it -> JetStream holds it"),
    ("chat_worker_stage_seconds", "queued", "gateway took it -> a worker pulled it"),
    ("chat_worker_stage_seconds", "lane", "pulled -> its batch's transaction began"),
    ("chat_worker_stage_seconds", "commit", "the transaction"),
    ("chat_worker_stage_seconds", "fanout", "committed -> fan-out published"),
    ("chat_gateway_stage_seconds", "fanout_transit", "fan-out published -> at the gateway"),
    ("chat_gateway_delivery_seconds", None, "committed -> written to a socket (ms clock)"),
]
LINE = re.compile(r'^(\w+)_bucket\{(.*)\} (\S+)$')


def buckets(texts):
    """{(metric, stage): {le: count}}, summed over the processes."""
    out = {}
    for text in texts:
        for line in text.splitlines():
            m = LINE.match(line)
            if not m:
                continue
            labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2)))
            key = (m.group(1), labels.get("stage"))  # None: a histogram without stages
            le = float("inf") if labels["le"] == "+Inf" else float(labels["le"])
            out.setdefault(key, {})
            out[key][le] = out[key].get(le, 0) + float(m.group(3))
    return out


def quantile(q, counts):
    les = sorted(counts)
    total = counts[les[-1]]
    if total == 0:
        return None
    rank, lower, below = q * total, 0.0, 0.0
    for le in les:
        if counts[le] >= rank:
            if le == float("inf"):
                return lower
            share = (rank - below) / (counts[le] - below) if counts[le] > below else 1.0
            return lower + (le - lower) * share
        lower, below = le, counts[le]
    return lower


def main():
    texts = [urllib.request.urlopen(url, timeout=5).read().decode() for url in sys.argv[1:]]
    found = buckets(texts)
    print("| stage | spans | observations | p50 ms | p99 ms |")
    print("|---|---|---|---|---|")
    for metric, stage, spans in STAGES:
        counts = found.get((metric, stage))
        stage = stage or "delivery"
        if not counts:
            print(f"| {stage} | {spans} | 0 | – | – |")
            continue
        p50, p99 = quantile(0.5, counts), quantile(0.99, counts)
        n = int(counts[max(counts)])
        print(f"| {stage} | {spans} | {n:,} | {1000 * p50:.2f} | {1000 * p99:.2f} |")


if __name__ == "__main__":
    main()

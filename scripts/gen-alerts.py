#!/usr/bin/env python3
"""Writes deploy/prometheus/chat-rules.yml (the SLOs' error ratios, their
burn-rate alerts and the cause alerts) and chat-rules.test.yml (promtool
unit tests: each alert fired by synthetic series, and kept quiet by series
that must not fire it), and the chart's copy of the rules. One source, so
the alerts, their runbook links and
their tests cannot drift apart. With --check it writes nothing and fails
if the files are not what it would write or a runbook link names no
section of docs/operations.md; scripts/test.sh runs that, then
`promtool check rules` and `promtool test rules`.
"""
import pathlib
import re
import sys

import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "deploy" / "prometheus"
# The chart's copy, which its PrometheusRule renders (a chart reads only
# files inside it).
CHART_COPY = ROOT / "helm" / "chat" / "files" / "chat-rules.yml"
RUNBOOK = "https://github.com/example/chat/blob/main/docs/operations.md#"
WINDOWS = ["5m", "30m", "1h", "2h", "6h", "1d", "3d"]

# Each SLO: its valid and good events (rates over a window {w}), its error
# budget, and its runbook section.
SLOS = {
    "sends": dict(
        valid='sum(rate(chat_gateway_sends_total{{outcome=~"acked|timeout|unavailable|internal"}}[{w}]))',
        good='sum(rate(chat_gateway_send_ack_seconds_bucket{{le="1"}}[{w}]))',
        budget=0.001, what="sends acked within 1 s", anchor="slo-sends"),
    "delivery": dict(
        valid="(sum(rate(chat_gateway_canary_seconds_count[{w}])) + sum(rate(chat_gateway_canary_failures_total[{w}])))",
        good='sum(rate(chat_gateway_canary_seconds_bucket{{le="1"}}[{w}]))',
        budget=0.001, what="delivery canaries answered within 1 s", anchor="slo-delivery"),
    "handshakes": dict(
        valid='sum(rate(chat_gateway_connects_total{{result=~"accepted|at_capacity|unavailable|internal|shutting_down"}}[{w}]))',
        good='sum(rate(chat_gateway_connects_total{{result="accepted"}}[{w}]))',
        budget=0.0005, what="WebSocket handshakes that succeed", anchor="slo-handshakes"),
}

# (alert, expression, for, severity, summary, runbook section)
CAUSES = [
    ("ChatConsumerLagGrowing",
     "max(chat_worker_consumer_pending) > 100\nand\nmax(delta(chat_worker_consumer_pending[5m])) > 0\n",
     "5m", "page", "Sends wait for the workers, and more each minute.", "consumer-lag"),
    ("ChatDeadLetters", "sum(increase(chat_worker_dead_letters_total[10m])) > 0\n", None, "ticket",
     "Workers gave up on sends or commands: they wait on the dead-letter stream.", "dead-letters"),
    ("ChatCanaryFailing", "min by (instance) (chat_gateway_canary_ok) == 0\n", "2m", "page",
     "A gateway's delivery canary is not answered: its sends are not stored or not delivered.", "canary-failing"),
    ("ChatDependencyDown", 'chat_dependency_up{dependency=~"nats|postgres"} == 0\n', "2m", "page",
     "A gateway or worker cannot reach NATS or Postgres (its /readyz fails): it serves nothing.", "dependency-down"),
    ("ChatRedisDown", 'chat_dependency_up{dependency="redis"} == 0\n', "5m", "ticket",
     "A gateway or worker cannot reach Redis: served from Postgres meanwhile, slower.", "redis-down"),
    ("ChatGatewayNearCapacity", "chat_gateway_connections / chat_gateway_max_connections > 0.9\n", "5m", "ticket",
     "A gateway holds over 90 % of the sockets it may (limits.max_connections).", "gateway-near-capacity"),
    ("ChatSlowConsumersClosed", 'sum(rate(chat_gateway_queue_drops_total{what="closed"}[5m])) > 0.1\n', "10m", "ticket",
     "Gateways close sockets that cannot keep up (4008), more than one every 10 s.", "slow-consumers"),
    ("ChatPanics", "sum(increase(chat_gateway_panics_total[15m])) > 0\n", None, "ticket",
     "A gateway caught a panic (a bug) while serving a socket or a send.", "panics"),
    ("ChatPodRestarting",
     'increase(kube_pod_container_status_restarts_total{container=~"gateway|worker"}[30m]) > 2\n', None, "ticket",
     "A gateway or worker container restarted more than twice in 30 minutes.", "pod-restarting"),
    ("ChatCpuHigh",
     'sum by (namespace, pod, container) (rate(container_cpu_usage_seconds_total{container=~"gateway|worker"}[5m]))\n'
     "/\n"
     'sum by (namespace, pod, container) (kube_pod_container_resource_requests{resource="cpu", container=~"gateway|worker"})\n'
     "> 0.8\n",
     "10m", "ticket", "A gateway or worker has used more than 80 % of its CPU request for 10 minutes.", "cpu-high"),
]


# Cause alerts over one series: (alert, checked at, series, values that
# fire it, values that must not, labels the alert carries from the series).
CAUSE_CASES = [
    ("ChatConsumerLagGrowing", "15m", 'chat_worker_consumer_pending{instance="w1"}', "0+50x20", "500x20", {}),
    ("ChatDeadLetters", "5m", "chat_worker_dead_letters_total", "0 0 0 1 1 1 1", "3x10", {}),
    ("ChatCanaryFailing", "10m", 'chat_gateway_canary_ok{instance="g1"}', "1x5 0x10", "1x8 0 1x5",
     {"instance": "g1"}),
    ("ChatDependencyDown", "5m", 'chat_dependency_up{dependency="postgres", instance="g1"}', "1 0 0 0 0 0", "1 0 1 1 1 1",
     {"dependency": "postgres", "instance": "g1"}),
    ("ChatRedisDown", "10m", 'chat_dependency_up{dependency="redis", instance="w1"}', "1 0 0 0 0 0 0 0 0 0 0",
     "1 0 0 1 1 1 1 1 1 1 1", {"dependency": "redis", "instance": "w1"}),
    ("ChatSlowConsumersClosed", "20m", 'chat_gateway_queue_drops_total{what="closed"}', "0+12x30", "0+3x30", {}),
    ("ChatPanics", "5m", "chat_gateway_panics_total", "0 0 1 1 1 1", "0x10", {}),
    ("ChatPodRestarting", "10m", 'kube_pod_container_status_restarts_total{container="worker", pod="chat-worker-0"}',
     "0 1 2 3 3 3 3 3 3 3 3", "0 1 1 1 1 1 1 1 1 1 1", {"container": "worker", "pod": "chat-worker-0"}),
]


def ratio(name, w):
    return f"chat:{name}_errors:ratio_rate{w}"


def burn(name, factor, long_w, short_w):
    t = round(factor * SLOS[name]["budget"], 6)
    return f"{ratio(name, long_w)} > {t} and {ratio(name, short_w)} > {t}"


def rules():
    recorded = []
    for name, s in SLOS.items():
        for w in WINDOWS:
            valid, good = s["valid"].format(w=w), s["good"].format(w=w)
            recorded.append({"record": ratio(name, w), "expr": f"({valid} - {good})\n/\n{valid}\n"})
    alerts = []
    for name, s in SLOS.items():
        cap = name.capitalize()
        for speed, sev, fr, a, b, text in [
            ("Fast", "page", "2m", (14.4, "1h", "5m"), (6, "6h", "30m"), "fast (14.4x over 1 h, or 6x over 6 h)"),
            ("Slow", "ticket", "15m", (3, "1d", "2h"), (1, "3d", "6h"), "(3x over 1 d, or 1x over 3 d)"),
        ]:
            alerts.append({
                "alert": f"Chat{cap}BudgetBurn{speed}",
                "expr": f"(\n  {burn(name, *a)}\n)\nor\n(\n  {burn(name, *b)}\n)\n",
                "for": fr,
                "labels": {"severity": sev, "slo": name},
                "annotations": {
                    "summary": f"The {s['what']} SLO burns its 30-day error budget {text}.",
                    "runbook_url": RUNBOOK + s["anchor"],
                },
            })
    for alert, expr, fr, sev, summary, anchor in CAUSES:
        rule = {"alert": alert, "expr": expr}
        if fr:
            rule["for"] = fr
        rule["labels"] = {"severity": sev}
        rule["annotations"] = {"summary": summary, "runbook_url": RUNBOOK + anchor}
        alerts.append(rule)
    return {"groups": [
        {"name": "chat-slo-ratios", "rules": recorded},
        {"name": "chat-alerts", "rules": alerts},
    ]}


def series(name, values):
    return {"series": name, "values": values}


def case(at, alert, inputs, fires, labels=None, interval="1m"):
    """One promtool test: `inputs` at `interval`, `alert` checked at `at`."""
    return {"interval": interval, "input_series": inputs, "alert_rule_test": [
        {"eval_time": at, "alertname": alert, "exp_alerts": [labels] if fires else []}]}


def slo_inputs(name, good, bad, minutes, other=None):
    """`good` good and `bad` bad events a minute for `minutes` minutes."""
    n = minutes
    if name == "sends":
        out = [series('chat_gateway_sends_total{outcome="acked"}', f"0+{good}x{n}"),
               series('chat_gateway_sends_total{outcome="timeout"}', f"0+{bad}x{n}"),
               series('chat_gateway_send_ack_seconds_bucket{le="1"}', f"0+{good}x{n}")]
    elif name == "delivery":
        out = [series("chat_gateway_canary_seconds_count", f"0+{good}x{n}"),
               series('chat_gateway_canary_seconds_bucket{le="1"}', f"0+{good}x{n}"),
               series("chat_gateway_canary_failures_total", f"0+{bad}x{n}")]
    else:
        out = [series('chat_gateway_connects_total{result="accepted"}', f"0+{good}x{n}"),
               series('chat_gateway_connects_total{result="at_capacity"}', f"0+{bad}x{n}")]
    return out + (other or [])


def tests(rules_doc):
    by_name = {r["alert"]: r for g in rules_doc["groups"] for r in g["rules"] if "alert" in r}

    def fired(alert, extra=None):
        r = by_name[alert]
        return {"exp_labels": {**r["labels"], **(extra or {})}, "exp_annotations": r["annotations"]}

    out = []
    for name in SLOS:
        cap = name.capitalize()
        fast, slow = f"Chat{cap}BudgetBurnFast", f"Chat{cap}BudgetBurnSlow"
        # 5 % bad for 90 minutes: fast burn.
        out.append(case("80m", fast, slo_inputs(name, 1000, 50, 90), True, fired(fast)))
        # A 3-minute blip of 5 % in an hour of good traffic: not enough.
        out.append(case("80m", fast, blip_inputs(name, "0+1000x90", "0x60 0+50x3 150x27"), False))
        # 0.4 % bad for 26 hours: a slow burn (over 3x), not a fast one.
        slow_in = slo_inputs(name, 10000, 40, 1560) if name != "handshakes" else slo_inputs(name, 10000, 20, 1560)
        out.append(case("26h", slow, slow_in, True, fired(slow)))
        out.append(case("26h", fast, slow_in, False))
        # 0.025 % bad: within budget, nothing fires.
        ok = slo_inputs(name, 40000, 10, 1560) if name != "handshakes" else slo_inputs(name, 40000, 4, 1560)
        out.append(case("26h", slow, ok, False))
    # Handshakes refused for the client's fault do not count.
    out.append(case("80m", "ChatHandshakesBudgetBurnFast", [
        series('chat_gateway_connects_total{result="accepted"}', "0+1000x90"),
        series('chat_gateway_connects_total{result="unauthorized"}', "0+500x90")], False))
    for alert, at, name, fire, quiet, extra in CAUSE_CASES:
        out.append(case(at, alert, [series(name, fire)], True, fired(alert, extra)))
        out.append(case(at, alert, [series(name, quiet)], False))
    near = "ChatGatewayNearCapacity"
    limit = series('chat_gateway_max_connections{instance="g1"}', "1000x20")
    out.append(case("10m", near, [series('chat_gateway_connections{instance="g1"}', "950x20"), limit], True,
                    fired(near, {"instance": "g1"})))
    out.append(case("10m", near, [series('chat_gateway_connections{instance="g1"}', "800x20"), limit], False))
    cpu = "ChatCpuHigh"
    where = {"namespace": "chat", "pod": "chat-gateway-0", "container": "gateway"}
    sel = 'namespace="chat", pod="chat-gateway-0", container="gateway"'
    request = series(f'kube_pod_container_resource_requests{{{sel}, resource="cpu"}}', "1x30")
    out.append(case("20m", cpu, [series(f"container_cpu_usage_seconds_total{{{sel}}}", "0+54x30"), request], True,
                    fired(cpu, where)))
    out.append(case("20m", cpu, [series(f"container_cpu_usage_seconds_total{{{sel}}}", "0+30x30"), request], False))
    return {"rule_files": ["chat-rules.yml"], "evaluation_interval": "1m", "tests": out}


def blip_inputs(name, good_values, bad_values):
    if name == "sends":
        return [series('chat_gateway_sends_total{outcome="acked"}', good_values),
                series('chat_gateway_sends_total{outcome="timeout"}', bad_values),
                series('chat_gateway_send_ack_seconds_bucket{le="1"}', good_values)]
    if name == "delivery":
        return [series("chat_gateway_canary_seconds_count", good_values),
                series('chat_gateway_canary_seconds_bucket{le="1"}', good_values),
                series("chat_gateway_canary_failures_total", bad_values)]
    return [series('chat_gateway_connects_total{result="accepted"}', good_values),
            series('chat_gateway_connects_total{result="at_capacity"}', bad_values)]


def dump(doc, header):
    def text(dumper, value):
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)
    yaml.add_representer(str, text)
    return header + yaml.dump(doc, sort_keys=False, allow_unicode=True, width=100)


HEADER = """# Prometheus rules for what chat's users feel (docs/operations.md): the
# SLOs' error ratios over the burn-rate windows, multi-window multi-burn-rate
# alerts on each (fast burn pages, slow burn tickets), and alerts on causes.
# Written by scripts/gen-alerts.py: edit that, not this.
"""
TEST_HEADER = """# promtool unit tests of chat-rules.yml: `promtool test rules chat-rules.test.yml`.
# Written by scripts/gen-alerts.py: edit that, not this.
"""

def anchors():
    """GitHub's anchors of docs/operations.md's headings."""
    text = (ROOT / "docs" / "operations.md").read_text()
    heads = re.findall(r"^#+ (.+)$", text, re.M)
    return {re.sub(r"[^a-z0-9 -]", "", h.lower()).replace(" ", "-") for h in heads}


if __name__ == "__main__":
    doc = rules()
    files = {"chat-rules.yml": dump(doc, HEADER), "chat-rules.test.yml": dump(tests(doc), TEST_HEADER)}
    paths = {OUT / name: text for name, text in files.items()}
    paths[CHART_COPY] = files["chat-rules.yml"]
    if "--check" not in sys.argv:
        for path, text in paths.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        sys.exit(0)
    problems = [f"{path.relative_to(ROOT)} is stale: run scripts/gen-alerts.py" for path, text in paths.items()
                if not path.exists() or path.read_text() != text]
    known = anchors()
    for group in doc["groups"]:
        for rule in group["rules"]:
            url = rule.get("annotations", {}).get("runbook_url", "")
            if url and url.split("#")[1] not in known:
                problems.append(f"{rule['alert']}: docs/operations.md has no section #{url.split('#')[1]}")
    print("\n".join(problems) or f"alerts: {len(doc['groups'][1]['rules'])} alerts, files current, runbooks found")
    sys.exit(1 if problems else 0)

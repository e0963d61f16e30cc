#!/usr/bin/env python3
"""Properties every rendered deployment must have (scripts/check-deploy.sh).

    check_deploy_props.py BIN_DIR FILE[:FLAGS] ...

FILE is a multi-document manifest (a helm template or kustomize output);
FLAGS, comma-separated, ask for more: `hpa` (the gateway HPA on CPU and
connections), `pdb` (PDBs of both components). BIN_DIR holds the `gateway`
and `worker` binaries, whose `config-fields` list every variable they read.
Prints one line per failure and exits 1 if there was any.
"""

import math
import os
import re
import subprocess
import sys

import yaml

failures = []


def check(ok, where, what):
    if not ok:
        failures.append(f"{where}: {what}")


def config_fields(bin_dir, program):
    out = subprocess.run([os.path.join(bin_dir, program), "config-fields"],
                         capture_output=True, text=True, check=True).stdout
    return set(out.split())


def component(doc):
    return doc["metadata"].get("labels", {}).get("app.kubernetes.io/component")


def pod_spec(doc):
    return doc["spec"]["template"]["spec"]


def env_of(container, config_maps):
    """(name -> literal value or None for secrets/fieldRefs) of a container."""
    env = {}
    for source in container.get("envFrom", []):
        env.update(config_maps[source["configMapRef"]["name"]])
    for var in container.get("env", []):
        env[var["name"]] = var.get("value")
    return env


def check_file(path, flags, fields, bin_dir):
    docs = [d for d in yaml.safe_load_all(open(path)) if d]
    by_kind = {}
    for doc in docs:
        by_kind.setdefault(doc["kind"], []).append(doc)
    config_maps = {d["metadata"]["name"]: d.get("data", {}) for d in by_kind.get("ConfigMap", [])}
    workloads = by_kind.get("Deployment", []) + by_kind.get("Job", [])
    deployments = {component(d): d for d in by_kind.get("Deployment", [])}
    check(set(deployments) == {"gateway", "worker"}, path, f"deployments {sorted(deployments)}, want gateway and worker")

    for doc in workloads:
        where = f"{path}: {doc['kind']} {doc['metadata']['name']}"
        spec = pod_spec(doc)
        pod_sc = spec.get("securityContext", {})
        check(pod_sc.get("runAsNonRoot") is True, where, "pod securityContext.runAsNonRoot is not true")
        check(pod_sc.get("seccompProfile", {}).get("type") == "RuntimeDefault", where, "seccompProfile is not RuntimeDefault")
        check(spec.get("automountServiceAccountToken") is False, where, "service account token is mounted")
        # A Service named chat-gateway would inject CHAT_GATEWAY_SERVICE_HOST &c.
        check(spec.get("enableServiceLinks") is False, where, "enableServiceLinks is not false")
        for c in spec["containers"]:
            sc = c.get("securityContext", {})
            check(sc.get("readOnlyRootFilesystem") is True, where, f"{c['name']}: root filesystem is writable")
            check(sc.get("allowPrivilegeEscalation") is False, where, f"{c['name']}: privilege escalation allowed")
            check(sc.get("capabilities", {}).get("drop") == ["ALL"], where, f"{c['name']}: capabilities not all dropped")
            check("limits" in c.get("resources", {}) and "requests" in c.get("resources", {}), where, f"{c['name']}: no requests and limits")
            program = c["command"][0]
            env = env_of(c, config_maps)
            for name in env:
                if name.startswith("CHAT_"):
                    check(name in fields[program], where, f"{name} is not a {program} setting (`{program} config-fields`)")

    gateway, worker = deployments.get("gateway"), deployments.get("worker")
    if gateway:
        where = f"{path}: gateway"
        spec = pod_spec(gateway)
        c = spec["containers"][0]
        env = env_of(c, config_maps)
        port = int(env["CHAT_GATEWAY_LISTEN"].rsplit(":", 1)[1])
        check_probes(where, c, "http", port)
        check(gateway["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0, where, "rollout maxUnavailable is not 0")
        id_from = next((v.get("valueFrom", {}) for v in c["env"] if v["name"] == "CHAT_GATEWAY_GATEWAY_ID"), {})
        check(id_from.get("fieldRef", {}).get("fieldPath") == "metadata.name", where, "gateway_id is not the pod name")
        # Every drain phase the binary has must be set explicitly, so the
        # chart's grace period accounts for it.
        drain_vars = sorted(f for f in fields["gateway"] if re.fullmatch(r"CHAT_GATEWAY_DRAIN_\w+_MS", f))
        missing = [v for v in drain_vars if env.get(v) is None]
        check(not missing, where, f"drain settings not set by the chart: {missing}")
        drain_s = sum(int(env.get(v) or 0) for v in drain_vars) / 1000
        grace = spec["terminationGracePeriodSeconds"]
        check(grace > drain_s, where, f"terminationGracePeriodSeconds {grace} <= drain window {drain_s} s")
        check_binary_accepts(where, bin_dir, env)
    if worker:
        c = pod_spec(worker)["containers"][0]
        port = int(env_of(c, config_maps)["CHAT_WORKER_HTTP_LISTEN"].rsplit(":", 1)[1])
        check_probes(f"{path}: worker", c, "metrics", port)

    if "pdb" in flags:
        pdbs = {d["spec"]["selector"]["matchLabels"].get("app.kubernetes.io/component") for d in by_kind.get("PodDisruptionBudget", [])}
        check(pdbs >= {"gateway", "worker"}, path, f"PDBs for {sorted(pdbs)}, want gateway and worker")
    if "hpa" in flags:
        hpas = [h for h in by_kind.get("HorizontalPodAutoscaler", []) if h["spec"]["scaleTargetRef"]["name"] == (gateway or {}).get("metadata", {}).get("name")]
        check(len(hpas) == 1, path, "no HPA for the gateway")
        for hpa in hpas:
            metrics = hpa["spec"]["metrics"]
            check(any(m["type"] == "Resource" and m["resource"]["name"] == "cpu" for m in metrics), path, "gateway HPA lacks CPU")
            check(any(m["type"] == "Pods" and m["pods"]["metric"]["name"] == "chat_gateway_connections" for m in metrics), path, "gateway HPA lacks chat_gateway_connections")
            down = hpa["spec"].get("behavior", {}).get("scaleDown", {})
            check(down.get("stabilizationWindowSeconds", 0) >= 300, path, "gateway HPA scales down without a long stabilization window")


def check_probes(where, container, port_name, port):
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    check(ports.get(port_name) == port, where, f"port {port_name} is {ports.get(port_name)}, the binary listens on {port}")
    for probe, path in [("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")]:
        get = container.get(probe, {}).get("httpGet", {})
        check(get.get("path") == path and get.get("port") in (port_name, port), where, f"{probe} is {get}, want {path} on {port_name}")


def check_binary_accepts(where, bin_dir, env):
    """The gateway loads exactly this configuration (dev-token loads and
    validates it, touching no network): types and values, not just names."""
    run_env = {"PATH": os.environ["PATH"]}
    for name, value in env.items():
        if value is not None:
            run_env[name] = value
    run_env["CHAT_GATEWAY_GATEWAY_ID"] = "pod-name-0"
    run_env["CHAT_GATEWAY_JWT__HS256_SECRET"] = "x" * 32
    out = subprocess.run([os.path.join(bin_dir, "gateway"), "dev-token", "probe"], env=run_env, capture_output=True, text=True)
    check(out.returncode == 0, where, f"the gateway refuses the rendered settings: {out.stderr.strip()}")


def main():
    bin_dir, specs = sys.argv[1], sys.argv[2:]
    fields = {p: config_fields(bin_dir, p) for p in ("gateway", "worker")}
    for spec in specs:
        path, _, flags = spec.partition(":")
        check_file(path, set(filter(None, flags.split(","))), fields, bin_dir)
    for line in failures:
        print(f"FAIL {line}")
    print(f"deploy properties: {len(specs)} renders checked, {len(failures)} failures")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()

#!/usr/bin/env bash
# The alert rules (docs/operations.md): current with their generator
# (scripts/gen-alerts.py) and every runbook link a section of
# docs/operations.md; valid for promtool; their unit tests pass; and the
# chart, rendered where the Prometheus Operator's CRD exists, ships them as
# a PrometheusRule promtool accepts. Needs the deploy checks' tools
# (scripts/check-deploy.sh: helm, PyYAML); installs promtool (Debian's
# prometheus package) if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v promtool >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null; }
python=.tools/venv/bin/python
$python scripts/gen-alerts.py --check
promtool check rules deploy/prometheus/chat-rules.yml
(cd deploy/prometheus && promtool test rules chat-rules.test.yml)
rendered=$(mktemp -d)
trap 'rm -rf "$rendered"' EXIT
.tools/bin/helm template chat helm/chat --namespace chat \
  -f helm/chat/ci/default-values.yaml --api-versions monitoring.coreos.com/v1/PrometheusRule \
  --show-only templates/prometheusrule.yaml > "$rendered/rule.yaml"
$python - "$rendered" <<'PY'
import pathlib, sys, yaml
out = pathlib.Path(sys.argv[1])
rule = yaml.safe_load((out / "rule.yaml").read_text())
assert rule["kind"] == "PrometheusRule", rule["kind"]
(out / "groups.yml").write_text(yaml.safe_dump(rule["spec"]))
PY
promtool check rules "$rendered/groups.yml"
echo "alerts: the chart's PrometheusRule renders and passes promtool"

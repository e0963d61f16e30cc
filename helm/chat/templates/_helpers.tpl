{{/* Names and labels. */}}
{{- define "chat.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "chat.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* Selector labels of one component: (dict "root" $ "component" "gateway"). */}}
{{- define "chat.selectorLabels" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "chat.serviceAccountName" -}}
{{- default (include "chat.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}

{{- define "chat.secretName" -}}
{{- default (include "chat.fullname" .) .Values.secrets.existingSecret -}}
{{- end -}}

{{- define "chat.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ default .Chart.AppVersion .Values.image.tag }}
{{- end -}}
{{- end -}}

{{/*
Flattens a settings map into environment variables: (dict "prefix" P
"path" "" "value" MAP "out" DICT) sets out[P + "LIMITS__MAX_CONNECTIONS"] for
limits.max_connections. Lists become JSON (figment parses them); null
leaves the binary's default.
*/}}
{{- define "chat.flatten" -}}
{{- range $key, $value := .value -}}
{{- $path := ternary $key (printf "%s__%s" $.path $key) (eq $.path "") -}}
{{- if kindIs "map" $value -}}
{{- include "chat.flatten" (dict "prefix" $.prefix "path" $path "value" $value "out" $.out) -}}
{{- else if not (kindIs "invalid" $value) -}}
{{- $text := toString $value -}}
{{- if kindIs "slice" $value -}}
{{- $text = toJson $value -}}
{{- else if and (kindIs "float64" $value) (eq (floor $value) $value) -}}
{{- /* values.yaml numbers arrive as float64: 1073741824 must not print as 1.073741824e+09 */ -}}
{{- $text = printf "%d" (int64 $value) -}}
{{- end -}}
{{- $_ := set $.out (printf "%s%s" $.prefix (upper $path)) $text -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
The environment of one binary from `config` and `<component>.config`, as
YAML of a map: (dict "root" $ "component" "gateway" "prefix" "CHAT_GATEWAY_"
"reserved" (list ...)). Fails on a setting given in both places, or on one
the chart sets itself (reserved: name -> where it is set).
*/}}
{{- define "chat.configEnv" -}}
{{- $shared := dict -}}
{{- include "chat.flatten" (dict "prefix" .prefix "path" "" "value" (.root.Values.config | default dict) "out" $shared) -}}
{{- $own := dict -}}
{{- include "chat.flatten" (dict "prefix" .prefix "path" "" "value" ((index .root.Values .component).config | default dict) "out" $own) -}}
{{- range $name, $_ := $own -}}
{{- if hasKey $shared $name -}}
{{- fail (printf "%s: set in both config and %s.config; set it once" $name $.component) -}}
{{- end -}}
{{- end -}}
{{- $env := merge $own $shared -}}
{{- range $name, $where := .reserved -}}
{{- if hasKey $env $name -}}
{{- fail (printf "%s: set by the chart from %s; remove it from config/%s.config" $name $where $.component) -}}
{{- end -}}
{{- end -}}
{{- toYaml $env -}}
{{- end -}}

{{- define "chat.gatewayEnv" -}}
{{- include "chat.configEnv" (dict "root" . "component" "gateway" "prefix" "CHAT_GATEWAY_" "reserved" (dict
  "CHAT_GATEWAY_LISTEN" "gateway.port"
  "CHAT_GATEWAY_GATEWAY_ID" "the pod name"
  "CHAT_GATEWAY_NATS_URL" "secrets.natsUrl"
  "CHAT_GATEWAY_REDIS_URL" "secrets.redisUrl"
  "CHAT_GATEWAY_POSTGRES__URL" "secrets.postgresUrl"
  "CHAT_GATEWAY_JWT__HS256_SECRET" "secrets.jwtHs256Secret"
  "CHAT_GATEWAY_ADMIN_TOKEN" "secrets.adminToken")) -}}
{{- end -}}

{{- define "chat.workerEnv" -}}
{{- include "chat.configEnv" (dict "root" . "component" "worker" "prefix" "CHAT_WORKER_" "reserved" (dict
  "CHAT_WORKER_HTTP_LISTEN" "worker.metricsPort"
  "CHAT_WORKER_NATS_URL" "secrets.natsUrl"
  "CHAT_WORKER_REDIS_URL" "secrets.redisUrl"
  "CHAT_WORKER_POSTGRES__URL" "secrets.postgresUrl")) -}}
{{- end -}}

{{/*
terminationGracePeriodSeconds of a gateway: every drain_*_ms phase it is
configured with (not ready, closing, sends finishing), rounded up, plus
gateway.terminationGraceExtraSeconds.
*/}}
{{- define "chat.gatewayGraceSeconds" -}}
{{- $ms := 0 -}}
{{- range $key, $value := .Values.gateway.config -}}
{{- if regexMatch "^drain_.*_ms$" $key -}}
{{- $ms = add $ms (int64 $value) -}}
{{- end -}}
{{- end -}}
{{- add (div (add $ms 999) 1000) .Values.gateway.terminationGraceExtraSeconds -}}
{{- end -}}

{{/* A secret's environment variable: (list "CHAT_..." "key" optional). */}}
{{- define "chat.secretEnv" -}}
- name: {{ index .args 0 }}
  valueFrom:
    secretKeyRef:
      name: {{ include "chat.secretName" .root }}
      key: {{ index .args 1 }}
      {{- if index .args 2 }}
      optional: true
      {{- end }}
{{- end -}}

{{/* The backends' URLs for a binary: (dict "root" $ "prefix" "CHAT_WORKER_"). */}}
{{- define "chat.backendEnv" -}}
{{- $env := list -}}
{{- range list (list "NATS_URL" "nats-url") (list "REDIS_URL" "redis-url") (list "POSTGRES__URL" "postgres-url") -}}
{{- $env = append $env (include "chat.secretEnv" (dict "root" $.root "args" (list (printf "%s%s" $.prefix (index . 0)) (index . 1) false))) -}}
{{- end -}}
{{- join "\n" $env -}}
{{- end -}}

{{/* Fails at render, naming the value, when a required secret is missing. */}}
{{- define "chat.checkSecrets" -}}
{{- if not .Values.secrets.existingSecret -}}
{{- range $field := list "natsUrl" "redisUrl" "postgresUrl" -}}
{{- if not (index $.Values.secrets $field) -}}
{{- fail (printf "secrets.%s is required unless secrets.existingSecret names a Secret that holds it" $field) -}}
{{- end -}}
{{- end -}}
{{- $rs256 := dig "jwt" "rs256_public_key_pem" "" (.Values.gateway.config | default dict) -}}
{{- if and (not .Values.secrets.jwtHs256Secret) (not $rs256) -}}
{{- fail "secrets.jwtHs256Secret is required (or gateway.config.jwt.rs256_public_key_pem, or secrets.existingSecret)" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Spreads a component over zones and nodes: (dict "root" $ "component" "gateway"). */}}
{{- define "chat.topologySpread" -}}
{{- if .root.Values.topologySpread.enabled -}}
topologySpreadConstraints:
  {{- range list "topology.kubernetes.io/zone" "kubernetes.io/hostname" }}
  - maxSkew: 1
    topologyKey: {{ . }}
    whenUnsatisfiable: {{ $.root.Values.topologySpread.whenUnsatisfiable }}
    labelSelector:
      matchLabels:
        {{- include "chat.selectorLabels" (dict "root" $.root "component" $.component) | nindent 8 }}
    matchLabelKeys: [pod-template-hash]
  {{- end }}
{{- end }}
{{- end -}}

{{/* Egress of every pod: DNS and the backends' ports. */}}
{{- define "chat.egress" -}}
egress:
  # DNS
  - ports:
      - {port: 53, protocol: UDP}
      - {port: 53, protocol: TCP}
  # NATS, Postgres, Redis, OTLP: anywhere, since they may be managed
  # services outside the cluster.
  - ports:
      {{- range $name, $port := .Values.networkPolicy.egressPorts }}
      - {port: {{ $port }}, protocol: TCP}
      {{- end }}
{{- end -}}

{{/* checkov findings that do not apply, each with why (scripts/check-deploy.sh). */}}
{{- define "chat.checkovSkips" -}}
checkov.io/skip1: CKV_K8S_35=the binaries read settings only from CHAT_* variables; secrets come through secretKeyRef, never inline
{{- if not .Values.image.digest }}
checkov.io/skip2: CKV_K8S_43=no digest exists before the image is built; set image.digest in production (ci/production-values.yaml does)
{{- end }}
{{- if ne .Values.image.pullPolicy "Always" }}
checkov.io/skip3: CKV_K8S_15=release tags are immutable, so IfNotPresent saves a pull per pod start; set Always for mutable tags
{{- end }}
{{- end -}}

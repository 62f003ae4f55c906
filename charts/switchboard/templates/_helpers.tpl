{{/* Names, labels and shared fragments. */}}

{{- define "switchboard.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "switchboard.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "switchboard.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "switchboard.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: switchboard
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Selector labels of one component: (dict "ctx" $ "component" "router"). */}}
{{- define "switchboard.selectorLabels" -}}
app.kubernetes.io/name: {{ include "switchboard.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "switchboard.componentLabels" -}}
{{ include "switchboard.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "switchboard.operatorName" -}}{{ include "switchboard.fullname" . }}-operator{{- end -}}
{{- define "switchboard.routerName" -}}{{ include "switchboard.fullname" . }}-router{{- end -}}
{{- define "switchboard.redisName" -}}{{ include "switchboard.fullname" . }}-redis{{- end -}}
{{- define "switchboard.postgresName" -}}{{ include "switchboard.fullname" . }}-postgres{{- end -}}

{{- define "switchboard.operatorServiceAccount" -}}
{{- if .Values.operator.serviceAccount.create -}}
{{- default (include "switchboard.operatorName" .) .Values.operator.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.operator.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "switchboard.routerServiceAccount" -}}
{{- if .Values.router.serviceAccount.create -}}
{{- default (include "switchboard.routerName" .) .Values.router.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.router.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "switchboard.snapshotSecretName" -}}
{{- default (printf "%s-config" (include "switchboard.fullname" .)) .Values.operator.snapshotSecretName -}}
{{- end -}}

{{- define "switchboard.leaseName" -}}
{{- default (include "switchboard.operatorName" .) .Values.operator.leaseName -}}
{{- end -}}

{{- define "switchboard.tokenSecretName" -}}
{{- default (printf "%s-token" (include "switchboard.fullname" .)) .Values.auth.existingSecret -}}
{{- end -}}

{{- define "switchboard.tokenSecretKey" -}}
{{- if .Values.auth.existingSecret -}}{{ .Values.auth.existingSecretKey }}{{- else -}}token{{- end -}}
{{- end -}}

{{- define "switchboard.adminSecretName" -}}
{{- default (printf "%s-admin" (include "switchboard.fullname" .)) .Values.admin.existingSecret -}}
{{- end -}}

{{- define "switchboard.adminSecretKey" -}}
{{- if .Values.admin.existingSecret -}}{{ .Values.admin.existingSecretKey }}{{- else -}}token{{- end -}}
{{- end -}}

{{/* image: (dict "image" .Values.router.image "ctx" $) */}}
{{- define "switchboard.image" -}}
{{- $tag := default .ctx.Chart.AppVersion .image.tag -}}
{{- if .image.digest -}}
{{- printf "%s@%s" .image.repository .image.digest -}}
{{- else -}}
{{- printf "%s:%s" .image.repository $tag -}}
{{- end -}}
{{- end -}}

{{/* Whether more than one router may run (the HPA's maxReplicas with autoscaling, else
`replicas`): then a shared Redis ledger is required. */}}
{{- define "switchboard.routerMultiReplica" -}}
{{- $r := .Values.router -}}
{{- if ternary (gt (int $r.autoscaling.maxReplicas) 1) (gt (int $r.replicas) 1) $r.autoscaling.enabled -}}true{{- end -}}
{{- end -}}

{{/* Whether routers get a Redis URL at all. */}}
{{- define "switchboard.redisConfigured" -}}
{{- if or .Values.redis.enabled .Values.redis.url .Values.redis.existingSecret -}}true{{- end -}}
{{- end -}}

{{/* Topology spread: (dict "ctx" $ "component" "router" "values" .Values.router) */}}
{{- define "switchboard.topologySpread" -}}
{{- if .values.topologySpreadConstraints }}
topologySpreadConstraints:
{{- toYaml .values.topologySpreadConstraints | nindent 2 }}
{{- else if .values.topologySpread.enabled }}
topologySpreadConstraints:
{{- range .values.topologySpread.topologyKeys }}
  - maxSkew: {{ $.values.topologySpread.maxSkew }}
    topologyKey: {{ . }}
    whenUnsatisfiable: {{ $.values.topologySpread.whenUnsatisfiable }}
    labelSelector:
      matchLabels:
        {{- include "switchboard.selectorLabels" (dict "ctx" $.ctx "component" $.component) | nindent 8 }}
{{- end }}
{{- end }}
{{- end -}}

{{/* Fails the render on combinations the schema cannot express (or when it was skipped). */}}
{{- define "switchboard.validate" -}}
{{- if and (include "switchboard.routerMultiReplica" .) (not (include "switchboard.redisConfigured" .)) -}}
{{- fail "more than one router replica (router.replicas > 1 or router.autoscaling) needs the shared Redis ledger: set redis.enabled=true or redis.url (docs/budgets.md)" -}}
{{- end -}}
{{- if and .Values.redis.enabled (or .Values.redis.url .Values.redis.existingSecret) -}}
{{- fail "redis.enabled runs the chart's own Redis; redis.url / redis.existingSecret name an external one: set only one" -}}
{{- end -}}
{{- if and .Values.usage.postgres.enabled .Values.usage.existingSecret -}}
{{- fail "usage.postgres.enabled runs the chart's own Postgres; usage.existingSecret names an external one: set only one" -}}
{{- end -}}
{{- if and .Values.router.autoscaling.enabled (gt (int .Values.router.autoscaling.minReplicas) (int .Values.router.autoscaling.maxReplicas)) -}}
{{- fail "router.autoscaling.minReplicas must not exceed router.autoscaling.maxReplicas" -}}
{{- end -}}
{{- end -}}

{{/* The Redis URL as container env: (dict "ctx" $ "var" "SWITCHBOARD_REDIS_URL"). */}}
{{- define "switchboard.redisEnv" -}}
{{- $c := .ctx -}}
{{- if $c.Values.redis.enabled }}
{{- if $c.Values.redis.auth.enabled }}
- name: REDIS_PASSWORD
  valueFrom:
    secretKeyRef: {name: {{ include "switchboard.redisName" $c }}, key: password}
- name: {{ .var }}
  value: redis://:$(REDIS_PASSWORD)@{{ include "switchboard.redisName" $c }}.{{ $c.Release.Namespace }}.svc:6379/0
{{- else }}
- name: {{ .var }}
  value: redis://{{ include "switchboard.redisName" $c }}.{{ $c.Release.Namespace }}.svc:6379/0
{{- end }}
{{- else if $c.Values.redis.existingSecret }}
- name: {{ .var }}
  valueFrom:
    secretKeyRef: {name: {{ $c.Values.redis.existingSecret }}, key: {{ $c.Values.redis.existingSecretKey }}}
{{- else if $c.Values.redis.url }}
- name: {{ .var }}
  value: {{ $c.Values.redis.url | quote }}
{{- end }}
{{- end -}}

{{/* The usage store's URL as container env (SWITCHBOARD_USAGE_STORE): the DSN Secret, the
bundled Postgres, or `off`. */}}
{{- define "switchboard.usageEnv" -}}
{{- $u := .Values.usage -}}
{{- if $u.existingSecret }}
- name: SWITCHBOARD_USAGE_STORE
  valueFrom:
    secretKeyRef: {name: {{ $u.existingSecret }}, key: {{ $u.existingSecretKey }}}
{{- else if $u.postgres.enabled }}
- name: USAGE_POSTGRES_PASSWORD
  valueFrom:
    secretKeyRef: {name: {{ include "switchboard.postgresName" . }}, key: password}
- name: SWITCHBOARD_USAGE_STORE
  value: postgres://switchboard:$(USAGE_POSTGRES_PASSWORD)@{{ include "switchboard.postgresName" . }}.{{ .Release.Namespace }}.svc:5432/switchboard
{{- else }}
- name: SWITCHBOARD_USAGE_STORE
  value: "off"
{{- end }}
{{- end -}}

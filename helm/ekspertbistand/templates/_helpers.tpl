{{/*
Helpers shared by every template. Every per-service template loops over `.Values.services`,
merges `serviceDefaults` under the block with "ekb.service" and renders only enabled ones, so a
new service needs a values block and no template.
*/}}

{{- define "ekb.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "ekb.fullname" -}}
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

{{/* Name of a service's objects: <fullname>-<service>. Args: dict root, name. */}}
{{- define "ekb.componentName" -}}
{{- printf "%s-%s" (include "ekb.fullname" .root) .name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Deep merge: a copy of the first map with the second laid over it. Maps merge key by key; any
other value (false and 0 included, unlike sprig's merge) replaces. Returns YAML.
*/}}
{{- define "ekb.deepMerge" -}}
{{- $out := deepCopy (index . 0) -}}
{{- range $key, $value := (index . 1) -}}
{{- $current := index $out $key -}}
{{- if and (kindIs "map" $value) (kindIs "map" $current) -}}
{{- $_ := set $out $key (include "ekb.deepMerge" (list $current $value) | fromYaml) -}}
{{- else -}}
{{- $_ := set $out $key $value -}}
{{- end -}}
{{- end -}}
{{- toYaml $out -}}
{{- end -}}

{{/* A service's effective values (serviceDefaults under services.<name>). Args: dict root, name. Returns YAML. */}}
{{- define "ekb.service" -}}
{{- $block := index .root.Values.services .name | default dict -}}
{{- $svc := include "ekb.deepMerge" (list .root.Values.serviceDefaults $block) | fromYaml -}}
{{- if not $svc.binary -}}
{{- $_ := set $svc "binary" .name -}}
{{- end -}}
{{- toYaml $svc -}}
{{- end -}}

{{- define "ekb.chartLabel" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Selector labels of a service's pods. Args: dict root, name. */}}
{{- define "ekb.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ekb.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .name }}
{{- end -}}

{{/* Labels of every object of a service. Args: dict root, name. */}}
{{- define "ekb.labels" -}}
helm.sh/chart: {{ include "ekb.chartLabel" .root }}
{{ include "ekb.selectorLabels" . }}
app.kubernetes.io/version: {{ include "ekb.imageTag" .root | trunc 63 | quote }}
app.kubernetes.io/part-of: ekspertbistand
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
{{- with .root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Object metadata (name, namespace, labels) of a service's object. Args: dict root, name. */}}
{{- define "ekb.metadata" -}}
name: {{ include "ekb.componentName" . }}
namespace: {{ .root.Release.Namespace }}
labels:
  {{- include "ekb.labels" . | nindent 2 }}
{{- end -}}

{{- define "ekb.imageTag" -}}
{{- default .Chart.AppVersion .Values.image.tag -}}
{{- end -}}

{{- define "ekb.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (include "ekb.imageTag" .) -}}
{{- end -}}
{{- end -}}

{{- define "ekb.kafkaTls" -}}
{{- if has .Values.kafka.securityProtocol (list "ssl" "sasl_ssl") -}}true{{- end -}}
{{- end -}}

{{- define "ekb.kafkaSasl" -}}
{{- if eq .Values.kafka.securityProtocol "sasl_ssl" -}}true{{- end -}}
{{- end -}}

{{/* Ports of the runtime contract (docs/runtime-contract.md). */}}
{{- define "ekb.grpcPort" -}}50051{{- end -}}
{{- define "ekb.metricsPort" -}}9090{{- end -}}

{{/* terminationGracePeriodSeconds = preStop sleep + drain + grace + slack. */}}
{{- define "ekb.terminationGracePeriod" -}}
{{- $s := .Values.shutdown -}}
{{- add ($s.preStopSleepSeconds | int) ($s.drainSeconds | int) ($s.graceSeconds | int) ($s.slackSeconds | int) -}}
{{- end -}}

{{/*
The non-secret environment of a service, as ConfigMap data (YAML). Its hash becomes the pod's
checksum/config annotation, so a config change rolls the pods. Args: dict root, name, svc.
*/}}
{{- define "ekb.configData" -}}
{{- $v := .root.Values -}}
{{- $svc := .svc -}}
{{- $data := dict
  "EKB__GRPC__ADDR" (printf "0.0.0.0:%s" (include "ekb.grpcPort" .))
  "EKB__METRICS__ADDR" (printf "0.0.0.0:%s" (include "ekb.metricsPort" .))
  "EKB__DATABASE__MAX_CONNECTIONS" ($svc.database.maxConnections | int | toString)
  "EKB__DATABASE__CREATE_IF_MISSING" "false"
  "EKB__KAFKA__BROKERS" (join "," $v.kafka.brokers)
  "EKB__KAFKA__SECURITY_PROTOCOL" $v.kafka.securityProtocol
  "EKB__TELEMETRY__LOG_FORMAT" $v.telemetry.logFormat
  "EKB__TELEMETRY__LOG_FILTER" $v.telemetry.logFilter
  "EKB__TELEMETRY__OTLP_ENDPOINT" $v.telemetry.otlpEndpoint
  "EKB__AUTH__MODE" $v.auth.mode
  "EKB__SHUTDOWN__DRAIN" (printf "%ds" ($v.shutdown.drainSeconds | int))
  "EKB__SHUTDOWN__GRACE" (printf "%ds" ($v.shutdown.graceSeconds | int))
  "OTEL_SERVICE_NAME" .name
-}}
{{- if include "ekb.kafkaTls" .root -}}
{{- $dir := trimSuffix "/" $v.kafka.tls.mountPath -}}
{{- $_ := set $data "EKB__KAFKA__SSL_CA_LOCATION" (printf "%s/%s" $dir $v.kafka.tls.caKey) -}}
{{- if $v.kafka.tls.clientAuth -}}
{{- $_ := set $data "EKB__KAFKA__SSL_CERTIFICATE_LOCATION" (printf "%s/%s" $dir $v.kafka.tls.certKey) -}}
{{- $_ := set $data "EKB__KAFKA__SSL_KEY_LOCATION" (printf "%s/%s" $dir $v.kafka.tls.keyKey) -}}
{{- end -}}
{{- end -}}
{{- if include "ekb.kafkaSasl" .root -}}
{{- $_ := set $data "EKB__KAFKA__SASL_MECHANISM" $v.kafka.sasl.mechanism -}}
{{- end -}}
{{- if eq $v.auth.mode "jwt" -}}
{{- $_ := set $data "EKB__AUTH__ISSUER" $v.auth.issuer -}}
{{- $_ := set $data "EKB__AUTH__AUDIENCE" $v.auth.audience -}}
{{- $_ := set $data "EKB__AUTH__JWKS_URL" $v.auth.jwksUrl -}}
{{- $_ := set $data "EKB__AUTH__ORGANISATIONS_CLAIM" $v.auth.organisationsClaim -}}
{{- end -}}
{{- if $svc.pilot -}}
{{- $_ := set $data "EKB__PILOT__COUNTIES" (join "," $v.pilot.counties) -}}
{{- $_ := set $data "EKB__PILOT__PERIODS" (join "," $v.pilot.periods) -}}
{{- end -}}
{{- range $key, $value := $svc.config -}}
{{- if kindIs "float64" $value -}}
{{- $value = $value | int64 -}}
{{- end -}}
{{- $_ := set $data $key (toString $value) -}}
{{- end -}}
{{- toYaml $data -}}
{{- end -}}

{{/* Pod selector of a service of this chart, for NetworkPolicy peers. Args: dict root, name. */}}
{{- define "ekb.peerSelector" -}}
podSelector:
  matchLabels:
    {{- include "ekb.selectorLabels" . | nindent 4 }}
{{- end -}}

{{/* The chart's name. */}}
{{- define "fifteenth-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The release's fullname, the prefix of every object the chart creates (as namePrefix
fifteenth-operator- is for config/default): the release name when it holds the chart's name,
else <release>-<chart>. A release named fifteenth-operator names its objects as
config/default does.
*/}}
{{- define "fifteenth-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* The name of an object of config/ (role, binding, ...) in this release: <fullname>-<name>. */}}
{{- define "fifteenth-operator.prefixed" -}}
{{- printf "%s-%s" (include "fifteenth-operator.fullname" .root) .name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "fifteenth-operator.serviceAccountName" -}}
{{- include "fifteenth-operator.prefixed" (dict "root" . "name" "controller-manager") }}
{{- end }}

{{- define "fifteenth-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every object. */}}
{{- define "fifteenth-operator.labels" -}}
helm.sh/chart: {{ include "fifteenth-operator.chart" . }}
app.kubernetes.io/name: {{ include "fifteenth-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: fifteenth-operator
{{- end }}

{{/* Labels that select the manager's pods (as config/manager's, plus the release). */}}
{{- define "fifteenth-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "fifteenth-operator.name" . }}
app.kubernetes.io/component: manager
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The metrics port: https 8443 with authentication and authorization, else http 8080. */}}
{{- define "fifteenth-operator.metricsPortName" -}}
{{- if .Values.metrics.secure }}https{{ else }}metrics{{ end }}
{{- end }}
{{- define "fifteenth-operator.metricsPort" -}}
{{- if .Values.metrics.secure }}8443{{ else }}8080{{ end }}
{{- end }}

{{/* Names, labels and identities shared by every template. */}}

{{- define "imageprune.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's object name prefix: the release name when it already says imageprune. */}}
{{- define "imageprune.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "imageprune.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "imageprune.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Selector labels of one component (operator, agent): never change them, Deployments
and DaemonSets cannot change their selector. Call with (list . "operator"). */}}
{{- define "imageprune.selectorLabels" -}}
{{- $ := index . 0 -}}
app.kubernetes.io/name: {{ include "imageprune.name" $ }}
app.kubernetes.io/instance: {{ $.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{- define "imageprune.componentLabels" -}}
{{ include "imageprune.labels" (index . 0) }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{- define "imageprune.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{- define "imageprune.operatorServiceAccount" -}}
{{- default (printf "%s-operator" (include "imageprune.fullname" .)) .Values.operator.serviceAccount.name }}
{{- end }}

{{- define "imageprune.agentServiceAccount" -}}
{{- default (printf "%s-agent" (include "imageprune.fullname" .)) .Values.agent.serviceAccount.name }}
{{- end }}

{{/* The user names the apiserver gives the two service accounts' tokens. */}}
{{- define "imageprune.operatorUser" -}}
system:serviceaccount:{{ .Release.Namespace }}:{{ include "imageprune.operatorServiceAccount" . }}
{{- end }}

{{- define "imageprune.agentUser" -}}
system:serviceaccount:{{ .Release.Namespace }}:{{ include "imageprune.agentServiceAccount" . }}
{{- end }}

{{/* The restricted container security context both workloads start from. */}}
{{- define "imageprune.containerSecurity" -}}
allowPrivilegeEscalation: false
privileged: false
readOnlyRootFilesystem: true
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end }}

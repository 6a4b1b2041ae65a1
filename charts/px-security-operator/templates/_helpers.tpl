{{- define "pxsec.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The release's full name: the release name when it already contains the chart name. */}}
{{- define "pxsec.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "pxsec.serviceAccountName" -}}
{{- default (include "pxsec.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}

{{- define "pxsec.selectorLabels" -}}
app.kubernetes.io/name: {{ include "pxsec.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "pxsec.labels" -}}
{{ include "pxsec.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* The operator's rules on the objects it serves: the same in the ClusterRole and in each Role. */}}
{{- define "pxsec.namespacedRules" -}}
- apiGroups: [pxsec.dev]
  resources: [pxsecurities]
  verbs: [get, list, watch]
- apiGroups: [pxsec.dev]
  resources: [pxsecurities/status]
  verbs: [patch]
- apiGroups: [pxsec.dev]
  resources: [pxsecurities/finalizers]
  verbs: [update]
- apiGroups: [""]
  resources: [secrets]
  verbs: [get, list, watch, create, patch{{ if .Values.rbac.deleteSecrets }}, delete{{ end }}]
- apiGroups: [""]
  resources: [configmaps]
  verbs: [get, list, watch, create, patch]
- apiGroups: [""]
  resources: [events]
  verbs: [create, get, patch]
- apiGroups: [core.libopenstorage.org]
  resources: [storageclusters]
  verbs: [get, list, watch, patch]
# Whether Portworx runs for a StorageCluster (a change that would restart it waits for approval).
- apiGroups: [core.libopenstorage.org]
  resources: [storagenodes]
  verbs: [list, watch]
{{- end -}}

{{- define "pxsec.crdRules" -}}
- apiGroups: [apiextensions.k8s.io]
  resources: [customresourcedefinitions]
  verbs: [list, watch]
{{- end -}}

{{/* The names are fixed, as `mizu tap` creates them: `mizu view`, `mizu logs` and
`mizu clean` find a chart's deployment as they find the CLI's. */}}

{{- define "mizu.restricted" -}}
{{- if ne .Values.namespace "mizu" }}true{{ end -}}
{{- end -}}

{{- define "mizu.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "mizu.hubUrl" -}}
http://mizu-hub.{{ .Values.namespace }}.svc.cluster.local:8898
{{- end -}}

{{/* Labels of top-level objects; pods carry only the selector labels. */}}
{{- define "mizu.labels" -}}
app.kubernetes.io/part-of: mizu
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/instance: {{ .Release.Name }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "mizu.selector" -}}
app.kubernetes.io/part-of: mizu
app.kubernetes.io/component: {{ . }}
{{- end -}}

{{/* The config file of the hub and the tappers, as `mizu tap` writes it. */}}
{{- define "mizu.config" -}}
{{- $namespaces := .Values.tap.namespaces -}}
{{- if include "mizu.restricted" . -}}
{{- $namespaces = list .Values.namespace -}}
{{- end -}}
{{- $tap := dict
  "regex" .Values.tap.regex
  "namespaces" $namespaces
  "ignored-user-agents" (index .Values.tap "ignored-user-agents")
  "redact" .Values.tap.redact
  "max-entries-db-size" (index .Values.tap "max-entries-db-size")
  "pcap-export" (index .Values.tap "pcap-export")
  "traffic-validation-file" (ternary "/etc/mizu/rules.yaml" "" (ne .Values.rules ""))
-}}
{{- $config := dict
  "mizu-resources-namespace" .Values.namespace
  "log-level" (index .Values "log-level")
  "tap" $tap
  "plugins" .Values.plugins
-}}
{{- toYaml $config -}}
{{- end -}}

{{- define "mizu.resources" -}}
requests:
  cpu: {{ index . "cpu-request" | quote }}
  memory: {{ index . "memory-request" | quote }}
limits:
  cpu: {{ index . "cpu-limit" | quote }}
  memory: {{ index . "memory-limit" | quote }}
{{- end -}}

{{- define "mizu.tokenEnv" -}}
- name: MIZU_TAPPER_TOKEN
  valueFrom:
    secretKeyRef:
      name: mizu-tapper-token
      key: token
{{- end -}}

{{- define "mizu.configMount" -}}
- name: config
  mountPath: /etc/mizu
  readOnly: true
{{- end -}}

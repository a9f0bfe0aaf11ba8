{{/* The chart's name, and the full name every resource is named after. */}}
{{- define "conductor.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 52 | trimSuffix "-" -}}
{{- end -}}

{{- define "conductor.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 52 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 52 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "conductor.selectorLabels" -}}
app.kubernetes.io/name: {{ include "conductor.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "conductor.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "conductor.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: {{ include "conductor.component" . }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* aggregator or sink, from connector.class */}}
{{- define "conductor.component" -}}
{{- if eq (toString (index .Values.config "connector.class" | default "") | lower) "conductor.aggregate" -}}
aggregator
{{- else -}}
sink
{{- end -}}
{{- end -}}

{{- define "conductor.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}

{{- define "conductor.restSecretName" -}}
{{- .Values.rest.token.existingSecret | default (printf "%s-rest" (include "conductor.fullname" .)) -}}
{{- end -}}

{{- define "conductor.secretsName" -}}
{{- .Values.secrets.existingSecret | default (printf "%s-secrets" (include "conductor.fullname" .)) -}}
{{- end -}}

{{/* True (non-empty) when a Secret of files is mounted at secrets.mountPath. */}}
{{- define "conductor.hasSecrets" -}}
{{- if or .Values.secrets.existingSecret .Values.secrets.files -}}yes{{- end -}}
{{- end -}}

{{/*
The connector config as a dict: the user's keys, the connector's name, and the REST keys the
chart owns (the port is wired into the Service and the probes, the token into its Secret).
*/}}
{{- define "conductor.config" -}}
{{- $config := deepCopy (.Values.config | default dict) -}}
{{- range $key := list "listeners" "conductor.rest.token" "conductor.rest.open.reads" "conductor.rest.allow.unauthenticated" -}}
{{- if hasKey $config $key -}}
{{- fail (printf "config.%s: the chart writes this key; set rest.port, rest.scheme, rest.auth and rest.openReads instead" $key) -}}
{{- end -}}
{{- end -}}
{{- if not (index $config "name") -}}
{{- $_ := set $config "name" (include "conductor.fullname" .) -}}
{{- end -}}
{{- if not (has .Values.rest.scheme (list "http" "https")) -}}
{{- fail (printf "rest.scheme: %q is neither http nor https" .Values.rest.scheme) -}}
{{- end -}}
{{- $_ := set $config "listeners" (printf "%s://0.0.0.0:%d" .Values.rest.scheme (int .Values.rest.port)) -}}
{{- if eq .Values.rest.auth "token" -}}
{{- $_ := set $config "conductor.rest.token" (printf "${directory:%s:token}" .Values.rest.mountPath) -}}
{{- $_ := set $config "conductor.rest.open.reads" (ternary "true" "false" (.Values.rest.openReads | default false)) -}}
{{- else if eq .Values.rest.auth "none" -}}
{{- $_ := set $config "conductor.rest.allow.unauthenticated" "true" -}}
{{- else -}}
{{- fail (printf "rest.auth: %q is neither token nor none" .Values.rest.auth) -}}
{{- end -}}
{{- toJson $config -}}
{{- end -}}

{{/* A key of a .properties file, escaped as java.util.Properties reads it. */}}
{{- define "conductor.propertyKey" -}}
{{- $key := . | replace "\\" "\\\\" | replace " " "\\ " | replace ":" "\\:" | replace "=" "\\=" -}}
{{- if or (hasPrefix "#" $key) (hasPrefix "!" $key) }}\{{ end }}{{ $key }}
{{- end -}}

{{/*
A value of a .properties file: a number as written (Helm reads YAML numbers as floats), a list
comma-separated, backslashes doubled, final newlines dropped, and each line of a multi-line value continued with `\n\`,
its leading blanks escaped so that java.util.Properties keeps them.
*/}}
{{- define "conductor.propertyValue" -}}
{{- $value := .value -}}
{{- if kindIs "map" $value -}}
{{- fail (printf "config.%s: a map; connector keys are flat (write the dotted key)" .key) -}}
{{- else if kindIs "slice" $value -}}
{{- $value = join "," $value -}}
{{- else if and (kindIs "float64" $value) (eq (floor $value) $value) -}}
{{- $value = int64 $value | toString -}}
{{- else -}}
{{- $value = toString $value -}}
{{- end -}}
{{- $value = regexReplaceAll "\n+$" $value "" | replace "\\" "\\\\" | replace "\r" "\\r" -}}
{{- range $index, $line := splitList "\n" $value -}}
{{- if $index }}\n\
    {{ end -}}
{{- if or (hasPrefix " " $line) (hasPrefix "\t" $line) }}\{{ end }}{{ $line }}
{{- end -}}
{{- end -}}

{{/* The ConfigMap's connector.properties. */}}
{{- define "conductor.properties" -}}
# The connector config of the release {{ .Release.Name }}, written by the conductor chart from
# .Values.config (docs/CONFIG.md has every key). Change the values, not this file.
{{- range $key, $value := include "conductor.config" . | fromJson }}
{{- if not (kindIs "invalid" $value) }}
{{ include "conductor.propertyKey" $key }}={{ include "conductor.propertyValue" (dict "key" $key "value" $value) }}
{{- end }}
{{- end }}
{{ end -}}

{{/* The Bitnami common chart's pattern (common.capabilities.cronjob.apiVersion). */}}
{{- define "cronjob.apiVersion" -}}
{{- if semverCompare "<1.21-0" .Capabilities.KubeVersion.GitVersion -}}
batch/v1beta1
{{- else -}}
batch/v1
{{- end -}}
{{- end -}}

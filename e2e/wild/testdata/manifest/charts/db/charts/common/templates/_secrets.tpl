{{/*
common.secrets.passwords.manage returns a Secret value (base64, quoted):
  1. the key of the existing Secret .secret, read with lookup;
  2. else the first of .providedValues (value paths) that is set;
  3. else a random password of .length characters, generated once.
Usage: {{ include "common.secrets.passwords.manage" (dict "secret" "name" "key" "k" "providedValues" (list "auth.password") "length" 16 "context" $) }}
*/}}
{{- define "common.secrets.passwords.manage" -}}
{{- $password := "" -}}
{{- $provided := "" -}}
{{- range .providedValues -}}
  {{- $v := include "common.utils.getValueFromKey" (dict "key" . "context" $.context) -}}
  {{- if and $v (not $provided) -}}{{- $provided = $v -}}{{- end -}}
{{- end -}}
{{- $secretData := (lookup "v1" "Secret" (include "common.names.namespace" .context) .secret).data -}}
{{- if and $secretData (hasKey $secretData .key) -}}
  {{- $password = index $secretData .key | quote -}}
{{- else if $secretData -}}
  {{- printf "\nPASSWORDS ERROR: The secret %q does not contain the key %q\n" .secret .key | fail -}}
{{- else if $provided -}}
  {{- $password = $provided | toString | b64enc | quote -}}
{{- else -}}
  {{- $password = randAlphaNum (default 10 .length) | b64enc | quote -}}
{{- end -}}
{{- printf "%s" $password -}}
{{- end -}}

{{- define "common.utils.getValueFromKey" -}}
{{- $value := .context.Values -}}
{{- range (splitList "." .key) -}}
  {{- if kindIs "map" $value -}}{{- $value = index $value . -}}{{- else -}}{{- $value = "" -}}{{- end -}}
{{- end -}}
{{- if $value -}}{{- printf "%v" $value -}}{{- end -}}
{{- end -}}

{{/*
The chart's name, truncated to the 63 characters a label value allows.
*/}}
{{- define "cqgate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The release's full name, used for every object the chart creates.
*/}}
{{- define "cqgate.fullname" -}}
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

{{- define "cqgate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "cqgate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "cqgate.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "cqgate.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: {{ .Values.mode }}
{{- end }}

{{- define "cqgate.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "cqgate.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "cqgate.image" -}}
{{- $repo := required "cqgate: image.repository is required: where you pushed the image built from the Dockerfile" .Values.image.repository -}}
{{- if .Values.image.digest -}}
{{ $repo }}@{{ .Values.image.digest }}
{{- else -}}
{{ $repo }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}
{{- end }}

{{/*
The address cqgate listens on: config.listen if set, else 127.0.0.1:<port>
for a sidecar and 0.0.0.0:<port> for the standalone proxy.
*/}}
{{- define "cqgate.listen" -}}
{{- $cfg := .Values.config | default dict -}}
{{- if $cfg.listen -}}
{{ $cfg.listen }}
{{- else if eq .Values.mode "sidecar" -}}
127.0.0.1:{{ .Values.port }}
{{- else -}}
0.0.0.0:{{ .Values.port }}
{{- end -}}
{{- end }}

{{/*
"true" when the listen address given as the context is loopback
(127.0.0.0/8, ::1 or localhost), as cqgate's own check decides; empty
otherwise. ":8080", "0.0.0.0:8080" and "[::]:8080" are not loopback.
*/}}
{{- define "cqgate.isLoopback" -}}
{{- $host := regexReplaceAll ":[0-9]*$" . "" | trimPrefix "[" | trimSuffix "]" -}}
{{- if or (eq $host "localhost") (hasPrefix "127." $host) (eq $host "::1") -}}
true
{{- end -}}
{{- end }}

{{/*
Whether cqgate serves HTTPS: config.inbound.tls.cert_file is set.
*/}}
{{- define "cqgate.scheme" -}}
{{- if dig "inbound" "tls" "cert_file" "" (.Values.config | default dict) -}}
HTTPS
{{- else -}}
HTTP
{{- end -}}
{{- end }}

{{- define "cqgate.metricsPath" -}}
{{- dig "metrics" "path" "/metrics" (.Values.config | default dict) -}}
{{- end }}

{{- define "cqgate.metricsEnabled" -}}
{{- if dig "metrics" "enabled" true (.Values.config | default dict) -}}
true
{{- end -}}
{{- end }}

{{/*
Refuse configurations cqgate would refuse, with the reason, at template
time rather than in a crash-looping pod.
*/}}
{{- define "cqgate.validate" -}}
{{- $mode := .Values.mode -}}
{{- if not (has $mode (list "standalone" "sidecar")) -}}
{{- fail (printf "cqgate: mode must be \"standalone\" or \"sidecar\", not %q" (toString $mode)) -}}
{{- end -}}
{{- $inbound := dig "inbound" dict (.Values.config | default dict) -}}
{{- $auth := dig "auth" "none" $inbound -}}
{{- if not (has $auth (list "none" "api_key" "mtls")) -}}
{{- fail (printf "cqgate: config.inbound.auth must be none, api_key or mtls, not %q" (toString $auth)) -}}
{{- end -}}
{{- $listen := include "cqgate.listen" . -}}
{{- if and (eq $auth "none") (not (include "cqgate.isLoopback" $listen)) (not (dig "allow_unauthenticated" false $inbound)) -}}
{{- $fix := "set config.inbound.auth to api_key or mtls (see values-standalone.yaml), or use mode sidecar (loopback only)" -}}
{{- if eq $mode "sidecar" -}}
{{- $fix = "keep the sidecar on loopback (leave config.listen unset), or set config.inbound.auth to api_key or mtls" -}}
{{- end -}}
{{- fail (printf "cqgate: refusing config.inbound.auth \"none\" in mode %s: cqgate would listen on %s, which is not loopback, so every pod that can reach it could use your organization's Carequality identity. Either %s, or set config.inbound.allow_unauthenticated: true to accept that risk (cqgate itself refuses to start otherwise)." $mode $listen $fix) -}}
{{- end -}}
{{- end }}

{{/*
The configuration file: .Values.config plus listen and vault.
*/}}
{{- define "cqgate.config" -}}
{{- $cfg := deepCopy (.Values.config | default dict) -}}
{{- $_ := set $cfg "listen" (include "cqgate.listen" .) -}}
{{- if .Values.vault.enabled -}}
{{- $vault := dict "auth" (dict "method" "kubernetes" "mount" .Values.vault.authMount "role" .Values.vault.role) -}}
{{- if .Values.vault.address -}}
{{- $_ := set $vault "address" .Values.vault.address -}}
{{- end -}}
{{- if .Values.vault.caSecret -}}
{{- $_ := set $vault "ca_cert" "/etc/cqgate/vault-ca/ca.crt" -}}
{{- end -}}
{{- if .Values.vault.audience -}}
{{- $_ := set $vault.auth "service_account_token_file" "/var/run/secrets/cqgate/vault/token" -}}
{{- end -}}
{{- $vault = mergeOverwrite $vault (dig "vault" dict $cfg) -}}
{{- $_ := set $cfg "vault" $vault -}}
{{- end -}}
{{- toYaml $cfg -}}
{{- end }}

{{/*
The container fields both shapes share: image, security, resources,
environment and mounts.
*/}}
{{- define "cqgate.containerCommon" -}}
image: {{ include "cqgate.image" . | quote }}
imagePullPolicy: {{ .Values.image.pullPolicy }}
args: ["-config", "/etc/cqgate/config.yaml"]
{{- with .Values.env }}
env:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.envFrom }}
envFrom:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml .Values.securityContext | nindent 2 }}
resources:
  {{- toYaml .Values.resources | nindent 2 }}
volumeMounts:
  - name: cqgate-config
    mountPath: /etc/cqgate/config.yaml
    subPath: config.yaml
    readOnly: true
  {{- if and .Values.vault.enabled .Values.vault.caSecret }}
  - name: cqgate-vault-ca
    mountPath: /etc/cqgate/vault-ca
    readOnly: true
  {{- end }}
  {{- if and .Values.vault.enabled .Values.vault.audience }}
  - name: cqgate-vault-token
    mountPath: /var/run/secrets/cqgate/vault
    readOnly: true
  {{- end }}
  {{- if and (eq .Values.mode "standalone") .Values.tls.secretName }}
  - name: cqgate-tls
    mountPath: /etc/cqgate/tls
    readOnly: true
  {{- end }}
  {{- with .Values.extraVolumeMounts }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end }}

{{/*
The pod volumes both shapes need.
*/}}
{{- define "cqgate.volumes" -}}
- name: cqgate-config
  configMap:
    name: {{ include "cqgate.fullname" . }}
{{- if and .Values.vault.enabled .Values.vault.caSecret }}
- name: cqgate-vault-ca
  secret:
    secretName: {{ .Values.vault.caSecret }}
    items:
      - key: ca.crt
        path: ca.crt
{{- end }}
{{- if and .Values.vault.enabled .Values.vault.audience }}
- name: cqgate-vault-token
  projected:
    sources:
      - serviceAccountToken:
          audience: {{ .Values.vault.audience | quote }}
          expirationSeconds: {{ int .Values.vault.tokenExpirationSeconds }}
          path: token
{{- end }}
{{- if and (eq .Values.mode "standalone") .Values.tls.secretName }}
- name: cqgate-tls
  secret:
    secretName: {{ .Values.tls.secretName }}
{{- end }}
{{- with .Values.extraVolumes }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
The sidecar container, a list item to add under an application pod's
containers (include it from a parent chart with
{{ include "cqgate.sidecar.container" . | nindent 8 }}). It listens on
loopback only, so it has no ports and no HTTP probes: the kubelet probes
the pod IP, which cqgate does not listen on.
*/}}
{{- define "cqgate.sidecar.container" -}}
- name: cqgate
  {{- include "cqgate.containerCommon" . | nindent 2 }}
{{- end }}

{{/*
The volumes the sidecar needs, list items for the application pod's
volumes.
*/}}
{{- define "cqgate.sidecar.volumes" -}}
{{ include "cqgate.volumes" . }}
{{- end }}

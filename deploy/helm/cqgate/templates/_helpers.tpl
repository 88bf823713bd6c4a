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
"true" when the admin listener is on: admin.enabled true or null (the
default, in both modes), or config.admin.listen set.
*/}}
{{- define "cqgate.adminEnabled" -}}
{{- $a := .Values.admin | default dict -}}
{{- if dig "admin" "listen" "" (.Values.config | default dict) -}}
true
{{- else if kindIs "invalid" $a.enabled -}}
true
{{- else if $a.enabled -}}
true
{{- end -}}
{{- end }}

{{/*
The admin listen address: config.admin.listen, else 0.0.0.0:<admin.port>.
*/}}
{{- define "cqgate.adminListen" -}}
{{- dig "admin" "listen" "" (.Values.config | default dict) | default (printf "0.0.0.0:%v" .Values.admin.port) -}}
{{- end }}

{{/*
The admin port number, from the admin listen address.
*/}}
{{- define "cqgate.adminPort" -}}
{{- regexFind "[0-9]+$" (include "cqgate.adminListen" .) -}}
{{- end }}

{{/*
The port health and metrics are served on: the admin port when the admin
listener is on, else the API port.
*/}}
{{- define "cqgate.opsPort" -}}
{{- if include "cqgate.adminEnabled" . }}{{ include "cqgate.adminPort" . }}{{ else }}{{ include "cqgate.apiPort" . }}{{ end -}}
{{- end }}

{{/*
The API port: the one cqgate listens on (config.listen's, else port).
*/}}
{{- define "cqgate.apiPort" -}}
{{- regexFind "[0-9]+$" (include "cqgate.listen" .) -}}
{{- end }}

{{/*
Their scheme: the admin listener is plain HTTP; the API port is HTTPS
with config.inbound.tls.
*/}}
{{- define "cqgate.opsScheme" -}}
{{- if include "cqgate.adminEnabled" . }}HTTP{{ else }}{{ include "cqgate.scheme" . }}{{ end -}}
{{- end }}

{{/*
The container's probes (liveness, readiness and, with "startup" true in
the context, startup), aimed at the admin port when it is on. Context:
dict "root" $ "startup" bool.
*/}}
{{- define "cqgate.probes" -}}
{{- $root := .root -}}
{{- $admin := include "cqgate.adminEnabled" $root -}}
{{- $probes := list (list "livenessProbe" $root.Values.livenessProbe) (list "readinessProbe" $root.Values.readinessProbe) -}}
{{- if .startup -}}
{{- $probes = append $probes (list "startupProbe" $root.Values.startupProbe) -}}
{{- end -}}
{{- range $probes }}
{{- $name := index . 0 -}}
{{- with index . 1 }}
{{ $name }}:
{{- $probe := deepCopy . }}
{{- if $probe.httpGet }}
{{- if and $admin (eq (toString $probe.httpGet.port) "http") }}{{ $_ := set $probe.httpGet "port" "admin" }}{{ end }}
{{- $_ := set $probe.httpGet "scheme" (include "cqgate.opsScheme" $root) }}
{{- end }}
{{- toYaml $probe | nindent 2 }}
{{- end }}
{{- end }}
{{- end }}

{{/*
The pod template annotation that rolls the pods when the configuration
changes.
*/}}
{{- define "cqgate.checksumAnnotation" -}}
checksum/cqgate-config: {{ include "cqgate.config" . | sha256sum }}
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
{{- if not (has (toString .Values.sidecar.type) (list "native" "classic")) -}}
{{- fail (printf "cqgate: sidecar.type must be \"native\" or \"classic\", not %q" (toString .Values.sidecar.type)) -}}
{{- end -}}
{{- $listen := include "cqgate.listen" . -}}
{{- if and (eq $auth "none") (not (include "cqgate.isLoopback" $listen)) (not (dig "allow_unauthenticated" false $inbound)) -}}
{{- $fix := "set config.inbound.auth to api_key or mtls (see values-standalone.yaml), or use mode sidecar (loopback only)" -}}
{{- if eq $mode "sidecar" -}}
{{- $fix = "keep the sidecar on loopback (leave config.listen unset), or set config.inbound.auth to api_key or mtls" -}}
{{- end -}}
{{- fail (printf "cqgate: refusing config.inbound.auth \"none\" in mode %s: cqgate would listen on %s, which is not loopback, so every pod that can reach it could use your organization's Carequality identity. Either %s, or set config.inbound.allow_unauthenticated: true to accept that risk (cqgate itself refuses to start otherwise)." $mode $listen $fix) -}}
{{- end -}}
{{- if and (include "cqgate.adminEnabled" .) (eq (include "cqgate.apiPort" .) (include "cqgate.adminPort" .)) -}}
{{- fail (printf "cqgate: the API (%s) and the admin listener (%s) use the same port: set admin.port (or config.admin.listen) to another, or admin.enabled: false" (include "cqgate.listen" .) (include "cqgate.adminListen" .)) -}}
{{- end -}}
{{- $cfg := .Values.config | default dict -}}
{{- range $key := list "directory.api_key" "vault.auth.token" "vault.auth.secret_id" "cluster.redis.password" "cluster.encryption_key" "cluster.previous_encryption_keys" "bulk.link_key" -}}
{{- $parts := splitList "." $key -}}
{{- $v := $cfg -}}
{{- range $parts }}{{ if kindIs "map" $v }}{{ $v = index $v . }}{{ else }}{{ $v = "" }}{{ end }}{{ end -}}
{{- if $v -}}
{{- fail (printf "cqgate: config.%s is a secret and would land in the ConfigMap in plain text: give it through a Secret (extraEnv with a secretKeyRef to CQGATE_%s, or the chart's own secret references)" $key (upper (replace "." "_" $key))) -}}
{{- end -}}
{{- end -}}
{{- if regexMatch "://[^/@]*:[^/@]*@" (dig "cluster" "redis" "url" "" $cfg) -}}
{{- fail "cqgate: config.cluster.redis.url holds a password and would land in the ConfigMap: put the URL in a Secret and set cluster.redis.existingSecret instead" -}}
{{- end -}}
{{- $redis := .Values.cluster.redis -}}
{{- if and (or $redis.url $redis.existingSecret) (not .Values.cluster.encryptionKey.existingSecret) -}}
{{- fail "cqgate: cluster.encryptionKey.existingSecret is required with cluster.redis: a Secret holding 32 random bytes, base64 (cqgate refuses to start with a Redis URL and no encryption key)" -}}
{{- end -}}
{{- if and $redis.url (regexMatch "://[^/@]*:[^/@]*@" $redis.url) -}}
{{- fail "cqgate: cluster.redis.url holds a password: put the URL in a Secret and set cluster.redis.existingSecret instead" -}}
{{- end -}}
{{- include "cqgate.required" . -}}
{{- end }}

{{/*
The values cqgate cannot start without, refused at template time with
what to set (cqgate's REQUIRED keys in config.example.yaml).
*/}}
{{- define "cqgate.required" -}}
{{- $cfg := .Values.config | default dict -}}
{{- $_ := required "cqgate: config.client.client_id is required: the FQDN your Carequality certificate was issued for" (dig "client" "client_id" "" $cfg) -}}
{{- $orgs := dig "organizations" dict $cfg -}}
{{- $allStatic := gt (len $orgs) 0 -}}
{{- range $oid, $o := $orgs -}}
{{- if not (dig "fhir_base" "" ($o | default dict)) }}{{ $allStatic = false }}{{ end -}}
{{- end -}}
{{- if not $allStatic -}}
{{- $_ := required "cqgate: config.directory.url is required (e.g. https://directory.prod.carequality.org/fhir) unless every config.organizations entry has a fhir_base" (dig "directory" "url" "" $cfg) -}}
{{- end -}}
{{- $source := dig "keys" "source" "vault" $cfg -}}
{{- if eq $source "vault" -}}
{{- $_ := required "cqgate: config.keys.vault.path is required with keys.source vault: the KV v2 secret holding certificate and private_key" (dig "keys" "vault" "path" "" $cfg) -}}
{{- else if eq $source "transit" -}}
{{- $_ := required "cqgate: config.keys.transit.key is required with keys.source transit: the transit key's name" (dig "keys" "transit" "key" "" $cfg) -}}
{{- $_ := required "cqgate: config.keys.transit.certificate_path is required with keys.source transit: the KV v2 secret holding the chain" (dig "keys" "transit" "certificate_path" "" $cfg) -}}
{{- end -}}
{{- if and (has $source (list "vault" "transit")) (not .Values.vault.enabled) (not (dig "vault" "address" "" $cfg)) -}}
{{- fail "cqgate: keys come from Vault (config.keys.source) but vault.enabled is false and config.vault.address is empty" -}}
{{- end -}}
{{- end }}

{{/*
The configuration file: .Values.config plus listen and vault.
*/}}
{{- define "cqgate.config" -}}
{{- $cfg := deepCopy (.Values.config | default dict) -}}
{{- $_ := set $cfg "listen" (include "cqgate.listen" .) -}}
{{- if include "cqgate.adminEnabled" . -}}
{{- $admin := dict "listen" (include "cqgate.adminListen" .) "pprof" (.Values.admin.pprof | default false) -}}
{{- $_ := set $cfg "admin" (mergeOverwrite $admin (dig "admin" dict $cfg)) -}}
{{- end -}}
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
{{- $redis := .Values.cluster.redis }}
{{- if or .Values.env $redis.url $redis.existingSecret }}
env:
  {{- if $redis.existingSecret }}
  - name: CQGATE_CLUSTER_REDIS_URL
    valueFrom:
      secretKeyRef: {name: {{ $redis.existingSecret | quote }}, key: {{ $redis.urlKey | default "url" | quote }}}
  {{- else if $redis.url }}
  - name: CQGATE_CLUSTER_REDIS_URL
    value: {{ $redis.url | quote }}
  {{- end }}
  {{- if or $redis.url $redis.existingSecret }}
  - name: CQGATE_CLUSTER_ENCRYPTION_KEY
    valueFrom:
      secretKeyRef: {name: {{ .Values.cluster.encryptionKey.existingSecret | quote }}, key: {{ .Values.cluster.encryptionKey.key | default "encryption-key" | quote }}}
  {{- with .Values.cluster.previousEncryptionKeys }}{{ if .existingSecret }}
  - name: CQGATE_CLUSTER_PREVIOUS_ENCRYPTION_KEYS
    valueFrom:
      secretKeyRef: {name: {{ .existingSecret | quote }}, key: {{ .key | default "previous-encryption-keys" | quote }}}
  {{- end }}{{ end }}
  {{- end }}
  {{- with .Values.env }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
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
initContainers (sidecar.type native: restartPolicy Always makes it a
native sidecar) or containers (classic); include it from a parent chart
with {{ include "cqgate.sidecar.container" . | nindent 8 }} under the key
that "cqgate.sidecar.key" names. Its API listens on loopback only; with
the admin listener (on by default here) the kubelet probes, and
Prometheus scrapes, the admin port on the pod IP.
*/}}
{{- define "cqgate.sidecar.container" -}}
- name: cqgate
  {{- if eq .Values.sidecar.type "native" }}
  restartPolicy: Always
  {{- end }}
  {{- include "cqgate.containerCommon" . | nindent 2 }}
  {{- if include "cqgate.adminEnabled" . }}
  ports:
    - name: admin
      containerPort: {{ include "cqgate.adminPort" . }}
      protocol: TCP
  {{- include "cqgate.probes" (dict "root" . "startup" (eq .Values.sidecar.type "native")) | trim | nindent 2 }}
  {{- end }}
{{- end }}

{{/*
Where the sidecar container goes in the pod spec: initContainers for a
native sidecar, containers for a classic one.
*/}}
{{- define "cqgate.sidecar.key" -}}
{{- if eq .Values.sidecar.type "native" }}initContainers{{ else }}containers{{ end -}}
{{- end }}

{{/*
The application pod template's annotations for the sidecar: the config
checksum (a changed configuration rolls the pods) and, with the admin
listener, Prometheus' scrape annotations.
*/}}
{{- define "cqgate.sidecar.podAnnotations" -}}
{{ include "cqgate.checksumAnnotation" . }}
{{- if and .Values.metrics.podAnnotations (include "cqgate.metricsEnabled" .) (include "cqgate.adminEnabled" .) }}
prometheus.io/scrape: "true"
prometheus.io/port: {{ include "cqgate.adminPort" . | quote }}
prometheus.io/path: {{ include "cqgate.metricsPath" . | quote }}
{{- end }}
{{- end }}

{{/*
The volumes the sidecar needs, list items for the application pod's
volumes.
*/}}
{{- define "cqgate.sidecar.volumes" -}}
{{ include "cqgate.volumes" . }}
{{- end }}

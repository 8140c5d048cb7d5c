{{/*
Names and labels.
*/}}
{{- define "frostmint.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "frostmint.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else if contains (include "frostmint.name" .) .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "frostmint.name" .) | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* frostmint.selectorLabels: (dict "root" $ "component" "coordinator") */}}
{{- define "frostmint.selectorLabels" -}}
app.kubernetes.io/name: {{ include "frostmint.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "frostmint.labels" -}}
{{ include "frostmint.selectorLabels" . }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* Selector labels of one signer: (dict "root" $ "id" 1) */}}
{{- define "frostmint.signerSelectorLabels" -}}
{{ include "frostmint.selectorLabels" (dict "root" .root "component" "signer") }}
frostmint.io/signer-id: {{ .id | quote }}
{{- end -}}

{{- define "frostmint.signerName" -}}
{{- printf "%s-signer-%d" (include "frostmint.fullname" .root) (int .id) -}}
{{- end -}}

{{/* frostmint.image: (dict "root" $ "component" "coordinator") */}}
{{- define "frostmint.image" -}}
{{- printf "%s/%s:%s" .root.Values.image.registry .component (default .root.Chart.AppVersion .root.Values.image.tag) -}}
{{- end -}}

{{/*
SPIFFE identities.
*/}}
{{- define "frostmint.spiffe.coordinator" -}}
{{- printf "spiffe://%s/coordinator" .Values.trustDomain -}}
{{- end -}}
{{- define "frostmint.spiffe.signer" -}}
{{- printf "spiffe://%s/signer/%d" .root.Values.trustDomain (int .id) -}}
{{- end -}}

{{/* The coordinator's in-cluster DNS names. */}}
{{- define "frostmint.coordinator.host" -}}
{{- printf "%s-coordinator.%s.svc" (include "frostmint.fullname" .) .Release.Namespace -}}
{{- end -}}

{{- define "frostmint.issuer" -}}
{{- if .Values.issuer -}}
{{- .Values.issuer -}}
{{- else -}}
{{- printf "%s://%s:%d" (ternary "https" "http" .Values.coordinator.httpTLS) (include "frostmint.coordinator.host" .) (int .Values.coordinator.ports.http) -}}
{{- end -}}
{{- end -}}

{{/* TLS Secret of a component ("coordinator", "signer-1", "client-admin"). */}}
{{- define "frostmint.tlsSecret" -}}
{{- printf "%s-%s-tls" (include "frostmint.fullname" .root) .component -}}
{{- end -}}

{{/*
Fixed paths inside the containers.
*/}}
{{- define "frostmint.paths.tls" -}}/etc/frostmint/tls{{- end -}}
{{- define "frostmint.paths.config" -}}/etc/frostmint/config{{- end -}}
{{- define "frostmint.paths.callers" -}}/etc/frostmint/callers{{- end -}}
{{- define "frostmint.paths.oidc" -}}/etc/frostmint/oidc{{- end -}}
{{- define "frostmint.paths.policy" -}}/etc/frostmint/policy{{- end -}}
{{- define "frostmint.paths.secret" -}}/run/secrets/frostmint{{- end -}}
{{- define "frostmint.paths.data" -}}/var/lib/frostmint{{- end -}}

{{/*
Security contexts: non-root, read-only root filesystem, no capabilities,
no privilege escalation, seccomp RuntimeDefault (Pod Security "restricted").
*/}}
{{- define "frostmint.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.runAsUser }}
runAsGroup: {{ .Values.runAsGroup }}
fsGroup: {{ .Values.runAsGroup }}
fsGroupChangePolicy: OnRootMismatch
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "frostmint.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.runAsUser }}
runAsGroup: {{ .Values.runAsGroup }}
readOnlyRootFilesystem: true
allowPrivilegeEscalation: false
privileged: false
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Probes on an HTTP port: (dict "port" "metrics" "scheme" "HTTP") */}}
{{- define "frostmint.probes" -}}
startupProbe:
  httpGet: {path: /healthz, port: {{ .port }}, scheme: {{ .scheme }}}
  periodSeconds: 2
  failureThreshold: 60
livenessProbe:
  httpGet: {path: /healthz, port: {{ .port }}, scheme: {{ .scheme }}}
  periodSeconds: 10
  timeoutSeconds: 3
  failureThreshold: 3
readinessProbe:
  httpGet: {path: /readyz, port: {{ .port }}, scheme: {{ .scheme }}}
  periodSeconds: 5
  timeoutSeconds: 3
  failureThreshold: 2
{{- end -}}

{{/* Spread over zones and nodes: (dict "root" $ "labels" (dict ...)) */}}
{{- define "frostmint.topologySpread" -}}
topologySpreadConstraints:
  - maxSkew: 1
    topologyKey: topology.kubernetes.io/zone
    whenUnsatisfiable: {{ .root.Values.topologySpread.zone }}
    labelSelector:
      matchLabels:
        {{- toYaml .labels | nindent 8 }}
  - maxSkew: 1
    topologyKey: kubernetes.io/hostname
    whenUnsatisfiable: {{ .root.Values.topologySpread.hostname }}
    labelSelector:
      matchLabels:
        {{- toYaml .labels | nindent 8 }}
{{- end -}}

{{/*
The callers and policy sections, shared by the coordinator and every signer
(they must be identical: signers refuse a different policy hash).
*/}}
{{- define "frostmint.callersConfig" -}}
{{- $c := dict -}}
{{- if .Values.callers.trustBundle.configMap -}}
{{- $_ := set $c "trust_bundle" (printf "%s/%s" (include "frostmint.paths.callers" .) .Values.callers.trustBundle.key) -}}
{{- else -}}
{{- $_ := set $c "trust_bundle" (printf "%s/ca.crt" (include "frostmint.paths.tls" .)) -}}
{{- end -}}
{{- with .Values.callers.oidc }}{{ $_ := set $c "oidc" . }}{{ end -}}
{{- with .Values.callers.maxAge }}{{ $_ := set $c "max_age" . }}{{ end -}}
{{- toJson $c -}}
{{- end -}}

{{- define "frostmint.policyConfig" -}}
{{- $p := dict -}}
{{- if .Values.policy.configMap -}}
{{- $_ := set $p "files" (list (include "frostmint.paths.policy" .)) -}}
{{- end -}}
{{- with .Values.policy.reload }}{{ $_ := set $p "reload" . }}{{ end -}}
{{- toJson $p -}}
{{- end -}}

{{/* Volumes and mounts of the shared callers/policy inputs. */}}
{{- define "frostmint.sharedVolumes" -}}
{{- if .Values.callers.trustBundle.configMap }}
- name: callers
  configMap:
    name: {{ .Values.callers.trustBundle.configMap }}
{{- end }}
{{- if .Values.callers.oidcFilesConfigMap }}
- name: oidc
  configMap:
    name: {{ .Values.callers.oidcFilesConfigMap }}
{{- end }}
{{- if .Values.policy.configMap }}
- name: policy
  configMap:
    name: {{ .Values.policy.configMap }}
{{- end }}
- name: tmp
  emptyDir:
    medium: Memory
    sizeLimit: 16Mi
{{- end -}}

{{- define "frostmint.sharedMounts" -}}
{{- if .Values.callers.trustBundle.configMap }}
- {name: callers, mountPath: {{ include "frostmint.paths.callers" . }}, readOnly: true}
{{- end }}
{{- if .Values.callers.oidcFilesConfigMap }}
- {name: oidc, mountPath: {{ include "frostmint.paths.oidc" . }}, readOnly: true}
{{- end }}
{{- if .Values.policy.configMap }}
- {name: policy, mountPath: {{ include "frostmint.paths.policy" . }}, readOnly: true}
{{- end }}
- {name: tmp, mountPath: /tmp}
{{- end -}}

{{/*
A signer's keystore URI: the user's URI with the secret source appended,
pointing at the mounted pinSecret (never a value).
*/}}
{{- define "frostmint.keystoreURI" -}}
{{- $uri := .signer.keystore -}}
{{- if not .signer.pinSecret -}}
{{- $uri -}}
{{- else -}}
{{- $file := printf "%s/%s" (include "frostmint.paths.secret" .root) .signer.pinSecret.key -}}
{{- $sep := ternary "&" "?" (contains "?" $uri) -}}
{{- if hasPrefix "file:" $uri -}}
{{- printf "%s%spassphrase=file:%s" $uri $sep $file -}}
{{- else -}}
{{- printf "%s%spin-source=file:%s" $uri $sep $file -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
Checks the schema cannot express. Included by every template that depends
on them, so that a bad value set fails at install time.
*/}}
{{- define "frostmint.validate" -}}
{{- $n := len .Values.signers.list -}}
{{- $t := int .Values.threshold -}}
{{- if lt $t 2 -}}
{{- fail (printf "threshold must be at least 2 (got %d)" $t) -}}
{{- end -}}
{{- if gt $t $n -}}
{{- fail (printf "threshold %d is more than the %d in-cluster signers (signers.list)" $t $n) -}}
{{- end -}}
{{- $ids := dict -}}
{{- range .Values.signers.list -}}
{{- if hasKey $ids (toString .id) -}}
{{- fail (printf "signers.list: id %d is listed twice" (int .id)) -}}
{{- end -}}
{{- $_ := set $ids (toString .id) true -}}
{{- if hasPrefix "file:" .keystore -}}
{{- if not $.Values.dev -}}
{{- fail (printf "signers.list (id %d): the file: keystore is for development only (set dev: true, or use pkcs11: or piv:)" (int .id)) -}}
{{- end -}}
{{- if ne .keystore "file:" -}}
{{- fail (printf "signers.list (id %d): the file: keystore URI is just \"file:\"; the passphrase comes from pinSecret" (int .id)) -}}
{{- end -}}
{{- end -}}
{{- if and (not .pinSecret) (not (hasPrefix "piv:" .keystore)) -}}
{{- fail (printf "signers.list (id %d): pinSecret {name, key} is required for %s (the PIN or passphrase comes from a Secret, never a value)" (int .id) (regexFind "^[a-z0-9]+:" .keystore)) -}}
{{- end -}}
{{- end -}}
{{- range .Values.coordinator.guardians -}}
{{- if hasKey $ids (toString .id) -}}
{{- fail (printf "coordinator.guardians: id %d is also an in-cluster signer" (int .id)) -}}
{{- end -}}
{{- $_ := set $ids (toString .id) true -}}
{{- end -}}
{{- if not .Values.dev -}}
{{- if not .Values.coordinator.persistence.keys.enabled -}}
{{- fail "coordinator.persistence.keys.enabled=false (emptyDir) is for dev only" -}}
{{- end -}}
{{- if not .Values.coordinator.persistence.audit.enabled -}}
{{- fail "coordinator.persistence.audit.enabled=false (emptyDir) is for dev only: audit logs must survive restarts" -}}
{{- end -}}
{{- if not .Values.signers.persistence.enabled -}}
{{- fail "signers.persistence.enabled=false (emptyDir) is for dev only: a restarted signer would lose its shares" -}}
{{- end -}}
{{- if not .Values.coordinator.httpTLS -}}
{{- fail "coordinator.httpTLS=false is for dev only: the issuer's JWKS must be served over HTTPS" -}}
{{- end -}}
{{- end -}}
{{- if and (not .Values.coordinator.persistence.keys.enabled) (or (gt (int .Values.coordinator.replicas) 1) .Values.coordinator.autoscaling.enabled) -}}
{{- fail "coordinator: several replicas share keys_dir: enable coordinator.persistence.keys (a ReadWriteMany volume), or run one replica" -}}
{{- end -}}
{{- if and .Values.coordinator.autoscaling.enabled (lt (int .Values.coordinator.autoscaling.maxReplicas) (int .Values.coordinator.autoscaling.minReplicas)) -}}
{{- fail "coordinator.autoscaling: maxReplicas is below minReplicas" -}}
{{- end -}}
{{- if .Values.tls.certManager.enabled -}}
{{- if and (eq .Values.tls.certManager.issuer "ca") (not .Values.tls.certManager.caSecretName) -}}
{{- fail "tls.certManager.issuer=ca needs tls.certManager.caSecretName (a Secret with the CA's tls.crt and tls.key)" -}}
{{- end -}}
{{- if and (eq .Values.tls.certManager.issuer "existing") (not .Values.tls.certManager.issuerRef.name) -}}
{{- fail "tls.certManager.issuer=existing needs tls.certManager.issuerRef.name" -}}
{{- end -}}
{{- else if .Values.tls.clientCertificates -}}
{{- fail "tls.clientCertificates needs tls.certManager.enabled" -}}
{{- end -}}
{{- if .Values.gateway.enabled -}}
{{- if and (gt (int .Values.gateway.replicas) 1) (not .Values.gateway.redis.addr) -}}
{{- fail "gateway: with more than one replica the replay cache must be shared: set gateway.redis.addr (an existing Redis)" -}}
{{- end -}}
{{- if not .Values.coordinator.httpTLS -}}
{{- fail "gateway: fetching the JWKS in-cluster needs coordinator.httpTLS (keys are fetched over https only)" -}}
{{- end -}}
{{- if not .Values.gateway.routes -}}
{{- fail "gateway.routes: at least one route is required" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
The coordinator's "attestation" section from .Values.attestation.verify
(camelCase values to the daemon's snake_case keys; the roots and the KDS
cache at fixed paths, mounted by the coordinator Deployment).
*/}}
{{- define "frostmint.paths.attestRoots" -}}/etc/frostmint/attest{{- end -}}
{{- define "frostmint.paths.kdsCache" -}}/var/cache/frostmint/kds{{- end -}}
{{- define "frostmint.attestationConfig" -}}
{{- $v := .Values.attestation.verify -}}
{{- $ver := dict -}}
{{- with $v.measurements }}{{ $_ := set $ver "measurements" . }}{{ end -}}
{{- if $v.allowAnyMeasurement }}{{ $_ := set $ver "allow_any_measurement" true }}{{ end -}}
{{- with $v.minTCB }}{{ $_ := set $ver "min_tcb" . }}{{ end -}}
{{- with $v.minGuestSVN }}{{ $_ := set $ver "min_guest_svn" (int .) }}{{ end -}}
{{- if $v.allowDebug }}{{ $_ := set $ver "allow_debug" true }}{{ end -}}
{{- if $v.allowMigrationAgent }}{{ $_ := set $ver "allow_migration_agent" true }}{{ end -}}
{{- if $v.requireNoSMT }}{{ $_ := set $ver "require_no_smt" true }}{{ end -}}
{{- with $v.minABI }}{{ $_ := set $ver "min_abi" . }}{{ end -}}
{{- if $v.roots -}}
{{- if not $v.rootsConfigMap }}{{ fail "attestation.verify.roots needs attestation.verify.rootsConfigMap (the ConfigMap holding the PEM files)" }}{{ end -}}
{{- $roots := list -}}
{{- range $v.roots }}{{ $roots = append $roots (dict "product_line" .productLine "file" (printf "%s/%s" (include "frostmint.paths.attestRoots" $) .key)) }}{{ end -}}
{{- $_ := set $ver "roots" $roots -}}
{{- end -}}
{{- if $v.kds }}{{ $_ := set $ver "kds" (dict "cache_dir" (include "frostmint.paths.kdsCache" .)) }}{{ end -}}
{{- if .forSigners -}}
{{- $_ := unset $ver "kds" -}}
{{- toJson (dict "provider" .Values.attestation.provider "verifier" $ver "peers_required" true) -}}
{{- else -}}
{{- $att := dict "required" (ternary $v.required true (hasKey $v "required")) "verifier" $ver -}}
{{- with $v.recheck }}{{ $_ := set $att "recheck" . }}{{ end -}}
{{- toJson $att -}}
{{- end -}}
{{- end -}}

{{/*
The pod template of one signer: (dict "root" $ "signer" .). Used by the
StatefulSet and the DaemonSet modes.
*/}}
{{- define "frostmint.signerPodTemplate" -}}
{{- $root := .root -}}
{{- $s := .signer -}}
{{- $name := include "frostmint.signerName" (dict "root" $root "id" $s.id) -}}
{{- $all := include "frostmint.selectorLabels" (dict "root" $root "component" "signer") | fromYaml -}}
{{- $data := include "frostmint.paths.data" $root -}}
metadata:
  labels:
    {{- include "frostmint.labels" (dict "root" $root "component" "signer") | nindent 4 }}
    frostmint.io/signer-id: {{ $s.id | quote }}
    {{- with $root.Values.podLabels }}{{ toYaml . | nindent 4 }}{{ end }}
  annotations:
    checksum/config: {{ include (print $root.Template.BasePath "/signer-configmap.yaml") $root | sha256sum }}
    {{- with $root.Values.podAnnotations }}{{ toYaml . | nindent 4 }}{{ end }}
spec:
  serviceAccountName: {{ include "frostmint.fullname" $root }}-signer
  automountServiceAccountToken: false
  enableServiceLinks: false
  securityContext:
    {{- include "frostmint.podSecurityContext" $root | nindent 4 }}
  {{- with $root.Values.image.pullSecrets }}
  imagePullSecrets:
    {{- range . }}
    - name: {{ . }}
    {{- end }}
  {{- end }}
  {{- include "frostmint.topologySpread" (dict "root" $root "labels" $all) | nindent 2 }}
  affinity:
    podAntiAffinity:
      preferredDuringSchedulingIgnoredDuringExecution:
        - weight: 100
          podAffinityTerm:
            topologyKey: kubernetes.io/hostname
            labelSelector:
              matchLabels:
                {{- toYaml $all | nindent 16 }}
  {{- $ns := merge (deepCopy (default (dict) $s.nodeSelector)) (deepCopy $root.Values.signers.nodeSelector) -}}
  {{- if $s.zone }}{{ $_ := set $ns "topology.kubernetes.io/zone" $s.zone }}{{ end -}}
  {{- if eq $root.Values.signers.mode "daemonset" }}{{ $_ := set $ns "frostmint.io/signer" (toString $s.id) }}{{ end -}}
  {{- with $ns }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with (concat (default (list) $root.Values.signers.tolerations) (default (list) $s.tolerations)) }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  terminationGracePeriodSeconds: 30
  containers:
    - name: signer
      image: {{ default (include "frostmint.image" (dict "root" $root "component" "signer")) $s.image }}
      imagePullPolicy: {{ $root.Values.image.pullPolicy }}
      args: ["--config", "{{ include "frostmint.paths.config" $root }}/signer.json"]
      ports:
        - {name: grpc, containerPort: {{ $root.Values.signers.ports.grpc }}, protocol: TCP}
        - {name: metrics, containerPort: {{ $root.Values.signers.ports.metrics }}, protocol: TCP}
      {{- include "frostmint.probes" (dict "port" "metrics" "scheme" "HTTP") | nindent 6 }}
      resources:
        {{- toYaml (default $root.Values.signers.resources $s.resources) | nindent 8 }}
      securityContext:
        {{- include "frostmint.containerSecurityContext" $root | nindent 8 }}
      volumeMounts:
        - {name: config, mountPath: {{ include "frostmint.paths.config" $root }}, readOnly: true}
        - {name: tls, mountPath: {{ include "frostmint.paths.tls" $root }}, readOnly: true}
        {{- if $s.pinSecret }}
        - {name: pin, mountPath: {{ include "frostmint.paths.secret" $root }}, readOnly: true}
        {{- end }}
        - {name: data, mountPath: {{ $data }}}
        {{- with $root.Values.attestation.verify }}{{ if and .peers .rootsConfigMap }}
        - {name: attest-roots, mountPath: {{ include "frostmint.paths.attestRoots" $root }}, readOnly: true}
        {{- end }}{{ end }}
        {{- include "frostmint.sharedMounts" $root | nindent 8 }}
        {{- with $s.extraVolumeMounts }}{{ toYaml . | nindent 8 }}{{ end }}
  volumes:
    - name: config
      configMap:
        name: {{ $name }}
    - name: tls
      secret:
        secretName: {{ include "frostmint.tlsSecret" (dict "root" $root "component" (printf "signer-%d" (int $s.id))) }}
        defaultMode: 0440
        items:
          - {key: tls.crt, path: tls.crt}
          - {key: tls.key, path: tls.key}
          - {key: ca.crt, path: ca.crt}
    {{- with $s.pinSecret }}
    - name: pin
      secret:
        secretName: {{ .name }}
        defaultMode: 0440
        items:
          - {key: {{ .key }}, path: {{ .key }}}
    {{- end }}
    {{- if eq $root.Values.signers.mode "daemonset" }}
    - name: data
      {{- if $root.Values.signers.persistence.enabled }}
      persistentVolumeClaim:
        claimName: {{ $name }}-data
      {{- else }}
      emptyDir: {}
      {{- end }}
    {{- else if not $root.Values.signers.persistence.enabled }}
    - name: data
      emptyDir: {}
    {{- end }}
    {{- with $root.Values.attestation.verify }}{{ if and .peers .rootsConfigMap }}
    - name: attest-roots
      configMap:
        name: {{ .rootsConfigMap }}
    {{- end }}{{ end }}
    {{- include "frostmint.sharedVolumes" $root | nindent 4 }}
    {{- with $s.extraVolumes }}{{ toYaml . | nindent 4 }}{{ end }}
{{- end -}}

{{- define "tollgate.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}{{ .Release.Name | trunc 50 | trimSuffix "-" }}{{- else -}}{{ printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" }}{{- end -}}
{{- end -}}

{{- define "tollgate.labels" -}}
app.kubernetes.io/name: tollgate
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "tollgate.selector" -}}
app.kubernetes.io/name: tollgate
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "tollgate.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}
{{- end -}}

{{- define "tollgate.webhookService" -}}{{ include "tollgate.fullname" . }}-webhook{{- end -}}
{{- define "tollgate.tlsSecret" -}}
{{- if eq .Values.tls.mode "secret" -}}{{ .Values.tls.secretName }}{{- else -}}{{ include "tollgate.fullname" . }}-webhook-tls{{- end -}}
{{- end -}}
{{- define "tollgate.signingPubSecret" -}}{{ include "tollgate.fullname" . }}-signing-pub{{- end -}}
{{- define "tollgate.stampKeySecret" -}}{{ include "tollgate.fullname" . }}-stamp-key{{- end -}}
{{- define "tollgate.signerSA" -}}{{ include "tollgate.fullname" . }}-signer{{- end -}}
{{- define "tollgate.webhookSA" -}}{{ include "tollgate.fullname" . }}-webhook{{- end -}}
{{- define "tollgate.auditSA" -}}{{ include "tollgate.fullname" . }}-audit{{- end -}}

{{/* The restricted Pod Security profile for Tollgate's own containers. */}}
{{- define "tollgate.securityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Namespaces no Tollgate webhook ever reviews: its own and kube-system. */}}
{{- define "tollgate.excludedNamespaces" -}}
{{- $ns := list .Release.Namespace "kube-system" -}}
{{- concat $ns .Values.runGuard.excludeNamespaces | uniq | toJson -}}
{{- end -}}

{{/* Mode helm: the CA and serving certificate, generated once and reused
     from the existing Secret on upgrades (so the CA bundle stays valid). */}}
{{- define "tollgate.helmTLS" -}}
{{- $secret := lookup "v1" "Secret" .Release.Namespace (include "tollgate.tlsSecret" .) -}}
{{- if and $secret (index $secret.data "ca.crt") -}}
ca: {{ index $secret.data "ca.crt" }}
crt: {{ index $secret.data "tls.crt" }}
key: {{ index $secret.data "tls.key" }}
{{- else -}}
{{- $svc := include "tollgate.webhookService" . -}}
{{- $ca := genCA "tollgate-webhook-ca" (int .Values.tls.validityDays) -}}
{{- $cert := genSignedCert $svc nil (list $svc (printf "%s.%s" $svc .Release.Namespace) (printf "%s.%s.svc" $svc .Release.Namespace) (printf "%s.%s.svc.cluster.local" $svc .Release.Namespace)) (int .Values.tls.validityDays) $ca -}}
ca: {{ $ca.Cert | b64enc }}
crt: {{ $cert.Cert | b64enc }}
key: {{ $cert.Key | b64enc }}
{{- end -}}
{{- end -}}

{{- define "tollgate.workloadRules" -}}
- operations: [CREATE, UPDATE]
  apiGroups: [""]
  apiVersions: [v1]
  resources: [pods]
  scope: Namespaced
- operations: [UPDATE]
  apiGroups: [""]
  apiVersions: [v1]
  resources: [pods/ephemeralcontainers]
  scope: Namespaced
- operations: [CREATE, UPDATE]
  apiGroups: [apps]
  apiVersions: [v1]
  resources: [deployments, replicasets, statefulsets, daemonsets]
  scope: Namespaced
- operations: [CREATE, UPDATE]
  apiGroups: [batch]
  apiVersions: [v1]
  resources: [jobs, cronjobs]
  scope: Namespaced
{{- end -}}

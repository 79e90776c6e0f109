{{/* Names, labels and the pod pieces that the Deployment and the cleanup Job share. */}}

{{- define "pullsecret-syncer.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The release name, with the chart name appended unless it already contains it. */}}
{{- define "pullsecret-syncer.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* This installation's name (the config's `instance`): what the config says, else
"<release namespace>.<release name>" — a DNS subdomain, so a valid name and annotation value, and
unique in the cluster (one release per namespace). The daemon owns only what it wrote under this
name; the cleanup hook uninstalls this name only. */}}
{{- define "pullsecret-syncer.instance" -}}
{{- $cfg := dict -}}
{{- if kindIs "string" .Values.config -}}
{{- $cfg = fromYaml .Values.config -}}
{{- else if kindIs "map" .Values.config -}}
{{- $cfg = .Values.config -}}
{{- end -}}
{{- if and (kindIs "map" $cfg) (hasKey $cfg "instance") -}}
{{- get $cfg "instance" -}}
{{- else -}}
{{- printf "%s.%s" .Release.Namespace .Release.Name -}}
{{- end -}}
{{- end -}}

{{- define "pullsecret-syncer.selectorLabels" -}}
app.kubernetes.io/name: {{ include "pullsecret-syncer.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "pullsecret-syncer.labels" -}}
{{ include "pullsecret-syncer.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end -}}

{{- define "pullsecret-syncer.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}
{{- end -}}

{{/* --leader-elect: always. Without it a rolling update (the new pod starts before the old one
stops) runs two writers; leaderElection.enabled=false is refused rather than honoured. */}}
{{- define "pullsecret-syncer.leaderElect" -}}
{{- if and (kindIs "bool" .Values.leaderElection.enabled) (not .Values.leaderElection.enabled) -}}
{{- fail "leaderElection.enabled=false is not supported: without leader election a rollout runs the old and the new pod side by side, two writers (see docs/operations.md, Leader election and rollouts)" -}}
{{- end -}}
true
{{- end -}}

{{/* The pod security context of deploy/kubernetes/base/deployment.yaml, exactly. */}}
{{- define "pullsecret-syncer.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* The container security context of deploy/kubernetes/base/deployment.yaml, exactly. */}}
{{- define "pullsecret-syncer.containerSecurityContext" -}}
runAsNonRoot: true
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
privileged: false
capabilities:
  drop: [ALL]
{{- end -}}

{{/* Scheduling of the pods: the Deployment's and the cleanup Job's. */}}
{{- define "pullsecret-syncer.scheduling" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* The daemon's pods (the cleanup Job's pod has component: cleanup, so no Service selects it). */}}
{{- define "pullsecret-syncer.controllerSelectorLabels" -}}
{{ include "pullsecret-syncer.selectorLabels" . }}
app.kubernetes.io/component: controller
{{- end -}}

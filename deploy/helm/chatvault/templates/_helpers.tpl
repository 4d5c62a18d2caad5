{{/* The release's name prefix of every object. */}}
{{- define "chatvault.fullname" -}}
{{- if contains "chatvault" .Release.Name -}}{{ .Release.Name | trunc 40 | trimSuffix "-" }}{{- else -}}{{ printf "%s-chatvault" .Release.Name | trunc 40 | trimSuffix "-" }}{{- end -}}
{{- end -}}

{{/* Labels of a component: (dict "root" $ "component" "storage"). */}}
{{- define "chatvault.labels" -}}
app.kubernetes.io/name: chatvault
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version }}
{{- end -}}

{{- define "chatvault.selector" -}}
app.kubernetes.io/name: chatvault
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* The gRPC URL of a service: (dict "root" $ "service" "users"). */}}
{{- define "chatvault.grpcUrl" -}}
{{- $service := index .root.Values.services .service -}}
http://{{ include "chatvault.fullname" .root }}-{{ .service }}:{{ $service.grpcPort }}
{{- end -}}

{{/* The image of a binary: (dict "root" $ "binary" "chatvault-storage"). */}}
{{- define "chatvault.image" -}}
{{ .root.Values.image.repository }}/{{ .binary }}:{{ .root.Values.image.tag }}
{{- end -}}

{{/* What every service gets: Kafka, the signing secret, the shared settings. */}}
{{- define "chatvault.commonEnv" -}}
- name: CHATVAULT_KAFKA_BROKERS
  value: {{ .Values.kafka.brokers | quote }}
- name: CHATVAULT_TOPIC_PREFIX
  value: {{ .Values.kafka.topicPrefix | quote }}
- name: CHATVAULT_TOPIC_PARTITIONS
  value: {{ .Values.kafka.topicPartitions | quote }}
- name: CHATVAULT_TOPIC_REPLICATION
  value: {{ .Values.kafka.topicReplication | quote }}
- name: CHATVAULT_JWT_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ .Values.secrets.existingSecret }}
      key: jwt-secret
{{- range $key, $value := .Values.env }}
- name: {{ $key }}
  value: {{ $value | quote }}
{{- end }}
{{- end -}}

{{/* A database URL from the database-URL secret: (dict "root" $ "variable" "…" "database" "bot"). */}}
{{- define "chatvault.databaseEnv" -}}
- name: {{ .variable }}
  valueFrom:
    secretKeyRef:
      name: {{ .root.Values.secrets.databaseUrlsSecret }}
      key: {{ .database }}
{{- end -}}

{{/* Probes on a service's HTTP port: ready while /healthz answers 200 (its projections apply), alive while the port answers. */}}
{{- define "chatvault.probes" -}}
readinessProbe:
  httpGet:
    path: /healthz
    port: http
  periodSeconds: 10
  failureThreshold: 3
livenessProbe:
  tcpSocket:
    port: http
  initialDelaySeconds: 10
  periodSeconds: 20
  failureThreshold: 6
startupProbe:
  tcpSocket:
    port: http
  periodSeconds: 5
  failureThreshold: 60
{{- end -}}

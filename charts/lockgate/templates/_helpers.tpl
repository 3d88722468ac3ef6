{{/* Names and labels shared by every template. */}}

{{- define "lockgate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "lockgate.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains (include "lockgate.name" .) .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "lockgate.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "lockgate.operatorName" -}}
{{- printf "%s-operator" (include "lockgate.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "lockgate.proxyName" -}}
{{- printf "%s-proxy" (include "lockgate.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "lockgate.proxyAdminName" -}}
{{- printf "%s-proxy-admin" (include "lockgate.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "lockgate.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "lockgate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: lockgate
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Selector labels of one component; call with (dict "ctx" $ "component" "proxy"). */}}
{{- define "lockgate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "lockgate.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "lockgate.componentLabels" -}}
{{ include "lockgate.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "lockgate.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "lockgate.operatorServiceAccount" -}}
{{- if .Values.operator.serviceAccount.create -}}
{{- default (include "lockgate.operatorName" .) .Values.operator.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.operator.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "lockgate.proxyServiceAccount" -}}
{{- if .Values.proxy.serviceAccount.create -}}
{{- default (include "lockgate.proxyName" .) .Values.proxy.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.proxy.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Namespaces the operator reconciles, as a JSON list (the release namespace when none is given). */}}
{{- define "lockgate.watchNamespaces" -}}
{{- $ns := .Values.operator.watchNamespaces | default (list .Release.Namespace) -}}
{{- $ns | uniq | toJson -}}
{{- end -}}

{{/* Names of the parts of the config ConfigMap, as a JSON list: the split parts (NAME-1 .. NAME-maxSplitParts)
and the key shards of a configuration with many ApiKeys (NAME-keys-00 .. NAME-keys-31, the operator's fixed count). */}}
{{- define "lockgate.configMapPartNames" -}}
{{- $names := list -}}
{{- range $i := until (int .Values.config.maxSplitParts) -}}
{{- $names = append $names (printf "%s-%d" $.Values.config.configMapName (add1 $i)) -}}
{{- end -}}
{{- range $i := until 32 -}}
{{- $names = append $names (printf "%s-keys-%02d" $.Values.config.configMapName $i) -}}
{{- end -}}
{{- $names | toJson -}}
{{- end -}}

{{/* ConfigMap names the proxy may read: the config and its split parts. */}}
{{- define "lockgate.proxyConfigMapNames" -}}
{{- $parts := include "lockgate.configMapPartNames" . | fromJsonArray -}}
{{- concat (list .Values.config.configMapName) $parts .Values.proxy.rbac.extraConfigMapNames | uniq | toJson -}}
{{- end -}}

{{/* How long a stopping proxy lets requests finish: the grace period less the preStop delay,
and DRAIN_MARGIN seconds to end what is left and exit before the kubelet kills the process. */}}
{{- define "lockgate.proxyDrainSeconds" -}}
{{- $left := sub (sub (int .Values.proxy.terminationGracePeriodSeconds) (int .Values.proxy.preStopSleepSeconds)) 2 -}}
{{- max 1 $left -}}
{{- end -}}

{{/* Replicas the quota store divides per-replica limits by. */}}
{{- define "lockgate.proxyReplicasHint" -}}
{{- if .Values.proxy.autoscaling.enabled -}}
{{- .Values.proxy.autoscaling.minReplicas -}}
{{- else -}}
{{- .Values.proxy.replicas -}}
{{- end -}}
{{- end -}}

{{- define "lockgate.redisName" -}}
{{- printf "%s-redis" (include "lockgate.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* "true" when the proxies count quotas in the chart's own Redis. */}}
{{- define "lockgate.bundledRedis" -}}
{{- $q := .Values.proxy.quota -}}
{{- if and (eq $q.store "redis") (not $q.redis.url) (not $q.redis.existingSecret.name) -}}true{{- end -}}
{{- end -}}

{{/* The Secret holding the bundled Redis' password: the user's, or one the operator generates. */}}
{{- define "lockgate.redisPasswordSecretName" -}}
{{- default (include "lockgate.redisName" .) .Values.redis.passwordSecret.name -}}
{{- end -}}

{{/* "true" when the proxies keep the month's usage on a volume of their own (a StatefulSet). */}}
{{- define "lockgate.proxyStateful" -}}
{{- $q := .Values.proxy.quota -}}
{{- if and (eq $q.store "memory") $q.memory.persistence.enabled -}}true{{- end -}}
{{- end -}}

{{/* The Secret holding the MCP session signing key: the user's, or the chart's own. */}}
{{- define "lockgate.mcpSessionSecretName" -}}
{{- default (printf "%s-mcp-session" (include "lockgate.fullname" .)) .Values.proxy.mcp.sessionKeySecret.name -}}
{{- end -}}

{{/* "true" when the proxies serve the Files and Batch API (it keeps job state in the quota store's Redis). */}}
{{- define "lockgate.batchEnabled" -}}
{{- if .Values.proxy.batch.enabled -}}
{{- if ne .Values.proxy.quota.store "redis" -}}
{{- fail "proxy.batch.enabled needs proxy.quota.store: redis (the batch jobs live in Redis)" -}}
{{- end -}}
true
{{- end -}}
{{- end -}}

{{/* The ReadWriteMany claim holding batch files: the user's, or the chart's own. */}}
{{- define "lockgate.batchFilesClaim" -}}
{{- .Values.proxy.batch.files.existingClaim | default (printf "%s-batch-files" (include "lockgate.fullname" .) | trunc 63 | trimSuffix "-") -}}
{{- end -}}

{{/*
RBAC rules of the operator. "watched" rules apply where custom resources live;
"publish" rules apply in the release namespace, where the operator writes the
proxy's ConfigMaps and credentials Secret and reads the proxy's Service.
*/}}

{{- define "lockgate.operatorWatchedRules" -}}
- apiGroups: ["lockgate.io"]
  resources: ["modelproviders", "apikeys", "routes", "mcpservers", "budgets"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["lockgate.io"]
  resources: ["modelproviders/status", "apikeys/status", "routes/status", "mcpservers/status", "budgets/status"]
  verbs: ["get", "patch"]
{{ include "lockgate.operatorCoreRules" . }}
{{- if .Values.operator.peering.enabled }}
- apiGroups: ["kopf.dev"]
  resources: [{{ if .Values.operator.allNamespaces }}"clusterkopfpeerings"{{ else }}"kopfpeerings"{{ end }}]
  verbs: ["get", "list", "watch", "patch"]
{{- end }}
{{- with .Values.operator.rbac.extraRules }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/*
Where resources live: key Secrets are created (create takes no resourceNames:
the name is not known before the object exists) and patched, provider and MCP
credentials read. Secret names are chosen by users in their specs, so no rule
can name them; list/watch cannot be narrowed by label, so the operator's own
label selector and metadata-only watch are what keep it from holding other
Secrets (docs/operator.md). No update, no delete.
*/}}
{{- define "lockgate.operatorCoreRules" -}}
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "list", "watch", "create", "patch"]
{{ include "lockgate.operatorBackendRules" . }}
{{- end -}}

{{/* Backends (Services and their EndpointSlices) and Events. */}}
{{- define "lockgate.operatorBackendRules" -}}
- apiGroups: [""]
  resources: ["services"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["discovery.k8s.io"]
  resources: ["endpointslices"]
  verbs: ["get", "list", "watch"]
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create"]
{{- end -}}

{{/*
The release namespace: the configuration ConfigMaps and the credentials
Secret, read and replaced by name. create cannot be narrowed (see above); list
of ConfigMaps finds parts left over by a larger configuration (by label).
*/}}
{{- define "lockgate.operatorPublishRules" -}}
{{- $parts := include "lockgate.configMapPartNames" . | fromJsonArray }}
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["list", "create"]
- apiGroups: [""]
  resources: ["configmaps"]
  resourceNames: {{ prepend $parts .Values.config.configMapName | toJson }}
  verbs: ["get", "update"]
# Split parts left over when the configuration shrinks; nothing else is deleted.
- apiGroups: [""]
  resources: ["configmaps"]
  resourceNames: {{ $parts | toJson }}
  verbs: ["delete"]
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["create"]
- apiGroups: [""]
  resources: ["secrets"]
  resourceNames: [{{ .Values.config.credentialsSecretName | quote }}]
  verbs: ["get", "update"]
{{- $generated := list }}
{{- if not .Values.proxy.mcp.sessionKeySecret.name }}
{{- $generated = append $generated (include "lockgate.mcpSessionSecretName" .) }}
{{- end }}
{{- if and (include "lockgate.bundledRedis" .) (not .Values.redis.passwordSecret.name) }}
{{- $generated = append $generated (include "lockgate.redisPasswordSecretName" .) }}
{{- end }}
{{- if $generated }}
# The generated Secrets (MCP session key, Redis password): read, and filled when a key is missing.
- apiGroups: [""]
  resources: ["secrets"]
  resourceNames: {{ $generated | toJson }}
  verbs: ["get", "patch"]
{{- end }}
{{- end -}}

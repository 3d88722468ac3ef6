{{/*
RBAC rules of the operator. "watched" rules apply where custom resources live;
"publish" rules apply in the release namespace, where the operator writes the
proxy's ConfigMaps and credentials Secret and reads the proxy's Service.
*/}}

{{- define "lockgate.operatorWatchedRules" -}}
- apiGroups: ["lockgate.io"]
  resources: ["modelproviders", "apikeys", "routes", "mcpservers"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["lockgate.io"]
  resources: ["modelproviders/status", "apikeys/status", "routes/status", "mcpservers/status"]
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

{{/* Secrets (provider credentials read, consumer keys written), backends, Events. */}}
{{- define "lockgate.operatorCoreRules" -}}
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "list", "watch", "create", "update", "patch"]
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

{{- define "lockgate.operatorPublishRules" -}}
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["get", "list", "watch", "create", "update", "patch"]
# Split parts left over when the configuration shrinks; nothing else is deleted.
- apiGroups: [""]
  resources: ["configmaps"]
  resourceNames: {{ include "lockgate.configMapPartNames" . }}
  verbs: ["delete"]
{{- end -}}

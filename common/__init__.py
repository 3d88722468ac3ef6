"""Pieces both the operator and the proxy use: the Kubernetes API client, the
HTTP client factory and its name resolver. Depends on `lockgate.api` only."""

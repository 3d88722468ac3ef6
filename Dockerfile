# syntax=docker/dockerfile:1
# Lockgate image: one entry point, `lockgate operator` or `lockgate proxy`.
ARG PYTHON_IMAGE=python:3.11-slim

# Build stage: installs the project and its dependencies into a virtualenv.
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/lockgate
WORKDIR /src
# README.m[d]: copied when present (pyproject names it), no error when absent.
COPY pyproject.toml README.m[d] ./
COPY api/ api/
COPY common/ common/
COPY operator/ operator/
COPY proxy/ proxy/
COPY cli/ cli/
RUN /opt/lockgate/bin/pip install --upgrade pip \
 && /opt/lockgate/bin/pip install . \
 && /opt/lockgate/bin/lockgate --help >/dev/null

# Runtime stage: the same base (the venv's python path must match), no build tools, no root.
FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="lockgate" \
      org.opencontainers.image.description="Kubernetes-native AI gateway: operator and proxy" \
      org.opencontainers.image.licenses="Apache-2.0"
# The chart's runAsUser/runAsGroup default to this uid/gid.
RUN groupadd --system --gid 10001 lockgate \
 && useradd --system --uid 10001 --gid 10001 --no-create-home \
      --home-dir /nonexistent --shell /usr/sbin/nologin lockgate
COPY --from=build /opt/lockgate /opt/lockgate
# Bytecode cannot be written to a read-only root filesystem; don't try.
ENV PATH=/opt/lockgate/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 10001:10001
# proxy traffic, proxy admin (/healthz /readyz /metrics), operator liveness
EXPOSE 8080 9090 8081
ENTRYPOINT ["lockgate"]
CMD ["--help"]

# The operator image for the Deployment in manifests/operator/ and charts/px-security-operator. Not built by
# CI (no container engine there; tests run the same args locally, tests/support/installed.py):
#   docker build -t <registry>/px-security-operator:0.1.0 .
#   then: image in manifests/operator/deployment.yaml, or helm --set image.repository=…,image.tag=…
FROM python:3.11-slim
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator/ operator/
RUN pip install --no-cache-dir . && rm -rf /src
# The root filesystem is read-only in the Deployment: no bytecode writes, logs straight to stdout.
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
USER 65532:65532
# 8080: kopf's /healthz (liveness and readiness probes); 8081: Prometheus /metrics.
EXPOSE 8080 8081
ENTRYPOINT ["pxsec"]
CMD ["operator", "--liveness=http://0.0.0.0:8080/healthz"]

# The operator image for manifests/operator/deployment.yaml. Not built by CI (no container engine there):
#   docker build -t <registry>/px-security-operator:0.1.0 . && set the image in manifests/operator/.
FROM python:3.11-slim
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator/ operator/
RUN pip install --no-cache-dir . && rm -rf /src
USER 65532:65532
ENTRYPOINT ["pxsec"]
CMD ["operator", "--liveness=http://0.0.0.0:8080/healthz"]

# The code location's image: the importer with Dagster, served as a gRPC code server on port 3030.
# Dagster's Helm chart runs it as a user deployment (deploy/helm/values.yaml: codeServerArgs) and launches
# every run in a pod of this same image (includeConfigInLaunchedRuns). The sandboxes, tests and benches
# stay out of it. Configuration comes from the environment at run time (deploy/README.md).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    DAGSTER_HOME=/opt/dagster/dagster_home

WORKDIR /opt/dagster/app
COPY pyproject.toml README.md workspace.yaml ./
COPY cliniko_assets ./cliniko_assets
COPY splose_resources ./splose_resources
RUN pip install '.[deploy]' \
    && useradd --uid 10001 --create-home dagster \
    && mkdir -p "$DAGSTER_HOME" \
    && chown dagster "$DAGSTER_HOME" \
    && chmod 0700 "$DAGSTER_HOME"

USER 10001
EXPOSE 3030
CMD ["dagster", "code-server", "start", "-h", "0.0.0.0", "-p", "3030", "-m", "cliniko_assets.definitions", "-a", "defs"]

# The Kera Python services (ingestor, simulator, dashboards builder), docs/deployment.md.
FROM python:3.11.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY devices devices
COPY ingest ingest
COPY firmware_sim firmware_sim
COPY dashboards dashboards
COPY devstack devstack
COPY pilots pilots
# With the pilots extra: the evaluator's image also judges pilots (OpenDSM, docs/pilots.md).
RUN pip wheel --no-cache-dir --wheel-dir /wheels ".[pilots]"

FROM python:3.11.11-slim-bookworm
RUN useradd --system --uid 10001 --home-dir /var/lib/kera --create-home kera \
    && install -d -o kera -g kera -m 0700 /var/lib/kera/spool \
    && install -d -o kera -g kera /provisioning
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER kera
WORKDIR /var/lib/kera
# The spool folder is a volume per ingestor (compose.yaml); created here so a new volume is kera's.
ENV PYTHONUNBUFFERED=1 KERA_SPOOL_DIR=/var/lib/kera/spool
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9108/healthz', timeout=4)"
CMD ["kera-ingest", "run"]

# syntax=docker/dockerfile:1
# jobs-graphql-gateway: `python -m gateway serve` as a non-root user, configured by GATEWAY_*.
# No Docker engine runs where this project is developed: the install steps below are the ones
# CI runs (`python3 dev.py test` installs requirements.lock the same way), and
# tests/test_dockerfile.py checks the invariants that can be checked without building.

FROM python:3.11.7-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY requirements.lock ./
RUN pip install --no-cache-dir -r requirements.lock
COPY pyproject.toml README.md ./
COPY gateway ./gateway
# The package carries GraphiQL's assets (gateway/graphiql_assets), so the image serves GraphiQL
# with no network and no Node.
RUN pip install --no-cache-dir --no-deps . && python -m gateway export-schema > /dev/null

FROM python:3.11.7-slim-bookworm AS runtime
RUN groupadd --system --gid 10001 gateway \
    && useradd --system --uid 10001 --gid gateway --no-create-home --shell /usr/sbin/nologin gateway
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    GATEWAY_HOST=0.0.0.0 \
    GATEWAY_PORT=8000
# GATEWAY_UPSTREAM_URL has no default on purpose: `serve` refuses to start without it.
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=5s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('GATEWAY_PORT', '8000'), timeout=2)"]
CMD ["python", "-m", "gateway", "serve"]

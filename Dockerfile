# syntax=docker/dockerfile:1
# Runwatch's service. Build: docker build -t runwatch . ; run:
#   docker run -p 8080:8080 -v runwatch-data:/data -v ./my-config:/config runwatch
# tests/service/test_container.py performs this file's install and start steps in a fresh venv and folder
# layout (no container engine runs in CI), so the commands below are proven on every change.

# Stage 1: build the package and its dependencies into a venv (compilers and caches stay here).
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY alerts ./alerts
COPY sdk ./sdk
RUN python -m venv /opt/runwatch
RUN /opt/runwatch/bin/pip install --no-cache-dir .

# Stage 2: the venv only, run by an unprivileged user.
FROM python:3.11-slim
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin runwatch && mkdir -p /data /config/rules && chown runwatch /data
COPY --from=build /opt/runwatch /opt/runwatch
COPY config/container/alerts.yaml /config/alerts.yaml
ENV PATH=/opt/runwatch/bin:$PATH
ENV ALERTS_CONFIG=/config/alerts.yaml
USER runwatch
WORKDIR /data
VOLUME ["/data", "/config"]
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2).status != 200)"]
CMD ["alerts", "serve"]

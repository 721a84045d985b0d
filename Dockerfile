# replyd daemon image: the same steps as `make run` (install, migrate, serve), as a non-root user
# with a fixed UID and GID, 10001, so that a host folder mounted at /data can be made writable
# for it: `chown 10001:10001 /srv/replyd` on the host.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    REPLYD_VAR_DIR=/data \
    REPLYD_SMTP_HOST=0.0.0.0 \
    REPLYD_SMTP_PORT=2525 \
    REPLYD_HTTP_HOST=0.0.0.0 \
    REPLYD_HTTP_PORT=8025

# A normal (not editable) install: the code and templates live in site-packages, not in /src.
WORKDIR /src
COPY pyproject.toml README.md ./
COPY service ./service
COPY templates ./templates
RUN pip install --no-cache-dir '.[postgres]' \
    && rm -rf /src/* \
    && groupadd --system --gid 10001 replyd \
    && useradd --system --uid 10001 --gid 10001 --home-dir /data --no-create-home \
       --shell /usr/sbin/nologin replyd \
    && mkdir -p /data \
    && chown 10001:10001 /data

USER 10001:10001
WORKDIR /data
VOLUME ["/data"]
EXPOSE 2525 8025
# The slim image has no curl: Python asks /healthz (200 when the database answers and the SMTP
# listener is bound; an error status or no answer fails the check).
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('REPLYD_HTTP_PORT', '8025') + '/healthz', timeout=4)"]
CMD ["sh", "-c", "replyd db upgrade && exec replyd serve"]

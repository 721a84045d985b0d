# replyd daemon image: the same steps as `make run` (install, migrate, serve), as a non-root user.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    REPLYD_VAR_DIR=/data \
    REPLYD_SMTP_HOST=0.0.0.0 \
    REPLYD_SMTP_PORT=2525 \
    REPLYD_HTTP_HOST=0.0.0.0 \
    REPLYD_HTTP_PORT=8025

WORKDIR /app
COPY pyproject.toml README.md ./
COPY service ./service
COPY templates ./templates
RUN pip install --no-cache-dir -e '.[postgres]' \
    && useradd --system --home-dir /data --create-home replyd

USER replyd
VOLUME ["/data"]
EXPOSE 2525 8025
CMD ["sh", "-c", "replyd db upgrade && exec replyd serve"]

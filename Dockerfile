# lastmile: one image for every role (web, worker, beat, migrate); the command picks the role.
#   docker build -t lastmile .
#   docker run --read-only --tmpfs /tmp -e DATABASE_URL=... -e LASTMILE_SECRET_KEY=... lastmile
# The NLU model is trained at build time, so nothing is written or downloaded at run time.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH

RUN groupadd --system --gid 10001 lastmile && useradd --system --uid 10001 --gid lastmile --home /app lastmile
WORKDIR /app

# Dependencies first (cached across code changes), then the code.
COPY pyproject.toml README.md ./
RUN python -m venv /opt/venv && mkdir -p bot nlu handlers db \
    && touch bot/__init__.py nlu/__init__.py handlers/__init__.py db/__init__.py app.py \
    && pip install -e '.[s3]' && rm -rf bot nlu handlers db app.py
COPY app.py config.yml babel.cfg ./
COPY bot bot
COPY nlu nlu
COPY handlers handlers
COPY db db
RUN pybabel compile -d bot/translations >/dev/null \
    && lastmile nlu train \
    && python -m compileall -q bot nlu handlers db app.py \
    && mkdir -p /app/instance && chown lastmile:lastmile /app/instance

USER lastmile
EXPOSE 8000
# Liveness only: readiness (/readyz, database and broker) is for the load balancer, not for restarts.
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
    CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2).status != 200)"
CMD ["lastmile", "serve", "--host", "0.0.0.0", "--port", "8000", "--workers", "2"]

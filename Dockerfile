# The Pitboss job (and its simulator) for docker-compose.yml.
# Dependencies come from uv.lock exactly, installed by the same pinned uv as the Makefile.
FROM python:3.11-slim

# Keep in step with UV_VERSION in the Makefile (tests/integration/test_observability.py checks).
ARG UV_VERSION=0.13.9

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    UV_PYTHON_DOWNLOADS=never \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PROJECT_ENVIRONMENT=/opt/pitboss/.venv \
    PATH=/opt/pitboss/.venv/bin:$PATH

RUN pip install --no-cache-dir --disable-pip-version-check uv==${UV_VERSION}

WORKDIR /opt/pitboss

# Dependencies first: this layer is rebuilt only when the lock changes.
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --locked --no-dev --no-install-project

COPY pipeline ./pipeline
COPY operators ./operators
COPY sinks ./sinks
COPY config ./config
RUN uv sync --locked --no-dev

# An unprivileged user that owns the recovery directory; a fresh named volume mounted
# there starts with this ownership.
RUN useradd --system --uid 10001 --home-dir /var/lib/pitboss --shell /usr/sbin/nologin pitboss \
    && mkdir -p /var/lib/pitboss/recovery \
    && chown -R pitboss:pitboss /var/lib/pitboss
USER pitboss
# With BYTEWAX_DATAFLOW_API_ENABLED, Bytewax writes dataflow.json here (the default, the
# working directory, is not writable by this user and the job would fail to start).
ENV BYTEWAX_DATAFLOW_API_CACHE_PATH=/var/lib/pitboss

# 9464: /metrics (PITBOSS_METRICS_PORT); 3030: Bytewax's dataflow API and its metrics.
EXPOSE 9464 3030
CMD ["pitboss", "run", "-w", "2"]

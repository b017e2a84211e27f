# syntax=docker/dockerfile:1
# The image of every rdev service; the build argument SERVICE picks which one
# (api, executor, webhooks or audit). Build from the repository root:
#   docker build --build-arg SERVICE=api -t ghcr.io/rdev/rdev-api .
# Each image holds only its service's closure (rdev-common and rdev-<SERVICE>) and runs
# `python -m rdev_<SERVICE>`. The ports are each service's setting (compose, deploy/).

ARG SERVICE=api

FROM python:3.11-slim AS builder
ARG SERVICE
ARG UV_VERSION=0.13.9
RUN case "${SERVICE}" in api|executor|webhooks|audit) ;; \
      *) echo "SERVICE must be api, executor, webhooks or audit, not '${SERVICE}'" >&2; exit 1 ;; \
    esac \
 && pip install --no-cache-dir "uv==${UV_VERSION}"
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON=/usr/local/bin/python3.11 \
    UV_PROJECT_ENVIRONMENT=/app/.venv
WORKDIR /src

# Third-party dependencies first: this layer changes only with the lock file.
# uv reads every workspace member's pyproject.toml to load the workspace.
COPY pyproject.toml uv.lock ./
COPY libs/common/pyproject.toml libs/common/
COPY services/api/pyproject.toml services/api/
COPY services/executor/pyproject.toml services/executor/
COPY services/webhooks/pyproject.toml services/webhooks/
COPY services/audit/pyproject.toml services/audit/
COPY cli/pyproject.toml cli/
RUN uv sync --frozen --no-dev --no-install-workspace --package "rdev-${SERVICE}"

# Then this service's closure: rdev-common and rdev-<SERVICE>, installed (not editable).
COPY libs/common/ libs/common/
COPY services/${SERVICE}/ services/${SERVICE}/
RUN uv sync --frozen --no-dev --no-editable --package "rdev-${SERVICE}"

FROM python:3.11-slim
ARG SERVICE
# The executor's /workspaces holds project workdirs for the local backend; a
# docker-compose volume mounted there inherits its ownership.
RUN groupadd --system --gid 10001 rdev \
 && useradd --system --uid 10001 --gid rdev --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin rdev \
 && if [ "${SERVICE}" = executor ]; then install -d -o 10001 -g 10001 /workspaces; fi
# Owned by root: the service cannot modify its own code.
COPY --from=builder /app/.venv /app/.venv
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    RDEV_DATA_DIR=/tmp/rdev \
    RDEV_SERVICE=${SERVICE}
WORKDIR /app
USER 10001:10001
# exec: the service is PID 1 and gets the container's SIGTERM itself.
CMD ["/bin/sh", "-c", "exec python -m \"rdev_${RDEV_SERVICE}\""]

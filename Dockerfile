# syntax=docker/dockerfile:1

# The base images, by tag. To pin them, pass a digest (`docker buildx imagetools inspect
# node:22-slim` shows the current one), e.g.
#   docker build --build-arg PYTHON_IMAGE=python:3.11-slim@sha256:<digest> \
#     --build-arg NODE_IMAGE=node:22-slim@sha256:<digest> -t talkgate .
# Node 22 is the LTS line (maintained until April 2027); it only builds the explorer page.
ARG NODE_IMAGE=node:22-slim
ARG PYTHON_IMAGE=python:3.11-slim

# Stage 0: the explorer page (GraphiQL + explorer plugin) from the pinned npm packages.
FROM ${NODE_IMAGE} AS explorer
WORKDIR /src/explorer
COPY explorer/package.json explorer/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY explorer/build.mjs ./
COPY explorer/src ./src
RUN npm run build

# Stage 1: wheels of talkgate and of every dependency, built with the full toolchain.
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
# pyproject.toml names README.md as the package's long description: the build needs it.
COPY pyproject.toml README.md ./
COPY gateway ./gateway
COPY schema ./schema
COPY resolvers ./resolvers
# Package data of the wheel: served on /explorer and to browsers on /graphql.
COPY --from=explorer /src/gateway/static/explorer ./gateway/static/explorer
# With the scale-out drivers: the same image runs on SQLite or on PostgreSQL + Redis.
RUN pip wheel --wheel-dir /wheels ".[postgres,redis]"

# Stage 2: the runtime, with the wheels installed and nothing to build with.
FROM ${PYTHON_IMAGE}
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
# /data belongs to uid:gid 10001:10001, the user talkgate runs as. A named volume starts as
# a copy of it; a bind mount keeps the host directory's owner: `chown 10001:10001 <dir>` first.
RUN groupadd --system --gid 10001 talkgate \
    && useradd --system --uid 10001 --gid 10001 --home-dir /data --no-create-home \
        --shell /usr/sbin/nologin talkgate \
    && mkdir /data \
    && chown 10001:10001 /data
# Mounted, not copied, so the wheels do not stay in a layer of the image.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels "talkgate[postgres,redis]"

WORKDIR /data
ENV TALKGATE_HOST=0.0.0.0 \
    TALKGATE_PORT=8000 \
    TALKGATE_DATABASE_URL=sqlite:////data/talkgate.db \
    PYTHONUNBUFFERED=1
EXPOSE 8000
VOLUME /data
# `python -m gateway.healthcheck` asks /healthz on the port serve listens on: `serve --port N`
# on PID 1's command line, else TALKGATE_PORT (gateway/healthcheck.py).
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
    CMD ["python", "-m", "gateway.healthcheck"]
USER 10001
ENTRYPOINT ["talkgate"]
CMD ["serve"]

# syntax=docker/dockerfile:1
# The micro server image: `micro server` (registry, auth, broker, runtime, gateway, the
# platform and the value-add services) as uid 10001, on a read-only root file system.
# Build it from the repository root (the context is the whole monorepo; .dockerignore
# keeps node_modules, dist and .git out of it):
#
#   docker build -f deploy/server.Dockerfile -t <registry>/micro/server:0.1.0 .
#
# See deploy/README.md for what it needs at run time (a writable MICRO_HOME and /tmp).

ARG NODE_IMAGE=node:20-bookworm-slim

# --- build: install from the lock file, compile every workspace and the dashboard ---
FROM ${NODE_IMAGE} AS build
# better-sqlite3 compiles from source when no prebuilt binary fits the platform; these
# tools stay in this stage
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN npm ci --no-audit --no-fund
RUN node_modules/.bin/tsc -b tsconfig.build.json \
 && node_modules/.bin/tsc -p packages/web/tsconfig.json \
 && node_modules/.bin/vite build packages/web --logLevel warn
# only what runs: the built files of the CLI, of what it imports and of the dashboard,
# and the installed packages they reach (deploy/stage.mjs follows package-lock.json)
RUN node deploy/stage.mjs --out /stage/app packages/cli packages/web

# --- run ---
FROM ${NODE_IMAGE}
# git fetches the sources of `micro run <git URL>`; ca-certificates for https:// ones
RUN apt-get update \
 && apt-get install -y --no-install-recommends git ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 10001 micro \
 && useradd --uid 10001 --gid 10001 --home-dir /var/lib/micro --no-create-home --shell /usr/sbin/nologin micro \
 && mkdir -p /var/lib/micro \
 && chown 10001:10001 /var/lib/micro
# owned by root: the server cannot change its own code
COPY --from=build /stage/app /app
# MICRO_HOME (config, keys, admin.json, logs) and /tmp are the only places it writes: the
# manifests mount an emptyDir on each. Inside a pod both listeners bind every interface;
# the Services and NetworkPolicies decide who reaches them.
ENV MICRO_HOME=/var/lib/micro \
    HOME=/var/lib/micro \
    MICRO_SERVER_ADDRESS=tcp://0.0.0.0:8081 \
    MICRO_GATEWAY_ADDRESS=0.0.0.0:8080
WORKDIR /var/lib/micro
USER 10001:10001
EXPOSE 8080 8081
ENTRYPOINT ["node", "/app/packages/cli/bin/micro.js"]
CMD ["server"]

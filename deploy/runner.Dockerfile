# syntax=docker/dockerfile:1
# The service runner image: what the Kubernetes runtime runs a customer's service with.
# Its build Job installs and compiles the service (npm, TypeScript) into /work; its
# Deployment starts it with the runner entry /micro/runner.js. Node.js 20, npm, git, the
# built server package (the runner and the SDK it provides to services), uid 10001.
# Build it from the repository root:
#
#   docker build -f deploy/runner.Dockerfile -t <registry>/micro/runner:0.1.0 .

ARG NODE_IMAGE=node:20-bookworm-slim

# --- build: install from the lock file and compile the workspaces ---
FROM ${NODE_IMAGE} AS build
# better-sqlite3 compiles from source when no prebuilt binary fits the platform; these
# tools stay in this stage
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN npm ci --no-audit --no-fund
RUN node_modules/.bin/tsc -b tsconfig.build.json
# only what runs: the server package (the runner, the SDK, TypeScript and @types/node that
# service builds use) and the kit the value-add services' sources import
RUN node deploy/stage.mjs --out /stage/app packages/server services/kit

# --- run ---
FROM ${NODE_IMAGE}
# git fetches git sources in the build Job; ca-certificates for https:// ones (npm's too)
RUN apt-get update \
 && apt-get install -y --no-install-recommends git ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 10001 micro \
 && useradd --uid 10001 --gid 10001 --home-dir /work --no-create-home --shell /usr/sbin/nologin micro \
 && mkdir -p /work \
 && chown 10001:10001 /work
COPY --from=build /stage/app /app
# /micro/runner.js imports the runner of the server package; /micro/package.json makes it
# an ES module
COPY deploy/runner/runner.js deploy/runner/package.json /micro/
# /work is an emptyDir in every pod (the root file system is read-only): the service's
# files, npm's cache and HOME
ENV HOME=/work \
    npm_config_cache=/work/.npm \
    npm_config_update_notifier=false \
    npm_config_fund=false \
    npm_config_audit=false
WORKDIR /work
USER 10001:10001
CMD ["node", "/micro/runner.js"]

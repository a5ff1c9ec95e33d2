# syntax=docker/dockerfile:1
# Accounting service image: build with dev dependencies, run with production dependencies only.
#   docker build -t accounting-service .
#   docker run -e DATABASE_URL=postgres://... -e JWT_SECRET=... -p 3000:3000 accounting-service

# --- build: compile TypeScript and the admin console to dist/ ---
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# Only the compiler runs here: no install scripts needed.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY scripts ./scripts
# The admin console (dist/console) is built from console/ and the typed client.
COPY client ./client
COPY console ./console
RUN npm run build

# --- runtime: production dependencies, compiled code, migrations; runs as a non-root user ---
FROM node:20-bookworm-slim AS runtime
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=3000
WORKDIR /app
COPY package.json package-lock.json ./
# --omit=dev leaves out the embedded PostgreSQL (a dev dependency, 60 MB of binaries for local runs; the
# image always has DATABASE_URL). No production dependency needs an install script.
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist ./dist
COPY migrations ./migrations
# The ledger's SQL functions are repeatable migrations read from their own files (src/db/migrator.ts).
COPY src/ledger/sql ./src/ledger/sql
USER node
EXPOSE 3000
# Liveness from inside the container (Node 20 has fetch; no curl in the slim image).
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||3000)+'/health').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
# Node as PID 1 receives SIGTERM directly: the service drains and exits within SHUTDOWN_GRACE_MS.
CMD ["node", "--max-old-space-size=128", "--heap-growing-percent=100", "dist/src/server.js"]

# syntax=docker/dockerfile:1
#
# cert-expiry-exporter container image.
#
#   docker build -t cert-expiry-exporter:0.1.0 .
#   docker run --rm --read-only -p 9798:9798 cert-expiry-exporter:0.1.0
#
# Three stages on the same base: `build` compiles the TypeScript with the dev dependencies, `deps`
# installs the production dependencies alone, and the final stage holds only those, the compiled
# `dist/` and package.json (src/version.ts reads the version from it). The base is the current Node.js
# LTS line, pinned by major version (Node 26; Node 20.19 is the oldest the code supports). Nothing is
# written at run time, so the container runs with a read-only root filesystem, and it needs no HOME.
# test/dockerfile.test.ts checks this structure and starts the compiled output the way ENTRYPOINT does.

FROM node:26-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

FROM node:26-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force

FROM node:26-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
# A numeric uid/gid, so Kubernetes can verify runAsNonRoot without /etc/passwd; files stay root-owned
# and read-only for it.
USER 65532:65532
EXPOSE 9798
ENTRYPOINT ["node", "dist/cli.js"]
CMD ["serve"]

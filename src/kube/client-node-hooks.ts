/**
 * A module resolution hook, for `client-node.ts`: client-node's `dist/config.js` (where KubeConfig
 * lives) imports the package's whole generated API (`dist/gen/index.js`: every API group and model,
 * about 14 MiB of heap and 45 MiB of RSS, and 0.3–0.4 s to load) for two names only its
 * `makeApiClient` uses, which the exporter never calls. This sends that one import to
 * `client-node-api.ts`, which exports those two names from the two small generated modules that
 * define them. Every other import resolves as before.
 */
import type { ResolveHook } from "node:module";

const WHOLE_API = "./gen/index.js";
const CONFIG_MODULE = "/@kubernetes/client-node/dist/config.js";
const NARROW_API = "./client-node-api.js";

export const resolve: ResolveHook = (specifier, context, nextResolve) =>
  specifier === WHOLE_API && context.parentURL?.endsWith(CONFIG_MODULE) ? nextResolve(NARROW_API, { ...context, parentURL: import.meta.url }) : nextResolve(specifier, context);

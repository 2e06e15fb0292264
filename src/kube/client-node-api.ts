// What client-node's config.js takes from its generated API, from the modules that define it (see client-node-hooks.ts).
export { createConfiguration } from "@kubernetes/client-node/dist/gen/configuration.js";
export { ServerConfiguration } from "@kubernetes/client-node/dist/gen/servers.js";

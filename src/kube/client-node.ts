/**
 * client-node's KubeConfig, loaded without the package's generated API (client-node-hooks.ts says
 * why). The hook goes in before the first import of client-node: in the loading thread where Node
 * has `registerHooks` (22.15 and later, the image's), on Node's hooks thread with `register`
 * elsewhere (Node 20, where `register` is not deprecated).
 */
import * as nodeModule from "node:module";
import { resolve } from "./client-node-hooks.js";

type InThreadHooks = (hooks: { resolve: typeof resolve }) => unknown;
const { registerHooks } = nodeModule as typeof nodeModule & { registerHooks?: InThreadHooks };

if (registerHooks) registerHooks({ resolve });
else nodeModule.register("./client-node-hooks.js", import.meta.url);

export const { KubeConfig } = await import("@kubernetes/client-node/dist/config.js");
export type KubeConfig = import("@kubernetes/client-node").KubeConfig;

/**
 * How the Kubernetes client is loaded: KubeConfig comes from client-node without the package's
 * generated API, which its config module imports whole for two names (src/kube/client-node-hooks.ts).
 * Recorded in a child started with plain node, the TypeScript loader and helpers/record-loads.mjs,
 * on this machine's Node (Node 20: the hook runs on Node's hooks thread) and on the image's Node
 * (in the loading thread, `registerHooks`): the child loads a kubeconfig and signs a request with it.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import t, { type Test } from "tap";
import { imageNode } from "../bench/runtime.js";
import { ROOT } from "./helpers/build.js";
import { runRecorded } from "./helpers/recorded-run.js";

const KUBECONFIG = `apiVersion: v1
kind: Config
clusters:
- name: test
  cluster: {server: "https://127.0.0.1:6443", insecure-skip-tls-verify: true}
users:
- name: reader
  user: {token: a-token}
contexts:
- name: test
  context: {cluster: test, user: reader}
current-context: test
`;

/** What a child on `node` loads while it loads the kubeconfig and applies it to a request, and the request's headers. */
async function loadInChild(node: string): Promise<{ loads: string[]; headers: Record<string, string> }> {
  const dir = await mkdtemp(join(tmpdir(), "cee-client-node-"));
  try {
    const kubeconfig = join(dir, "kubeconfig");
    await writeFile(kubeconfig, KUBECONFIG);
    const script = `
      const { loadKubeConfig } = await import(${JSON.stringify(pathToFileURL(join(ROOT, "src", "kube", "client.ts")).href)});
      const options = {};
      await loadKubeConfig({ kubeconfig: ${JSON.stringify(kubeconfig)} }).applyToHTTPSOptions(options);
      process.stdout.write(JSON.stringify(options.headers));`;
    const { stdout, loads } = await runRecorded(script, node);
    return { loads, headers: JSON.parse(stdout) as Record<string, string> };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function checkLoads(t: Test, { loads, headers }: { loads: string[]; headers: Record<string, string> }): void {
  t.same(headers, { Authorization: "Bearer a-token" }, "the kubeconfig's user signs the request");
  t.ok(loads.some((url) => url.endsWith("/@kubernetes/client-node/dist/config.js")), "client-node's config module is loaded");
  t.ok(loads.some((url) => url.endsWith("/src/kube/client-node-api.ts")), "its generated API comes from client-node-api.ts");
  t.same(
    loads.filter((url) => /\/@kubernetes\/client-node\/dist\/(index\.js|api\.js|gen\/index\.js|gen\/(apis|models)\/)/.test(url)),
    [],
    "neither the package's index nor the generated API groups and models are loaded",
  );
}

t.test("on this machine's Node", async (t) => {
  checkLoads(t, await loadInChild(process.execPath));
});

t.test("on the image's Node", async (t) => {
  checkLoads(t, await loadInChild(imageNode().path));
});

t.test("client-node-api.ts gives config.js the same two names the whole generated API would", async (t) => {
  const [narrow, whole] = await Promise.all([import("../src/kube/client-node-api.js"), import("@kubernetes/client-node/dist/gen/index.js")]);
  t.equal(narrow.createConfiguration, whole.createConfiguration);
  t.equal(narrow.ServerConfiguration, whole.ServerConfiguration);
});

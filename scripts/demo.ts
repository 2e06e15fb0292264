/**
 * `npm run demo`: certificates with varied lifetimes and a kubeconfig in a temporary folder, and
 * the exporter serving them. Ctrl-C stops it and removes the folder.
 * Options: --port N (default 9798), --listen-address A (default 127.0.0.1).
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { Exporter } from "../src/app.js";
import { validateConfig } from "../src/config.js";
import { makeCert, makeChain, privateKeyPem } from "./certgen.js";

const { values } = parseArgs({ options: { port: { type: "string", default: "9798" }, "listen-address": { type: "string", default: "127.0.0.1" } } });

async function writeDemoCertificates(dir: string): Promise<void> {
  const ca = await makeCert({ cn: "Demo CA", ca: true, notAfterDays: 3650 });
  const lifetimes: [string, number][] = [
    ["expired", -3],
    ["two-days", 2],
    ["twenty-days", 20],
    ["two-hundred-days", 200],
  ];
  for (const [name, days] of lifetimes) {
    const cert = await makeCert({ cn: `${name}.demo.test`, issuer: ca, notBeforeDays: days - 90, notAfterDays: days, sans: [`${name}.demo.test`] });
    await writeFile(join(dir, `${name}.crt`), cert.pem);
    await writeFile(join(dir, `${name}.key`), await privateKeyPem(cert));
  }
  const chain = await makeChain("chain.demo.test", 60);
  await writeFile(join(dir, "chain.pem"), chain.leaf.pem + chain.intermediate.pem + chain.root.pem);
  // Broken certificates stay visible: this one is a read error on the page and in /metrics.
  const truncated = (await makeCert({ cn: "broken.demo.test", issuer: ca })).pem.split("\n").slice(0, 6).join("\n");
  await writeFile(join(dir, "broken.crt"), `${truncated}\n-----END CERTIFICATE-----\n`);

  const client = await makeCert({ cn: "system:admin", subject: "CN=system:admin, O=system:masters", issuer: ca, notAfterDays: 365 });
  await writeFile(join(dir, "ca.crt"), ca.pem);
  await writeFile(join(dir, "admin.crt"), client.pem);
  const b64 = (text: string) => Buffer.from(text).toString("base64");
  await writeFile(
    join(dir, "admin.conf"),
    [
      "apiVersion: v1",
      "kind: Config",
      "clusters:",
      "  - name: demo",
      "    cluster:",
      "      server: https://127.0.0.1:6443",
      `      certificate-authority-data: ${b64(ca.pem)}`,
      "users:",
      "  - name: admin",
      "    user:",
      "      client-certificate: admin.crt",
      "contexts:",
      "  - name: demo",
      "    context: { cluster: demo, user: admin }",
      "current-context: demo",
      "",
    ].join("\n"),
  );
}

const dir = await mkdtemp(join(tmpdir(), "cert-expiry-demo-"));
await writeDemoCertificates(dir);
const config = validateConfig({
  listen: { address: values["listen-address"], port: Number(values.port) },
  sources: { files: [{ paths: [join(dir, "*.crt"), join(dir, "*.pem")], exclude: [join(dir, "admin.crt")] }], kubeconfigs: [{ paths: [join(dir, "*.conf")] }] },
});
const exporter = await Exporter.create(config);
await exporter.serve();
const base = `http://${values["listen-address"]?.includes(":") ? `[${values["listen-address"]}]` : values["listen-address"]}:${exporter.port}`;
process.stdout.write(
  `\nDemo certificates in ${dir}\n\n  Status page  ${base}/\n  Metrics      ${base}/metrics\n  Health       ${base}/healthz  ${base}/readyz\n\n` +
    `Try: npx tsx src/cli.ts check --file '${join(dir, "*.crt")}' --kubeconfig-file '${join(dir, "*.conf")}'\nCtrl-C stops the demo.\n`,
);

const stop = async () => {
  await exporter.close();
  await rm(dir, { recursive: true, force: true });
  process.exit(0);
};
process.once("SIGINT", () => void stop());
process.once("SIGTERM", () => void stop());

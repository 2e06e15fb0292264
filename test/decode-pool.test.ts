/**
 * The decode pool: PKCS#12 and kubeconfig YAML decoded in worker threads with a time budget and a
 * heap limit. Results must equal the inline decoders'; a runaway decode must cost its caller a
 * `parse_timeout` and nothing else.
 */
import t from "tap";
import YAML from "yaml";
import { parseKubeconfig } from "../src/certs/kubeconfig.js";
import { openPkcs12 } from "../src/certs/pkcs12.js";
import { DecodePool } from "../src/decode-pool.js";
import { CertReadError } from "../src/errors.js";
import { makeCert } from "../scripts/certgen.js";
import * as hostile from "../scripts/hostile.js";

async function reasonOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof CertReadError) return `${err.reason}: ${err.message}`;
    throw err;
  }
  return "no error";
}

function kubeconfigOf(caPem: string): Buffer {
  return Buffer.from(
    YAML.stringify({
      apiVersion: "v1",
      kind: "Config",
      clusters: [{ name: "c", cluster: { server: "https://x", "certificate-authority-data": Buffer.from(caPem).toString("base64") } }],
      users: [{ name: "u", user: { "client-certificate-data": "not base64!" } }, { name: "f", user: { "client-certificate": "client.crt" } }],
    }),
  );
}

t.test("results are those of the inline decoders, errors with their reasons", async (t) => {
  const pool = new DecodePool({ timeoutMs: 10_000 });
  t.teardown(() => pool.close());
  const ca = await makeCert({ cn: "pool-ca.test", ca: true });
  const kubeconfig = kubeconfigOf(ca.pem);
  t.same(await pool.kubeconfig(kubeconfig, "/etc/kubernetes"), parseKubeconfig(kubeconfig, "/etc/kubernetes"), "kubeconfig entries, the bad one as a bad_base64 error");
  const p12 = await hostile.opensslPkcs12("secret");
  const inline = openPkcs12(p12, ["wrong", "secret"]).map((der) => Buffer.from(der).toString("hex"));
  t.same((await pool.pkcs12(p12, ["wrong", "secret"], Infinity)).map((der) => Buffer.from(der).toString("hex")), inline, "PKCS#12 certificates, the second passphrase opening it");
  t.match(await reasonOf(pool.pkcs12(p12, ["wrong"], Infinity)), /^wrong_passphrase: /);
  t.match(await reasonOf(pool.kubeconfig(Buffer.from("a: [unclosed"), null)), /^bad_yaml: not valid YAML: /);
  t.match(await reasonOf(pool.pkcs12(await hostile.costlyPkcs12("pw"), ["pw"], 200_000)), /^too_costly: the PKCS#12 bundle asks for 25165821 key-derivation iterations/);
  t.match(await reasonOf(pool.pkcs12(Buffer.from("junk"), ["pw"], 200_000)), /^corrupt_certificate: /);
});

t.test("a decode over its time budget is parse_timeout, and the next one gets a fresh worker", async (t) => {
  const pool = new DecodePool({ timeoutMs: 500, size: 1 });
  t.teardown(() => pool.close());
  // 9,000,000 iterations of SHA-256 in JavaScript: many seconds, far over 500 ms.
  const slow = await hostile.costlyPkcs12("pw", 3_000_000);
  const ca = await makeCert({ cn: "after.test", ca: true });
  const [timedOut, after] = await Promise.all([reasonOf(pool.pkcs12(slow, ["pw"], Infinity)), pool.kubeconfig(kubeconfigOf(ca.pem), null)]);
  t.equal(timedOut, "parse_timeout: decoding took longer than 500 ms (limits.parseTimeout)");
  t.equal(after.length, 3, "the decode queued behind it ran on a new worker");
});

t.test("the budget starts when a worker is ready, not while it starts", async (t) => {
  // A worker takes longer than 50 ms to load its modules (node-forge, yaml) on any machine.
  const pool = new DecodePool({ timeoutMs: 50 });
  t.teardown(() => pool.close());
  const ca = await makeCert({ cn: "quick.test", ca: true });
  t.equal((await pool.kubeconfig(kubeconfigOf(ca.pem), null)).length, 3);
});

t.test("a decode that outgrows the worker's heap is parse_timeout", async (t) => {
  const pool = new DecodePool({ timeoutMs: 60_000, heapMb: 48, size: 1 });
  t.teardown(() => pool.close());
  t.equal(await reasonOf(pool.kubeconfig(hostile.kubeconfigBigMapping(8 * 1024 * 1024), null)), "parse_timeout: decoding outgrew its 48 MiB heap");
  const ca = await makeCert({ cn: "after-oom.test", ca: true });
  t.equal((await pool.kubeconfig(kubeconfigOf(ca.pem), null)).length, 3, "the pool goes on with a new worker");
});

t.test("close fails what is queued or running, and every later decode", async (t) => {
  const pool = new DecodePool({ timeoutMs: 60_000, size: 1 });
  const slow = reasonOf(pool.pkcs12(await hostile.costlyPkcs12("pw", 3_000_000), ["pw"], Infinity));
  const queued = reasonOf(pool.kubeconfig(Buffer.from("kind: Config\nclusters: []\n"), null));
  await pool.close();
  t.equal(await slow, "parse_timeout: the exporter is shutting down");
  t.equal(await queued, "parse_timeout: the exporter is shutting down");
  t.equal(await reasonOf(pool.kubeconfig(Buffer.from("kind: Config\n"), null)), "parse_timeout: the exporter is shutting down");
});

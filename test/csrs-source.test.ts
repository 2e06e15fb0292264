/**
 * The CertificateSigningRequests source against the API server double: issued certificates keyed
 * by signer, pending requests that get issued later, literal signer names selected on the server
 * and globs matched here, deletion, bad base64, and the faults of the double; fault tests end with
 * the exporter's locations exactly equal to the double's state.
 */
import type { KubeConfig } from "@kubernetes/client-node";
import picomatch from "picomatch";
import t, { type Test } from "tap";
import type { Issued } from "../scripts/certgen.js";
import type { Config } from "../src/config.js";
import { csrsSource } from "../src/sources/csrs.js";
import type { KubeCertificateSource } from "../src/sources/kube-certificates.js";
import type { SourceContext } from "../src/sources/source.js";
import type { FakeApiServer, K8sObject } from "./k8s/apiserver.js";
import {
  actualLocations,
  certPool,
  convergeWith,
  counter,
  eventually,
  serialsOfPem,
  sortKeys,
  startKubeHarness,
  type Convergence,
  type HarnessOptions,
  type KubeHarness,
} from "./k8s/exporter-harness.js";

type H = KubeHarness<KubeCertificateSource>;

const KUBELET_SERVING = "kubernetes.io/kubelet-serving";
const KUBELET_CLIENT = "kubernetes.io/kube-apiserver-client-kubelet";
const CUSTOM = "example.com/custom";

const b64 = (v: string | Buffer): string => Buffer.from(v).toString("base64");
const serial = (c: Issued): string => c.cert.serialNumber.toLowerCase().replace(/^0+(?=.)/, "");
/** Polls for up to about 30 s: generous on a loaded machine, quick when all is well. */
const soon = (check: () => boolean): Promise<boolean> => eventually(check, 1500);

const build = (config: Config, ctx: SourceContext, kubeConfig: KubeConfig): KubeCertificateSource => csrsSource(config.sources.csrs, kubeConfig, config.kubernetes, ctx);

/** The CSRs source (sources.csrs merged over `enabled: true`) against a double. */
function startCsrs(t: Test, csrs: Record<string, unknown> = {}, opts: Omit<HarnessOptions, "secrets"> = {}): Promise<H> {
  return startKubeHarness(t, { ...opts, sources: { csrs: { enabled: true, ...csrs } }, build });
}

/** A CSR of `signerName`; `certificate` (as sent, base64 of PEM) makes it issued. */
function putCsr(api: FakeApiServer, name: string, signerName: string, certificate?: string, labels?: Record<string, string>): K8sObject {
  const status: Record<string, unknown> = {};
  if (certificate !== undefined) {
    status.conditions = [{ type: "Approved", status: "True", reason: "AutoApproved" }];
    status.certificate = certificate;
  }
  return api.put({
    apiVersion: "certificates.k8s.io/v1",
    kind: "CertificateSigningRequest",
    metadata: { name, ...(labels ? { labels } : {}) },
    spec: { signerName, request: b64("-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n-----END CERTIFICATE REQUEST-----\n"), usages: ["digital signature", "server auth"], username: "system:node:n1" },
    status,
  });
}

const STRICT_BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/** The locations the exporter must hold for the double's CSRs, as `/<csr>/<signer>` → serials or `!reason`. */
function expectedCsrs(api: FakeApiServer, signerNames: string[] = []): Record<string, string> {
  const match = signerNames.length ? picomatch(signerNames, { dot: true }) : () => true;
  const out: Record<string, string> = {};
  for (const csr of api.list("certificatesigningrequests") as (K8sObject & { spec?: { signerName?: string }; status?: { certificate?: string } })[]) {
    const signer = csr.spec?.signerName ?? "";
    const certificate = csr.status?.certificate;
    if (!certificate || !match(signer)) continue;
    const id = `/${csr.metadata.name}/${signer}`;
    if (!STRICT_BASE64.test(certificate) || certificate.length % 4 !== 0) out[id] = "!bad_base64";
    else {
      const serials = serialsOfPem(Buffer.from(certificate, "base64").toString("latin1"));
      out[id] = serials.length ? serials.join(",") : "!error";
    }
  }
  return sortKeys(out);
}

function actualCsrs(h: H): Record<string, string> {
  const out = actualLocations(h.inventory, "csr");
  for (const e of h.inventory.entries()) {
    if (e.location.source === "csr" && e.error?.reason === "bad_base64") out[`${e.location.namespace}/${e.location.name}/${e.location.key}`] = "!bad_base64";
  }
  return out;
}

function converge(h: H, signerNames: string[] = []): Promise<Convergence> {
  return convergeWith(
    () => actualCsrs(h),
    () => expectedCsrs(h.api, signerNames),
    1500,
  );
}

/** Issued, pending and broken CSRs of three signers. */
async function seed(api: FakeApiServer): Promise<Issued[]> {
  const pool = await certPool(8);
  for (let i = 0; i < 6; i++) {
    putCsr(api, `serving-${i}`, KUBELET_SERVING, b64(pool[i % 8]!.pem));
    putCsr(api, `client-${i}`, KUBELET_CLIENT, b64(pool[(i + 1) % 8]!.pem));
    putCsr(api, `custom-${i}`, CUSTOM, i % 3 ? b64(pool[(i + 2) % 8]!.pem) : undefined);
  }
  putCsr(api, "serving-pending", KUBELET_SERVING);
  return pool;
}

/** Changes the source cannot see while its watches are silent. */
function mutate(api: FakeApiServer, pool: Issued[], round: number): void {
  api.remove("certificatesigningrequests", undefined, `serving-${round % 6}`);
  putCsr(api, `custom-${(round * 3) % 6}`, CUSTOM, b64(pool[(round + 3) % 8]!.pem));
  putCsr(api, `serving-new-${round}`, KUBELET_SERVING, b64(pool[(round + 4) % 8]!.pem));
  putCsr(api, `client-new-${round}`, KUBELET_CLIENT, b64(pool[(round + 5) % 8]!.pem));
}

t.test("an issued CSR is read, keyed by its signer; a pending one is nothing until it is issued", async (t) => {
  const pool = await certPool(3);
  const h = await startCsrs(t);
  putCsr(h.api, "csr-issued", KUBELET_SERVING, b64(pool[0]!.pem));
  putCsr(h.api, "csr-pending", KUBELET_CLIENT);
  putCsr(h.api, "csr-empty", KUBELET_CLIENT, "");
  await h.source.start();
  t.same(actualCsrs(h), { [`/csr-issued/${KUBELET_SERVING}`]: serial(pool[0]!) });
  const entry = h.inventory.get({ source: "csr", namespace: "", name: "csr-issued", key: KUBELET_SERVING });
  t.equal(entry?.certificates[0]?.subjectCN, "cert-0.example", "location {source: csr, namespace: \"\", name: <csr>, key: <signer>}");
  t.same(h.source.healthSources(), ["csr"]);
  t.equal(h.source.collections[0]!.states().length, 1, "nothing held for the pending ones");

  t.ok(await soon(() => h.api.openWatches === 1));
  putCsr(h.api, "csr-pending", KUBELET_CLIENT, b64(pool[1]!.pem));
  t.ok(await soon(() => h.inventory.get({ source: "csr", namespace: "", name: "csr-pending", key: KUBELET_CLIENT }) !== undefined), "issued by a later update: it appears");
  t.equal(h.inventory.get({ source: "csr", namespace: "", name: "csr-pending", key: KUBELET_CLIENT })?.certificates[0]?.subjectCN, "cert-1.example");
  const r = await converge(h);
  t.same(r.actual, r.expected);
});

t.test("literal signer names are selected on the server, one stream each; other signers are never sent", async (t) => {
  const h = await startCsrs(t, { signerNames: [KUBELET_SERVING, CUSTOM, KUBELET_SERVING] });
  await seed(h.api);
  t.same(h.source.collections[0]!.scopes, [
    { namespace: undefined, fieldSelector: `spec.signerName=${KUBELET_SERVING}` },
    { namespace: undefined, fieldSelector: `spec.signerName=${CUSTOM}` },
  ]);
  await h.source.start();
  const r = await converge(h, [KUBELET_SERVING, CUSTOM]);
  t.same(r.actual, r.expected);
  t.equal(Object.keys(r.actual).length, 10, "6 serving, 4 issued custom");
  const lists = h.api.requests({ verb: "list" });
  t.same(lists.map((x) => x.query.fieldSelector).sort(), [`spec.signerName=${CUSTOM}`, `spec.signerName=${KUBELET_SERVING}`], "each list sent its field selector");
  t.ok(lists.every((x) => x.path === "/apis/certificates.k8s.io/v1/certificatesigningrequests"));
  t.equal(
    lists.reduce((sum, x) => sum + x.items, 0),
    13,
    "7 serving and 6 custom CSRs sent; the kubelet client ones never",
  );
  t.ok(await soon(() => h.api.openWatches === 2));
  t.same([...new Set(h.api.requests({ verb: "watch" }).map((x) => x.query.fieldSelector))].sort(), [`spec.signerName=${CUSTOM}`, `spec.signerName=${KUBELET_SERVING}`], "and each watch");
  putCsr(h.api, "client-late", KUBELET_CLIENT, b64((await certPool(1))[0]!.pem));
  putCsr(h.api, "serving-late", KUBELET_SERVING, b64((await certPool(1))[0]!.pem));
  t.ok(await soon(() => h.inventory.get({ source: "csr", namespace: "", name: "serving-late", key: KUBELET_SERVING }) !== undefined));
  t.equal(
    h.api.requests({ verb: "watch" }).reduce((sum, x) => sum + x.items, 0),
    1,
    "the watches carried only the serving CSR",
  );
});

t.test("signer name globs are matched here: no field selector", async (t) => {
  const h = await startCsrs(t, { signerNames: ["kubernetes.io/*"], labelSelector: "node=yes" });
  const pool = await seed(h.api);
  for (const [i, signer] of [KUBELET_SERVING, CUSTOM].entries()) putCsr(h.api, `labelled-${i}`, signer, b64(pool[i]!.pem), { node: "yes" });
  t.same(h.source.collections[0]!.scopes, [{ namespace: undefined, fieldSelector: undefined }]);
  await h.source.start();
  t.same(actualCsrs(h), { [`/labelled-0/${KUBELET_SERVING}`]: serial(pool[0]!) }, "the glob and the label selector both apply");
  const list = h.api.requests({ verb: "list" })[0]!;
  t.notOk("fieldSelector" in list.query, "no field selector");
  t.equal(list.query.labelSelector, "node=yes", "the label selector is sent");

  const mixed = await startCsrs(t, { signerNames: [KUBELET_SERVING, "example.com/*"] }, { server: h.api });
  t.same(mixed.source.collections[0]!.scopes, [{ namespace: undefined, fieldSelector: undefined }], "a literal beside a glob: matched here too");
  await mixed.source.start();
  const r = await convergeWith(
    () => actualCsrs(mixed),
    () => expectedCsrs(mixed.api, [KUBELET_SERVING, "example.com/*"]),
    1500,
  );
  t.same(r.actual, r.expected);
  t.notOk(Object.keys(r.actual).some((k) => k.endsWith(KUBELET_CLIENT)));
  await mixed.close();
});

t.test("deletion, and a certificate that is not base64 or not a certificate", async (t) => {
  const pool = await certPool(2);
  const h = await startCsrs(t);
  putCsr(h.api, "one", KUBELET_SERVING, b64(pool[0]!.pem));
  putCsr(h.api, "two", KUBELET_SERVING, b64(pool[1]!.pem));
  putCsr(h.api, "bad", KUBELET_SERVING, "%%% not base64 %%%");
  putCsr(h.api, "text", KUBELET_SERVING, b64("not a certificate"));
  await h.source.start();
  const at = (name: string) => h.inventory.get({ source: "csr", namespace: "", name, key: KUBELET_SERVING });
  t.equal(at("bad")?.error?.reason, "bad_base64");
  t.match(at("bad")?.error?.message, /status\.certificate is not valid base64/);
  t.ok(at("text")?.error, "not a certificate: a read error");
  t.not(at("text")?.error?.reason, "bad_base64");
  t.equal(await counter(h, "readErrors", { source: "csr", reason: "bad_base64" }), 1);
  t.same(actualCsrs(h), expectedCsrs(h.api));

  t.ok(await soon(() => h.api.openWatches === 1));
  h.api.remove("certificatesigningrequests", undefined, "one");
  h.api.remove("certificatesigningrequests", undefined, "bad");
  putCsr(h.api, "text", KUBELET_SERVING, b64(pool[0]!.pem));
  const r = await converge(h);
  t.same(r.actual, r.expected);
  t.same(Object.keys(r.actual), [`/text/${KUBELET_SERVING}`, `/two/${KUBELET_SERVING}`], "deleted ones gone, the broken one fixed");
  t.equal(h.source.collections[0]!.states().length, 2);
});

t.test("paging, 410 on a continue token and on the watch, watch drops: exactly the server's state", async (t) => {
  const signers = [KUBELET_SERVING, KUBELET_CLIENT];
  const h = await startCsrs(t, { signerNames: signers }, { kubernetes: { pageSize: 2, watchTimeout: "1s" } });
  const pool = await seed(h.api);
  h.api.failNext(410, { match: { verb: "list", query: { continue: true, fieldSelector: `spec.signerName=${KUBELET_CLIENT}` } }, message: "The provided continue parameter is too old" });
  await h.source.start();
  let r = await converge(h, signers);
  t.same(r.actual, r.expected, "paged, one continue token expired");
  t.ok(h.api.countRequests({ verb: "list", query: { continue: true } }) >= 4, "paged");
  t.equal(await counter(h, "relists", { source: "csr", reason: "continue_expired" }), 1);
  t.ok(await soon(() => h.api.openWatches === 2), "watching both signers");

  h.api.silenceWatches({ open: true });
  mutate(h.api, pool, 1);
  h.api.compact();
  h.api.closeWatches();
  r = await converge(h, signers);
  t.same(r.actual, r.expected, "watch expired: relisted");
  t.ok((await counter(h, "relists", { source: "csr", reason: "watch_expired" })) >= 2, "both streams relisted");

  t.ok(await soon(() => h.api.openWatches === 2));
  h.api.closeWatches();
  mutate(h.api, pool, 2);
  r = await converge(h, signers);
  t.same(r.actual, r.expected, "closed: resumed");

  h.api.silenceWatches({ open: true });
  mutate(h.api, pool, 3);
  r = await converge(h, signers);
  t.same(r.actual, r.expected, "silent: restarted");
  t.ok((await counter(h, "watchRestarts", { source: "csr", reason: "silent" })) >= 1);
});

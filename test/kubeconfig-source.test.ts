import { mkdir, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import t from "tap";
import { stringify } from "yaml";
import { makeCert, makeChain, privateKeyPem } from "../scripts/certgen.js";
import type { PathGroup } from "../src/config.js";
import { CertReadError } from "../src/errors.js";
import type { LocationEntry } from "../src/model.js";
import { parseKubeconfig } from "../src/certs/kubeconfig.js";
import { KubeconfigSource } from "../src/sources/kubeconfig.js";
import { polledSource, tempDir as makeTempDir } from "./helpers/polled-source.js";

type Tap = Pick<typeof t, "teardown" | "equal">;

const tempDir = (t: Tap) => makeTempDir(t, "kubeconfig-source");

function harness(t: Tap, groups: PathGroup[], maxFileSize = 1024 * 1024) {
  const rig = polledSource(t, (ctx) => new KubeconfigSource(groups, { intervalSeconds: 3600, maxFileSize }, ctx));
  const { inventory } = rig;
  return {
    ...rig,
    /** key → serials, or key → "error:<reason>", for the kubeconfig at `name`. */
    view(name: string): Record<string, string[] | string> {
      const out: Record<string, string[] | string> = {};
      const entries: LocationEntry[] = [...inventory.entries()].filter((e) => e.location.name === name);
      for (const entry of entries) {
        t.equal(entry.location.source, "kubeconfig");
        t.equal(entry.location.namespace, "");
        out[entry.location.key] = entry.error ? `error:${entry.error.reason}` : entry.certificates.map((c) => c.serial);
      }
      return out;
    },
    at(name: string, key: string): LocationEntry | undefined {
      return inventory.get({ source: "kubeconfig", namespace: "", name, key });
    },
  };
}

const group = (paths: string[], exclude: string[] = []): PathGroup => ({ paths, exclude });
const b64 = (text: string | Buffer): string => Buffer.from(text).toString("base64");

const SECRET_KEY_DATA = b64("-----BEGIN PRIVATE KEY-----\nTOP-SECRET-KEY-MATERIAL\n-----END PRIVATE KEY-----\n");
const SECRET_TOKEN = "token-that-must-never-leak";

interface ClusterSpec {
  name: string;
  caData?: string;
  caFile?: string;
}
interface UserSpec {
  name: string;
  certData?: string;
  certFile?: string;
}

function kubeconfig(clusters: ClusterSpec[], users: UserSpec[]): string {
  return stringify({
    apiVersion: "v1",
    kind: "Config",
    clusters: clusters.map((c) => ({
      name: c.name,
      cluster: {
        server: "https://127.0.0.1:6443",
        ...(c.caData !== undefined ? { "certificate-authority-data": c.caData } : {}),
        ...(c.caFile !== undefined ? { "certificate-authority": c.caFile } : {}),
      },
    })),
    users: users.map((u) => ({
      name: u.name,
      user: {
        ...(u.certData !== undefined ? { "client-certificate-data": u.certData } : {}),
        ...(u.certFile !== undefined ? { "client-certificate": u.certFile } : {}),
        "client-key-data": SECRET_KEY_DATA,
        token: SECRET_TOKEN,
      },
    })),
    contexts: [{ name: "default", context: { cluster: clusters[0]?.name ?? "", user: users[0]?.name ?? "" } }],
    "current-context": "default",
  });
}

t.test("inline data: one location per cluster CA and per user certificate; keys are never looked at", async (t) => {
  const dir = await tempDir(t);
  const ca = await makeCert({ cn: "kubernetes", ca: true, serial: "3c0001" });
  const admin = await makeCert({ cn: "kubernetes-admin", issuer: ca, serial: "3c0002" });
  const path = join(dir, "admin.conf");
  await writeFile(path, kubeconfig([{ name: "kubernetes", caData: b64(ca.pem) }], [{ name: "kubernetes-admin", certData: b64(admin.pem) }]));
  const h = harness(t, [group([`${dir}/*.conf`])]);
  await h.scan();
  t.same(h.view(path), { "clusters/kubernetes": ["3c0001"], "users/kubernetes-admin": ["3c0002"] });
  t.equal(h.at(path, "clusters/kubernetes")?.certificates[0]?.isCA, true);
  const dump = JSON.stringify([...h.inventory.entries()]);
  t.notMatch(dump, "TOP-SECRET", "no key material in the inventory");
  t.notMatch(dump, SECRET_TOKEN, "no token in the inventory");
});

t.test("multiple clusters and users; entries without certificates have no location", async (t) => {
  const dir = await tempDir(t);
  const certs = await Promise.all(["4d0001", "4d0002", "4d0003", "4d0004"].map((serial) => makeCert({ serial })));
  const pems = certs.map((c) => b64(c.pem));
  const path = join(dir, "multi.conf");
  await writeFile(
    path,
    kubeconfig(
      [{ name: "prod", caData: pems[0] }, { name: "staging", caData: pems[1] }, { name: "insecure" }],
      [{ name: "alice", certData: pems[2] }, { name: "bob", certData: pems[3] }, { name: "token-only" }],
    ),
  );
  const h = harness(t, [group([path])]);
  await h.scan();
  t.same(h.view(path), {
    "clusters/prod": ["4d0001"],
    "clusters/staging": ["4d0002"],
    "users/alice": ["4d0003"],
    "users/bob": ["4d0004"],
  });
});

t.test("file references resolve against the kubeconfig's folder and are change-detected", async (t) => {
  const dir = await tempDir(t);
  const conf = join(dir, "etc", "kubernetes");
  await mkdir(join(conf, "pki"), { recursive: true });
  const { root } = await makeChain("apiserver");
  const user = await makeCert({ cn: "user", serial: "5e0001" });
  await writeFile(join(conf, "pki", "ca.crt"), root.pem);
  await writeFile(join(dir, "etc", "user.crt"), user.pem);
  await writeFile(join(dir, "etc", "user.key"), await privateKeyPem(user));
  const path = join(conf, "kubelet.conf");
  await writeFile(path, kubeconfig([{ name: "local", caFile: "pki/ca.crt" }], [{ name: "node", certFile: "../user.crt" }]));
  const h = harness(t, [group([path])]);
  await h.scan();
  t.same(h.at(path, "clusters/local")?.certificates.map((c) => c.subjectCN), ["Test Root CA"]);
  t.same(h.view(path)["users/node"], ["5e0001"]);
  const reads = h.source.reader.reads + h.source.referenceReader.reads;

  await h.scan();
  t.equal(h.source.reader.reads + h.source.referenceReader.reads, reads, "nothing unchanged is read again");

  // The referenced file renews while the kubeconfig stays as it is.
  const renewed = await makeCert({ cn: "user", serial: "5e0002" });
  await writeFile(join(dir, "etc", "user.crt"), renewed.pem);
  await h.scan();
  t.same(h.view(path)["users/node"], ["5e0002"], "the renewed certificate is exported");
  t.equal(h.source.reader.reads, 1, "the kubeconfig itself was read once");
  t.same(h.at(path, "clusters/local")?.certificates.map((c) => c.subjectCN), ["Test Root CA"]);
});

t.test("a missing referenced file is not_found for that entry; the others are exported", async (t) => {
  const dir = await tempDir(t);
  const ca = await makeCert({ cn: "ca", ca: true, serial: "6f0001" });
  await writeFile(join(dir, "ca.crt"), ca.pem);
  const path = join(dir, "config");
  await writeFile(path, kubeconfig([{ name: "c", caFile: "ca.crt" }], [{ name: "u", certFile: "gone.crt" }]));
  const h = harness(t, [group([path])]);
  await h.scan();
  t.same(h.view(path), { "clusters/c": ["6f0001"], "users/u": "error:not_found" });
  t.match(h.at(path, "users/u")?.error?.message, join(dir, "gone.crt"));
  // When it appears, the entry recovers.
  await writeFile(join(dir, "gone.crt"), (await makeCert({ serial: "6f0002" })).pem);
  await h.scan();
  t.same(h.view(path), { "clusters/c": ["6f0001"], "users/u": ["6f0002"] });
});

t.test("bad base64 in one user: an error for that entry, the cluster is still exported", async (t) => {
  const dir = await tempDir(t);
  const ca = await makeCert({ serial: "7a0001" });
  const good = await makeCert({ serial: "7a0002" });
  const path = join(dir, "config");
  await writeFile(
    path,
    kubeconfig(
      [{ name: "c", caData: b64(ca.pem) }],
      [
        { name: "broken", certData: "not*base64!" },
        { name: "ok", certData: b64(good.pem) },
        { name: "not-a-cert", certData: b64("hello") },
      ],
    ),
  );
  const h = harness(t, [group([path])]);
  await h.scan();
  t.same(h.view(path), {
    "clusters/c": ["7a0001"],
    "users/broken": "error:bad_base64",
    "users/ok": ["7a0002"],
    "users/not-a-cert": "error:not_pem_or_der",
  });
});

t.test("broken YAML is one bad_yaml error with key \"\", and its earlier entries go", async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, "config");
  const ca = await makeCert({ serial: "8b0001" });
  await writeFile(path, kubeconfig([{ name: "c", caData: b64(ca.pem) }], []));
  const h = harness(t, [group([path])]);
  await h.scan();
  t.same(h.view(path), { "clusters/c": ["8b0001"] });

  await writeFile(path, `apiVersion: v1\nusers:\n- name: u\n  user:\n    token: ${SECRET_TOKEN}\n    client-key-data: [${SECRET_KEY_DATA}\n`);
  await h.scan();
  t.same(h.view(path), { "": "error:bad_yaml" });
  const message = h.at(path, "")?.error?.message ?? "";
  t.match(message, /not valid YAML/);
  t.notMatch(message, SECRET_TOKEN, "the message quotes no part of the file");
  t.notMatch(message, SECRET_KEY_DATA.slice(0, 12));
});

t.test("valid YAML that is not a kubeconfig is bad_yaml", async (t) => {
  const dir = await tempDir(t);
  const cases: Record<string, string> = {
    "list.yaml": "- a\n- b\n",
    "pod.yaml": "apiVersion: v1\nkind: Pod\nmetadata:\n  name: x\n",
    "random.yaml": "foo: bar\n",
    "scalar.yaml": "just a string\n",
    "empty.yaml": "",
    "clusters-map.yaml": "kind: Config\nclusters:\n  a: b\n",
  };
  for (const [name, text] of Object.entries(cases)) await writeFile(join(dir, name), text);
  const h = harness(t, [group([`${dir}/*.yaml`])]);
  await h.scan();
  for (const name of Object.keys(cases)) t.same(h.view(join(dir, name)), { "": "error:bad_yaml" }, name);
  t.equal(h.inventory.size, Object.keys(cases).length);
});

t.test("globs and ~: a vanished kubeconfig loses its series, a literal one becomes not_found", async (t) => {
  const home = await tempDir(t);
  const saved = process.env.HOME;
  process.env.HOME = home;
  t.teardown(() => {
    process.env.HOME = saved;
  });
  await mkdir(join(home, ".kube"));
  await mkdir(join(home, "etc"));
  const ca = b64((await makeCert({ serial: "9c0001" })).pem);
  await writeFile(join(home, ".kube", "config"), kubeconfig([{ name: "home", caData: ca }], []));
  await writeFile(join(home, "etc", "admin.conf"), kubeconfig([{ name: "admin", caData: ca }], []));
  await writeFile(join(home, "etc", "skip.conf"), kubeconfig([{ name: "skip", caData: ca }], []));
  const h = harness(t, [group(["~/.kube/config", "~/etc/*.conf"], ["skip.conf"])]);
  await h.scan();
  t.same(h.view(join(home, ".kube", "config")), { "clusters/home": ["9c0001"] });
  t.same(h.view(join(home, "etc", "admin.conf")), { "clusters/admin": ["9c0001"] });
  t.equal(h.inventory.size, 2, "the excluded file is not read");

  await rm(join(home, "etc", "admin.conf"));
  await rm(join(home, ".kube", "config"));
  await h.scan();
  t.same(h.view(join(home, "etc", "admin.conf")), {});
  t.same(h.view(join(home, ".kube", "config")), { "": "error:not_found" });
});

t.test("an unreadable or oversized kubeconfig is one error location", async (t) => {
  const dir = await tempDir(t);
  await mkdir(join(dir, "folder.conf"));
  await writeFile(join(dir, "big.conf"), kubeconfig([{ name: "c", caData: b64((await makeCert()).pem) }], []));
  const h = harness(t, [group([`${dir}/folder.conf`, `${dir}/big.conf`])], 200);
  await h.scan();
  t.same(h.view(join(dir, "folder.conf")), { "": "error:unreadable" });
  t.same(h.view(join(dir, "big.conf")), { "": "error:too_large" });
  t.equal(h.source.reader.reads, 0);
});

t.test("parseKubeconfig: pure, for kubeconfigs held in Kubernetes objects", async (t) => {
  const cert = await makeCert();
  const text = kubeconfig([{ name: "inline", caData: b64(cert.pem) }, { name: "by-file", caFile: "ca.crt" }], [{ name: "u", certFile: "/abs/u.crt" }]);

  const withDir = parseKubeconfig(text, "/etc/kubernetes");
  t.same(
    withDir.map((e) => [e.key, e.kind, e.kind === "file" ? e.path : ""]),
    [
      ["clusters/inline", "data", ""],
      ["clusters/by-file", "file", "/etc/kubernetes/ca.crt"],
      ["users/u", "file", "/abs/u.crt"],
    ],
  );
  const inline = withDir[0];
  t.equal(inline?.kind === "data" && Buffer.from(inline.bytes).toString(), cert.pem);

  const fromSecret = parseKubeconfig(Buffer.from(text), null);
  t.same(
    fromSecret.map((e) => [e.key, e.kind === "error" ? e.error.reason : e.kind]),
    [
      ["clusters/inline", "data"],
      ["clusters/by-file", "file_reference_not_allowed"],
      ["users/u", "file_reference_not_allowed"],
    ],
  );
  t.notMatch(JSON.stringify(fromSecret), "TOP-SECRET");

  // -data wins over a file reference, as in client-go; base64 may be wrapped.
  const both = parseKubeconfig(
    `clusters:\n- name: x\n  cluster:\n    certificate-authority: nope.crt\n    certificate-authority-data: |\n      ${b64(cert.pem).replace(/.{60}/g, "$&\n      ")}\n`,
    null,
  );
  t.same(
    both.map((e) => e.kind),
    ["data"],
  );

  const bad = (input: string | Uint8Array): string => {
    try {
      parseKubeconfig(input, null);
      return "no error";
    } catch (err) {
      return err instanceof CertReadError ? err.reason : "other";
    }
  };
  t.equal(bad(Buffer.from([0x6b, 0x3a, 0x20, 0xff, 0xfe])), "bad_yaml", "not UTF-8");
  const laughs = ["kind: Config", "a: &a [x,x,x,x,x,x,x,x,x]"];
  for (const [name, prev] of [["b", "a"], ["c", "b"], ["d", "c"], ["e", "d"]]) laughs.push(`${name}: &${name} [${Array(9).fill(`*${prev}`).join(",")}]`);
  t.equal(bad(laughs.join("\n")), "bad_yaml", "alias expansion is bounded (billion laughs)");
  t.equal(bad("---\nkind: Config\n---\nkind: Config\n"), "bad_yaml", "two documents");
  t.equal(bad("kind: Config\nusers: 5\n"), "bad_yaml");

  const odd = parseKubeconfig("kind: Config\nclusters:\n- cluster: {}\n- name: n\n  cluster: text\n- name: empty\n  cluster:\n    certificate-authority-data: ''\n", "/x");
  t.same(
    odd.map((e) => [e.key, e.kind === "error" ? e.error.reason : e.kind]),
    [
      ["clusters/#0", "bad_yaml"],
      ["clusters/n", "bad_yaml"],
    ],
  );
  t.same(parseKubeconfig("kind: Config\nclusters: null\nusers: []\n", "/x"), [], "an empty kubeconfig has no entries and no error");
});

import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import t from "tap";
import { ConfigError, loadConfig, validateConfig } from "../src/config.js";

function errorOf(raw: unknown): string {
  try {
    validateConfig(raw);
  } catch (err) {
    if (err instanceof ConfigError) return err.message;
    throw err;
  }
  throw new Error("expected a ConfigError");
}

t.test("an empty config gives the documented defaults", async (t) => {
  const config = validateConfig({});
  t.same(config.listen, { address: "0.0.0.0", port: 9798 });
  t.equal(config.logLevel, "info");
  t.same(config.intervals, { files: 60, kubeconfigs: 60, endpoints: 300 });
  t.equal(config.limits.maxFileSize, 4 * 1024 * 1024);
  t.same([config.sources.files, config.sources.kubeconfigs, config.sources.endpoints], [[], [], []]);
  t.equal(config.sources.secrets.enabled, false, "nothing talks to Kubernetes unless asked");
  t.same(config.sources.secrets.rules, [{ type: "kubernetes.io/tls", keys: ["tls.crt", "ca.crt"], format: "auto" }]);
  t.same(config.shard, { count: 1 });
  t.same(validateConfig(null), config, "an empty YAML document is an empty config");
});

t.test("durations and sizes take units", async (t) => {
  const config = validateConfig({ intervals: { files: "1h30m", kubeconfigs: "250ms", endpoints: 45 }, limits: { maxFileSize: "512KiB" } });
  t.same(config.intervals, { files: 5400, kubeconfigs: 0.25, endpoints: 45 });
  t.equal(config.limits.maxFileSize, 512 * 1024);
});

t.test("bad values are named by their path", async (t) => {
  t.equal(errorOf({ sources: { files: [{ paths: "/etc/*.crt" }] } }), "sources.files[0].paths: expected array");
  t.equal(errorOf({ sources: { files: [{ paths: [] }] } }), "sources.files[0].paths: Too small: expected array to have >=1 items");
  t.equal(errorOf({ listen: { port: "http" } }), "listen.port: expected number");
  t.equal(errorOf({ listen: { port: 70000 } }), "listen.port: Too big: expected number to be <=65535");
  t.match(errorOf({ intervals: { files: "3 days" } }), /^intervals\.files: expected a duration/);
  t.match(errorOf({ limits: { maxFileSize: "4MB" } }), /^limits\.maxFileSize: expected a size/);
  t.match(errorOf({ logLevel: "loud" }), /^logLevel: /);
  t.equal(errorOf({ sources: { endpoints: [{ address: "example.com" }] } }), "sources.endpoints[0].address: expected host:port or [ipv6]:port");
  t.equal(errorOf([1, 2]), "(top level): expected object");
});

t.test("unknown keys are rejected at any depth", async (t) => {
  t.equal(errorOf({ listn: {} }), "listn: unknown key");
  t.equal(errorOf({ sources: { files: [{ paths: ["/a"], excludes: [] }] } }), "sources.files[0].excludes: unknown key");
  t.equal(errorOf({ a: 1, b: 2 }), "a: unknown key\nb: unknown key");
});

t.test("every problem is reported, not only the first", async (t) => {
  const message = errorOf({ listen: { port: "x" }, logLevel: 3 });
  t.match(message, "listen.port");
  t.match(message, "logLevel");
});

t.test("overrides win over the file and are validated the same way", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), "cee-config-"));
  const file = join(dir, "config.yaml");
  await writeFile(file, "listen:\n  port: 9000\nsources:\n  files:\n    - paths: [/etc/a.crt]\n");
  const config = loadConfig(file, { port: 9100, listenAddress: "127.0.0.1", files: ["/tmp/*.pem"], kubeconfigFiles: ["/k"] });
  t.same(config.listen, { address: "127.0.0.1", port: 9100 });
  t.same(config.sources.files.map((g) => g.paths), [["/etc/a.crt"], ["/tmp/*.pem"]]);
  t.same(config.sources.kubeconfigs, [{ paths: ["/k"], exclude: [] }]);
  t.throws(() => loadConfig(file, { logLevel: "loud" }), ConfigError);
});

t.test("an unreadable or invalid YAML file is a config error", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), "cee-config-"));
  t.throws(() => loadConfig(join(dir, "missing.yaml")), { name: "ConfigError", message: /cannot read config file/ });
  const broken = join(dir, "broken.yaml");
  await writeFile(broken, "listen: [unclosed\n");
  t.throws(() => loadConfig(broken), { name: "ConfigError", message: /not valid YAML/ });
});

import { execFileSync } from "node:child_process";
import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import t from "tap";
import { ConfigError, MAX_CONFIG_FILE_BYTES, loadConfig, validateConfig, type ConfigOverrides } from "../src/config.js";
import { DEFAULT_CONFIG } from "../src/config-defaults.js";
import { configWithoutFile } from "../src/config-overrides.js";
import { configErrorOf } from "./helpers/config-error.js";


t.test("an empty config gives the documented defaults", async (t) => {
  const config = validateConfig({});
  t.same(config.listen, { address: "0.0.0.0", port: 9798 });
  t.equal(config.logLevel, "info");
  t.equal(config.logFormat, "json");
  t.same(config.intervals, { files: 60, kubeconfigs: 60, endpoints: 300 });
  t.equal(config.limits.maxFileSize, 4 * 1024 * 1024);
  t.same([config.sources.files, config.sources.kubeconfigs, config.sources.endpoints], [[], [], []]);
  t.equal(config.sources.secrets.enabled, false, "nothing talks to Kubernetes unless asked");
  t.same(config.sources.secrets.rules, [{ type: "kubernetes.io/tls", keys: ["tls.crt", "ca.crt"], format: "auto", presented: [{ certificate: "tls.crt", privateKey: "tls.key", ca: "ca.crt" }] }]);
  t.same(config.checks, { privateKeys: true, chains: true, publicRoots: true, trustBundles: [] }, "key and chain checks are on, anchored by Node's roots");
  t.same(config.shard, { count: 1 });
  t.same(validateConfig(null), config, "an empty YAML document is an empty config");
});

t.test("durations and sizes take units", async (t) => {
  const config = validateConfig({ intervals: { files: "1h30m", kubeconfigs: "1500ms", endpoints: 45 }, limits: { maxFileSize: "512KiB" } });
  t.same(config.intervals, { files: 5400, kubeconfigs: 1.5, endpoints: 45 });
  t.equal(config.limits.maxFileSize, 512 * 1024);
});

t.test("bad values are named by their path", async (t) => {
  t.equal(configErrorOf({ sources: { files: [{ paths: "/etc/*.crt" }] } }), "sources.files[0].paths: expected array");
  t.equal(configErrorOf({ sources: { files: [{ paths: [] }] } }), "sources.files[0].paths: Too small: expected array to have >=1 items");
  t.equal(configErrorOf({ listen: { port: "http" } }), "listen.port: expected number");
  t.equal(configErrorOf({ listen: { port: 70000 } }), "listen.port: Too big: expected number to be <=65535");
  t.match(configErrorOf({ intervals: { files: "3 days" } }), /^intervals\.files: expected a duration/);
  t.match(configErrorOf({ limits: { maxFileSize: "4MB" } }), /^limits\.maxFileSize: expected a size/);
  t.match(configErrorOf({ logLevel: "loud" }), /^logLevel: /);
  t.equal(configErrorOf({ sources: { endpoints: [{ address: "example.com" }] } }), "sources.endpoints[0].address: expected host:port or [ipv6]:port");
  t.equal(configErrorOf([1, 2]), "(top level): expected object");
});

t.test("every duration, size and count has a minimum and a maximum", async (t) => {
  // 0 would busy-loop; beyond Node's timer range (about 24.8 days) a timer fires after 1 ms.
  t.equal(configErrorOf({ intervals: { files: "0s" } }), 'intervals.files: must be between 1s and 1d, got "0s"');
  t.equal(configErrorOf({ intervals: { files: 0 } }), "intervals.files: must be between 1s and 1d, got 0");
  t.equal(configErrorOf({ intervals: { endpoints: "30d" } }), 'intervals.endpoints: must be between 1s and 1d, got "30d"');
  t.equal(configErrorOf({ intervals: { kubeconfigs: -5 } }), "intervals.kubeconfigs: must be between 1s and 1d, got -5");
  t.match(configErrorOf({ intervals: { files: Infinity } }), /^intervals\.files: /, "YAML .inf");
  t.match(configErrorOf({ kubernetes: { resyncInterval: "30d" } }), /^kubernetes\.resyncInterval: must be between/);
  t.match(configErrorOf({ kubernetes: { watchTimeout: "0s" } }), /^kubernetes\.watchTimeout: must be between/);
  t.match(configErrorOf({ kubernetes: { requestTimeout: "2h" } }), /^kubernetes\.requestTimeout: must be between/);
  t.match(configErrorOf({ kubernetes: { backoff: { initial: "0ms" } } }), /^kubernetes\.backoff\.initial: must be between/);
  t.equal(configErrorOf({ kubernetes: { backoff: { initial: "10s", max: "1s" } } }), "kubernetes.backoff.max: must not be below backoff.initial");
  t.match(configErrorOf({ probe: { timeout: "1h" } }), /^probe\.timeout: must be between/);
  t.match(configErrorOf({ probe: { connectTimeout: 0 } }), /^probe\.connectTimeout: must be between/);
  t.match(configErrorOf({ sources: { endpoints: [{ address: "a:1", timeout: "0s" }] } }), /^sources\.endpoints\[0\]\.timeout: must be between/);
  t.match(configErrorOf({ limits: { parseTimeout: "10m" } }), /^limits\.parseTimeout: must be between/);
  t.match(configErrorOf({ http: { scrapeTimeout: "0s" } }), /^http\.scrapeTimeout: must be between/);
  t.match(configErrorOf({ http: { shutdownTimeout: "1h" } }), /^http\.shutdownTimeout: must be between/);
  t.match(configErrorOf({ limits: { maxFileSize: 0 } }), /^limits\.maxFileSize: must be between 1024 and/);
  t.match(configErrorOf({ limits: { maxFileSize: "1GiB" } }), /^limits\.maxFileSize: must be between/);
  t.match(configErrorOf({ limits: { maxBytesPerLocation: "512B" } }), /^limits\.maxBytesPerLocation: must be between/);
  t.match(configErrorOf({ limits: { maxCertificatesPerLocation: 0 } }), /^limits\.maxCertificatesPerLocation: Too small/);
  t.match(configErrorOf({ limits: { maxLabelValueLength: 10 } }), /^limits\.maxLabelValueLength: Too small/);
  t.match(configErrorOf({ limits: { parseCacheEntries: 1e9 } }), /^limits\.parseCacheEntries: Too big/);
  t.match(configErrorOf({ probe: { concurrency: 100000 } }), /^probe\.concurrency: Too big/);
  t.match(configErrorOf({ http: { maxConcurrentScrapes: 0 } }), /^http\.maxConcurrentScrapes: Too small/);
  t.match(configErrorOf({ kubernetes: { pageSize: 0 } }), /^kubernetes\.pageSize: Too small/);
  t.match(configErrorOf({ intervals: { files: "9".repeat(100) + "s" } }), /^intervals\.files: /, "an absurdly long string is refused");
  const limits = validateConfig({}).limits;
  t.same(limits, {
    maxFileSize: 4 * 1024 * 1024,
    parseCacheEntries: 20000,
    maxCertificatesPerLocation: 1000,
    maxLabelValueLength: 1024,
    maxBytesPerLocation: 1024 * 1024,
    pkcs12MaxIterations: 200000,
    parseTimeout: 5,
    maxGlobEntries: 100000,
  });
});

t.test("the configuration file is read up to a size cap, never from a FIFO", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), "cee-config-"));
  const large = join(dir, "large.yaml");
  await writeFile(large, `# ${"x".repeat(MAX_CONFIG_FILE_BYTES)}\nlogLevel: info\n`);
  t.throws(() => loadConfig(large), { name: "ConfigError", message: `config file ${large} is larger than ${MAX_CONFIG_FILE_BYTES} bytes` });
  const fifo = join(dir, "fifo.yaml");
  execFileSync("mkfifo", [fifo]);
  t.throws(() => loadConfig(fifo), { name: "ConfigError", message: /not a regular file/ }, "a FIFO is refused at once, not waited on");
  t.throws(() => loadConfig(dir), { name: "ConfigError", message: /cannot read config file/ }, "a directory");
});

t.test("YAML duplicate keys are found in linear time and refused", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), "cee-config-"));
  const file = join(dir, "dup.yaml");
  await writeFile(file, "logLevel: info\nlisten:\n  port: 1\nlogLevel: warn\n");
  t.throws(() => loadConfig(file), { name: "ConfigError", message: /not valid YAML: DUPLICATE_KEY at line 4/ });
  // 20,000 keys: the yaml library's own check compares each with every other; ours uses a Set.
  const many = join(dir, "many.yaml");
  await writeFile(many, Array.from({ length: 20000 }, (_, i) => `k${i}: ${i}`).join("\n") + "\nk0: again\n");
  t.throws(() => loadConfig(many), { name: "ConfigError", message: /DUPLICATE_KEY at line 20001/ });
});

t.test("unknown keys are rejected at any depth", async (t) => {
  t.equal(configErrorOf({ listn: {} }), "listn: unknown key");
  t.equal(configErrorOf({ sources: { files: [{ paths: ["/a"], excludes: [] }] } }), "sources.files[0].excludes: unknown key");
  t.equal(configErrorOf({ a: 1, b: 2 }), "a: unknown key\nb: unknown key");
});

t.test("every problem is reported, not only the first", async (t) => {
  const message = configErrorOf({ listen: { port: "x" }, logLevel: 3 });
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
  t.equal(loadConfig(file, { logFormat: "logfmt" }).logFormat, "logfmt");
  t.throws(() => loadConfig(file, { logFormat: "xml" }), { name: "ConfigError", message: /^logFormat: / });
});

t.test("the log format is json or logfmt", async (t) => {
  t.equal(validateConfig({ logFormat: "logfmt" }).logFormat, "logfmt");
  t.match(configErrorOf({ logFormat: "text" }), /^logFormat: /);
});

t.test("an unreadable or invalid YAML file is a config error", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), "cee-config-"));
  t.throws(() => loadConfig(join(dir, "missing.yaml")), { name: "ConfigError", message: /cannot read config file/ });
  const broken = join(dir, "broken.yaml");
  await writeFile(broken, "listen: [unclosed\n");
  t.throws(() => loadConfig(broken), { name: "ConfigError", message: /not valid YAML/ });
});

t.test("without a file, the defaults with the overrides are what the schema makes of them, or the schema is asked", async (t) => {
  t.same(configWithoutFile({}), validateConfig({}), "the defaults are the schema's, every one");
  const long = (length: number) => "a".repeat(length);
  const within: ConfigOverrides[] = [
    { files: ["/etc/ssl/one.crt", "/etc/**/*.pem"], logLevel: "error" },
    { kubeconfigFiles: ["~/.kube/config"], kubeconfig: "/k", kubeContext: "kind" },
    { listenAddress: "127.0.0.1", port: 0, logFormat: "logfmt" },
    { listenAddress: long(253), port: 65535, files: Array.from({ length: 1000 }, () => long(4096)), kubeContext: long(1024) },
    { files: [], kubeconfigFiles: [] },
  ];
  for (const overrides of within) t.same(configWithoutFile(overrides), loadConfig(undefined, overrides), JSON.stringify(overrides).slice(0, 80));
  const beyond: ConfigOverrides[] = [
    { logLevel: "loud" },
    { logFormat: "xml" },
    { listenAddress: "" },
    { listenAddress: long(254) },
    { port: 65536 },
    { port: 1.5 },
    { files: [""] },
    { files: [long(4097)] },
    { files: Array.from({ length: 1001 }, () => "/a") },
    { kubeconfigFiles: [long(4097)] },
    { kubeconfig: "" },
    { kubeContext: long(1025) },
  ];
  for (const overrides of beyond) {
    t.equal(configWithoutFile(overrides), undefined, JSON.stringify(overrides).slice(0, 80));
    t.throws(() => loadConfig(undefined, overrides), ConfigError, "and the schema refuses it");
  }
  const config = configWithoutFile({ files: ["/a"] });
  config?.sources.files.push({ paths: ["/b"], exclude: [] });
  t.same(DEFAULT_CONFIG.sources.files, [], "each configuration is a copy of the defaults");
});

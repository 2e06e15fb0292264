/**
 * STARTTLS probes (src/probe/starttls/) against real servers from Debian packages, each started here
 * in the foreground on 127.0.0.1 with a configuration and data directory of its own and a
 * certificate chain made at test time: exim4 (SMTP; a second port where it does not advertise
 * STARTTLS), dovecot (IMAP and POP3), vsftpd (FTP AUTH TLS), slapd (LDAP; a second slapd without TLS
 * refuses StartTLS), postgres (PostgreSQL SSLRequest) and mariadbd (the MySQL protocol's SSLRequest).
 * Each real server presents leaf + intermediate; the probe trusts only the test root.
 *
 * Small Node peers (test/helpers/starttls-servers.ts) play what no real server can be made to do on
 * demand: refuse in each protocol's own words, stay silent, talk without end, announce a huge length.
 *
 * The tests run as root in CI; servers that refuse root run as their Debian system users (postgres,
 * mysql; exim reads its key and writes its spool as Debian-exim). A missing server binary fails the
 * test: .ci/run installs them. The servers start in parallel.
 */
import { spawn, spawnSync } from "node:child_process";
import { once } from "node:events";
import { X509Certificate } from "node:crypto";
import { existsSync, readdirSync } from "node:fs";
import { chmod, chown, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { connect as netConnect, createServer as createNetServer, type AddressInfo, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import t, { type Test } from "tap";
import { makeCert, makeChain, privateKeyPem } from "../scripts/certgen.js";
import { ParseCache } from "../src/certs/cache.js";
import { validateConfig } from "../src/config.js";
import { Health } from "../src/health.js";
import { Inventory } from "../src/inventory.js";
import type { ProbeProtocol } from "../src/probe/protocols.js";
import { probeTls, tlsContext, type TlsProbeResult } from "../src/probe/tls.js";
import { transportFor } from "../src/probe/transport.js";
import { EndpointSource } from "../src/sources/endpoints.js";
import { SourceContext } from "../src/sources/source.js";
import { freePort } from "./helpers/net.js";
import { start, stop, waitFor, type Started } from "./helpers/processes.js";
import { flood, onLines, scriptedServer, smtpServer, upgrade, type ScriptedServer } from "./helpers/starttls-servers.js";
import { silentServer } from "./helpers/tls-servers.js";

const { root, intermediate } = await makeChain("localhost");
const trustRoot = tlsContext({ ca: [root.pem], systemRoots: false });

/** A leaf named after the server that presents it, valid for localhost, with its intermediate. */
async function credentials(name: string): Promise<{ chain: string; key: string; cn: string }> {
  const cn = `${name}.starttls.test`;
  const leaf = await makeCert({ cn, issuer: intermediate, sans: ["localhost", "IP:127.0.0.1"], notAfterDays: 30 });
  return { chain: leaf.pem + intermediate.pem, key: await privateKeyPem(leaf), cn };
}

const dir = await mkdtemp(join(tmpdir(), "starttls-"));
// Servers that drop to their own users must reach their directories below this one.
await chmod(dir, 0o755);
t.teardown(() => rm(dir, { recursive: true, force: true }));

const started: Started[] = [];
t.teardown(() => Promise.all(started.map((s) => stop(s))));

/** The uid and gid of a system user the packages created. */
function account(user: string): { uid: number; gid: number } {
  const id = (flag: string) => Number(spawnSync("id", [flag, user], { encoding: "utf8" }).stdout.trim());
  const uid = id("-u");
  if (!Number.isInteger(uid) || uid <= 0) throw new Error(`no system user ${user}: is its Debian package installed?`);
  return { uid, gid: id("-g") };
}

/** A server binary: on PATH, or where Debian keeps it (PostgreSQL's are under /usr/lib/postgresql/<version>/bin). */
function binary(name: string): string {
  for (const path of (process.env.PATH ?? "").split(":").concat(["/usr/sbin", "/sbin"])) if (path && existsSync(join(path, name))) return join(path, name);
  if (existsSync("/usr/lib/postgresql")) {
    const versions = readdirSync("/usr/lib/postgresql").sort((a, b) => Number(b) - Number(a));
    for (const version of versions) if (existsSync(`/usr/lib/postgresql/${version}/bin/${name}`)) return `/usr/lib/postgresql/${version}/bin/${name}`;
  }
  throw new Error(`${name} is not installed (see .ci/run for its Debian package)`);
}

/** Writes a file owned by `owner` (a system user) with `mode`. */
async function put(path: string, content: string, mode = 0o644, owner?: { uid: number; gid: number }): Promise<string> {
  await writeFile(path, content, { mode });
  await chmod(path, mode);
  if (owner) await chown(path, owner.uid, owner.gid);
  return path;
}

/** True once something accepts TCP connections on 127.0.0.1:port. */
function accepting(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = netConnect({ host: "127.0.0.1", port });
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

/** Starts `command` in the foreground, kept for teardown, and waits until `port` accepts. */
async function run(name: string, command: string, args: string[], port: number, ready?: RegExp): Promise<Started> {
  const child = start(name, command, args);
  started.push(child);
  await waitFor(name, 60_000, async () => (ready ? ready.test(child.output()) : true) && (await accepting(port)), child);
  return child;
}

/** Runs a command to completion (as `user` when given); rejects with its output when it fails. */
async function runOnce(name: string, command: string, args: string[], user?: { uid: number; gid: number }): Promise<void> {
  const child = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"], ...(user ? { uid: user.uid, gid: user.gid } : {}), env: { ...process.env, LC_ALL: "C" } });
  let output = "";
  const keep = (chunk: Buffer) => void (output = (output + chunk.toString()).slice(-10_000));
  child.stdout.on("data", keep);
  child.stderr.on("data", keep);
  const timer = setTimeout(() => child.kill("SIGKILL"), 60_000);
  const [code, signal] = (await once(child, "exit")) as [number | null, string | null];
  clearTimeout(timer);
  if (code !== 0) throw new Error(`${name} failed (${code ?? signal}): ${output}`);
}

interface RealServer {
  cn: string;
  port: number;
  /** A second port of the same kind of server that does not offer or refuses STARTTLS. */
  refusing?: number;
}

async function exim(): Promise<RealServer> {
  const { chain, key, cn } = await credentials("smtp");
  const exim = account("Debian-exim");
  const base = join(dir, "exim");
  for (const sub of ["", "/spool", "/log"]) await mkdir(base + sub, { recursive: true });
  await chown(join(base, "spool"), exim.uid, exim.gid);
  await chown(join(base, "log"), exim.uid, exim.gid);
  const [port, refusing] = [await freePort(), await freePort()];
  const config = await put(
    join(base, "exim.conf"),
    [
      "keep_environment =",
      "primary_hostname = mail.starttls.test",
      "local_interfaces = 127.0.0.1",
      `daemon_smtp_ports = ${port} : ${refusing}`,
      `pid_file_path = ${base}/exim.pid`,
      `spool_directory = ${base}/spool`,
      `log_file_path = ${base}/log/%slog`,
      // The second port does not advertise STARTTLS.
      `tls_advertise_hosts = \${if eq{$received_port}{${refusing}}{}{*}}`,
      `tls_certificate = ${await put(join(base, "chain.pem"), chain)}`,
      `tls_privatekey = ${await put(join(base, "key.pem"), key, 0o600, exim)}`,
      "begin acl",
      "begin routers",
      "begin transports",
      "",
    ].join("\n"),
  );
  await run("exim4", binary("exim4"), ["-bdf", "-C", config], port);
  return { cn, port, refusing };
}

async function dovecot(): Promise<{ imap: RealServer; pop3: RealServer }> {
  const { chain, key, cn } = await credentials("dovecot");
  const base = join(dir, "dovecot");
  await mkdir(base, { recursive: true });
  const [imap, pop3] = [await freePort(), await freePort()];
  const config = await put(
    join(base, "dovecot.conf"),
    `base_dir = ${base}/run
state_dir = ${base}/state
log_path = /dev/stderr
protocols = imap pop3
listen = 127.0.0.1
ssl = yes
ssl_cert = <${await put(join(base, "chain.pem"), chain)}
ssl_key = <${await put(join(base, "key.pem"), key, 0o600)}
passdb {
  driver = static
  args = nopassword=y
}
userdb {
  driver = static
  args = uid=nobody gid=nogroup home=${base}/home
}
service imap-login {
  inet_listener imap {
    port = ${imap}
  }
  inet_listener imaps {
    port = 0
  }
}
service pop3-login {
  inet_listener pop3 {
    port = ${pop3}
  }
  inet_listener pop3s {
    port = 0
  }
}
`,
  );
  const child = await run("dovecot", binary("dovecot"), ["-F", "-c", config], imap);
  await waitFor("dovecot pop3", 30_000, () => accepting(pop3), child);
  return { imap: { cn, port: imap }, pop3: { cn, port: pop3 } };
}

async function vsftpd(): Promise<RealServer> {
  const { chain, key, cn } = await credentials("ftp");
  const base = join(dir, "vsftpd");
  await mkdir(join(base, "empty"), { recursive: true });
  const port = await freePort();
  const config = await put(
    join(base, "vsftpd.conf"),
    [
      "listen=YES",
      "listen_ipv6=NO",
      "background=NO",
      "listen_address=127.0.0.1",
      `listen_port=${port}`,
      "ssl_enable=YES",
      `rsa_cert_file=${await put(join(base, "chain.pem"), chain)}`,
      `rsa_private_key_file=${await put(join(base, "key.pem"), key, 0o600)}`,
      `secure_chroot_dir=${base}/empty`,
      // No namespaces or seccomp: they need privileges a container may not grant.
      "isolate=NO",
      "isolate_network=NO",
      "seccomp_sandbox=NO",
      "anonymous_enable=YES",
      `anon_root=${base}/empty`,
      "local_enable=NO",
      "",
    ].join("\n"),
  );
  await run("vsftpd", binary("vsftpd"), [config], port);
  return { cn, port };
}

async function slapd(): Promise<RealServer> {
  const { chain, key, cn } = await credentials("ldap");
  const base = join(dir, "slapd");
  await mkdir(base, { recursive: true });
  const [port, refusing] = [await freePort(), await freePort()];
  const withTls = await put(
    join(base, "slapd.conf"),
    `include /etc/ldap/schema/core.schema
pidfile ${base}/slapd.pid
TLSCertificateFile ${await put(join(base, "chain.pem"), chain)}
TLSCertificateKeyFile ${await put(join(base, "key.pem"), key, 0o600)}
`,
  );
  // The same server without TLS configured: it refuses StartTLS.
  const withoutTls = await put(join(base, "plain.conf"), `include /etc/ldap/schema/core.schema\npidfile ${base}/plain.pid\n`);
  // -d keeps slapd in the foreground.
  await Promise.all([
    run("slapd", binary("slapd"), ["-d", "0", "-f", withTls, "-h", `ldap://127.0.0.1:${port}/`], port),
    run("slapd without TLS", binary("slapd"), ["-d", "0", "-f", withoutTls, "-h", `ldap://127.0.0.1:${refusing}/`], refusing),
  ]);
  return { cn, port, refusing };
}

async function postgres(): Promise<RealServer> {
  const { chain, key, cn } = await credentials("postgres");
  const user = account("postgres");
  const base = join(dir, "postgres");
  await mkdir(base, { recursive: true });
  await chown(base, user.uid, user.gid);
  // initdb and postgres refuse to run as root.
  await runOnce("initdb", binary("initdb"), ["-D", `${base}/data`, "-A", "trust", "-U", "postgres", "--no-sync", "--no-instructions", "-E", "UTF8", "--locale=C"], user);
  const port = await freePort();
  const certFile = await put(join(base, "chain.pem"), chain, 0o644, user);
  const keyFile = await put(join(base, "key.pem"), key, 0o600, user);
  const child = start("postgres", "setpriv", [
    `--reuid=${user.uid}`,
    `--regid=${user.gid}`,
    "--clear-groups",
    binary("postgres"),
    "-D",
    `${base}/data`,
    "-c",
    "listen_addresses=127.0.0.1",
    "-p",
    String(port),
    "-c",
    `unix_socket_directories=${base}`,
    "-c",
    "ssl=on",
    "-c",
    `ssl_cert_file=${certFile}`,
    "-c",
    `ssl_key_file=${keyFile}`,
    "-c",
    "fsync=off",
  ]);
  started.push(child);
  await waitFor("postgres", 60_000, async () => /ready to accept connections/.test(child.output()) && (await accepting(port)), child);
  return { cn, port };
}

async function mariadb(): Promise<RealServer> {
  const { chain, key, cn } = await credentials("mysql");
  const user = account("mysql");
  const base = join(dir, "mariadb");
  await mkdir(join(base, "data"), { recursive: true });
  await chown(base, user.uid, user.gid);
  await chown(join(base, "data"), user.uid, user.gid);
  const port = await freePort();
  // An empty data directory and no grant tables: the server answers the handshake, which is all a probe needs.
  await run(
    "mariadbd",
    binary("mariadbd"),
    [
      "--no-defaults",
      `--datadir=${base}/data`,
      "--user=mysql",
      "--skip-grant-tables",
      "--bind-address=127.0.0.1",
      `--port=${port}`,
      `--socket=${base}/mysqld.sock`,
      `--pid-file=${base}/mysqld.pid`,
      `--ssl-cert=${await put(join(base, "chain.pem"), chain, 0o644, user)}`,
      `--ssl-key=${await put(join(base, "key.pem"), key, 0o600, user)}`,
      "--skip-log-bin",
      "--innodb-buffer-pool-size=8M",
      "--innodb-log-file-size=4M",
      "--innodb-data-file-path=ibdata1:4M:autoextend",
      "--innodb-temp-data-file-path=ibtmp1:4M:autoextend",
    ],
    port,
    /ready for connections/,
  );
  return { cn, port };
}

// Every real server starts at once; each test awaits only its own.
const servers = {
  smtp: exim(),
  dovecot: dovecot(),
  ftp: vsftpd(),
  ldap: slapd(),
  postgres: postgres(),
  mysql: mariadb(),
};
// A server that fails to start fails its tests, not the file's top level.
for (const promise of Object.values(servers)) promise.catch(() => undefined);

function probe(port: number, protocol: ProbeProtocol, options: { timeoutMs?: number; serverName?: string; proxyUrl?: string } = {}): Promise<TlsProbeResult> {
  return probeTls({
    host: "127.0.0.1",
    port,
    ...transportFor({ protocol, ...(options.proxyUrl ? { proxyUrl: options.proxyUrl } : {}) }, "127.0.0.1", port),
    serverName: options.serverName ?? "localhost",
    secureContext: trustRoot,
    connectTimeoutMs: 2000,
    timeoutMs: options.timeoutMs ?? 5000,
  });
}

function assertCertificate(t: Test, result: TlsProbeResult, cn: string): void {
  t.equal(result.error, undefined, `no error${result.error ? `: ${result.error.reason} ${result.error.message}` : ""}`);
  t.match(result.probe, { success: true, chainVerified: true, verifyError: "", hostnameMatch: true });
  t.match(result.probe.tlsVersion, /^TLSv1\.[23]$/, `TLS version ${result.probe.tlsVersion}`);
  t.equal(result.certificates.length, 2, "leaf and intermediate presented");
  const leaf = result.certificates[0];
  t.match(leaf ? new X509Certificate(leaf).subject : "", new RegExp(`CN=${cn.replace(/\./g, "\\.")}`), `the leaf made for the server: ${cn}`);
}

function assertFailure(t: Test, result: TlsProbeResult, reason: string, message?: RegExp): void {
  t.equal(result.probe.success, false, "probe failed");
  t.equal(result.error?.reason, reason, `reason ${reason}`);
  t.equal(result.probe.reason, reason);
  if (message) t.match(result.error?.message, message, "message");
  t.same(result.certificates, [], "no certificate");
}

t.test("real servers: the probe upgrades and reads the chain", async (t) => {
  const cases: [string, ProbeProtocol, () => Promise<RealServer>][] = [
    ["exim4 (SMTP)", "smtp", () => servers.smtp],
    ["dovecot (IMAP)", "imap", async () => (await servers.dovecot).imap],
    ["dovecot (POP3)", "pop3", async () => (await servers.dovecot).pop3],
    ["vsftpd (FTP)", "ftp", () => servers.ftp],
    ["slapd (LDAP)", "ldap", () => servers.ldap],
    ["postgres (PostgreSQL)", "postgres", () => servers.postgres],
    ["mariadbd (MySQL protocol)", "mysql", () => servers.mysql],
  ];
  await Promise.all(
    cases.map(([name, protocol, server]) =>
      t.test(name, async (t) => {
        const { port, cn } = await server();
        assertCertificate(t, await probe(port, protocol), cn);
      }),
    ),
  );
});

t.test("real servers that do not upgrade: starttls_error", async (t) => {
  await t.test("exim4 on a port where it does not advertise STARTTLS", async (t) => {
    const { refusing } = await servers.smtp;
    assertFailure(t, await probe(refusing as number, "smtp"), "starttls_error", /does not offer STARTTLS/);
  });
  await t.test("slapd without TLS configured", async (t) => {
    const { refusing } = await servers.ldap;
    assertFailure(t, await probe(refusing as number, "ldap"), "starttls_error", /refused StartTLS: resultCode \d+/);
  });
  await t.test("a TLS probe of a STARTTLS port is not TLS", async (t) => {
    const { port } = await servers.smtp;
    assertFailure(t, await probe(port, "tls", { timeoutMs: 3000 }), "not_tls");
  });
  await t.test("the wrong protocol's exchange", async (t) => {
    const { port } = await servers.smtp;
    assertFailure(t, await probe(port, "pop3"), "starttls_error", /not a POP3 greeting/);
  });
});

t.test("a static endpoint with protocol, through the configuration and the endpoint source", async (t) => {
  const { port, cn } = await servers.postgres;
  const caFile = await put(join(dir, "root.pem"), root.pem);
  const config = validateConfig({ sources: { endpoints: [{ address: `127.0.0.1:${port}`, serverName: "localhost", caFile, protocol: "postgres" }] } });
  t.equal(config.sources.endpoints[0]?.protocol, "postgres");
  t.throws(() => validateConfig({ sources: { endpoints: [{ address: "127.0.0.1:25", protocol: "gopher" }] } }), /sources\.endpoints\[0\]\.protocol/);
  const inventory = new Inventory();
  const ctx = new SourceContext(inventory, new ParseCache(100), new Health(inventory), pino({ level: "silent" }));
  const source = new EndpointSource(config.sources.endpoints, { intervalSeconds: 3600, jitter: 0, concurrency: 2, timeout: 5, connectTimeout: 2, maxFileSize: 1024 * 1024 }, ctx);
  t.teardown(() => source.stop());
  await source.scanOnce();
  const entry = inventory.get({ source: "endpoint", namespace: "", name: `127.0.0.1:${port}`, key: "localhost" });
  t.equal(entry?.probe?.success, true, "probed");
  t.equal(entry?.probe?.chainVerified, true);
  t.equal(entry?.certificates[0]?.subjectCN, cn);
});

t.test("through an HTTP CONNECT proxy: CONNECT first, then STARTTLS", async (t) => {
  const { port, cn } = await servers.smtp;
  const tunnels: string[] = [];
  const proxy = createNetServer((client) => {
    client.on("error", () => undefined);
    let head = "";
    const onData = (chunk: Buffer) => {
      head += chunk.toString("latin1");
      const end = head.indexOf("\r\n\r\n");
      if (end < 0) return;
      client.off("data", onData);
      const target = /^CONNECT (\S+):(\d+) /.exec(head);
      tunnels.push(target ? `${target[1]}:${target[2]}` : head.slice(0, 40));
      const upstream = netConnect({ host: target?.[1] ?? "127.0.0.1", port: Number(target?.[2]) });
      upstream.on("error", () => client.destroy());
      upstream.once("connect", () => {
        client.write("HTTP/1.1 200 Connection established\r\n\r\n");
        client.pipe(upstream).pipe(client);
      });
    };
    client.on("data", onData);
  });
  proxy.listen(0, "127.0.0.1");
  await new Promise((resolve) => proxy.once("listening", resolve));
  t.teardown(() => new Promise((resolve) => proxy.close(resolve)));
  const proxyUrl = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
  assertCertificate(t, await probe(port, "smtp", { proxyUrl }), cn);
  t.same(tunnels, [`127.0.0.1:${port}`], "one tunnel to the mail server");
});

/** A peer for one test, closed in its teardown. */
async function peer(t: Test, script: Parameters<typeof scriptedServer>[0]): Promise<ScriptedServer> {
  const server = await scriptedServer(script);
  t.teardown(() => server.close());
  return server;
}

const doubleTls = await credentials("double");

t.test("refusals in each protocol's own words: starttls_error with the server's answer", async (t) => {
  const cases: [string, ProbeProtocol, Parameters<typeof scriptedServer>[0], RegExp][] = [
    [
      "SMTP: STARTTLS answered 454",
      "smtp",
      (s) => {
        s.write("220 mail ESMTP\r\n");
        onLines(s, (line) => void s.write(line.startsWith("EHLO") ? "250-mail\r\n250 STARTTLS\r\n" : "454 4.7.0 TLS not available due to temporary reason\r\n"));
      },
      /answered STARTTLS with 454 "4\.7\.0 TLS not available/,
    ],
    ["SMTP: a 554 greeting", "smtp", (s) => s.write("554 5.3.2 no service here\r\n"), /greeted with 554/],
    ["SMTP: not SMTP", "smtp", (s) => s.write("SSH-2.0-OpenSSH_9.2\r\n"), /the greeting is not SMTP: "SSH-2\.0/],
    [
      "IMAP: STARTTLS answered BAD",
      "imap",
      (s) => {
        s.write("* OK [CAPABILITY IMAP4rev1] ready\r\n");
        onLines(s, () => void s.write("* BYE not today\r\nA1 BAD STARTTLS unavailable\r\n"));
      },
      /answered STARTTLS with "A1 BAD/,
    ],
    ["IMAP: a PREAUTH greeting", "imap", (s) => s.write("* PREAUTH logged in already\r\n"), /greeted with "\* PREAUTH/],
    [
      "POP3: STLS answered -ERR",
      "pop3",
      (s) => {
        s.write("+OK POP3 ready\r\n");
        onLines(s, () => void s.write("-ERR command not recognised\r\n"));
      },
      /answered STLS with "-ERR/,
    ],
    [
      "FTP: AUTH TLS answered 534",
      "ftp",
      (s) => {
        s.write("220-welcome\r\n some text\r\n220 ready\r\n");
        onLines(s, () => void s.write("534 Local policy on server does not allow TLS\r\n"));
      },
      /answered AUTH TLS with 534/,
    ],
    ["PostgreSQL: N", "postgres", (s) => s.once("data", () => s.write("N")), /does not accept TLS/],
    [
      "LDAP: a notice of disconnection",
      "ldap",
      (s) =>
        s.once("data", () => {
          // LDAPMessage { 0, ExtendedResponse { unavailable(52), "", "shutting down" } }
          const message = Buffer.from("shutting down");
          const op = Buffer.concat([Buffer.from([0x0a, 0x01, 52, 0x04, 0x00, 0x04, message.length]), message]);
          s.write(Buffer.concat([Buffer.from([0x30, 5 + op.length, 0x02, 0x01, 0x00, 0x78, op.length]), op]));
        }),
      /unsolicited notification \(resultCode 52\) "shutting down"/,
    ],
    [
      "FTP: 120, then 220, then AUTH TLS refused",
      "ftp",
      (s) => {
        s.write("120 ready in 1 minute\r\n220 ready now\r\n");
        onLines(s, () => void s.write("500 AUTH not understood\r\n"));
      },
      /answered AUTH TLS with 500/,
    ],
    ["FTP: a 421 greeting", "ftp", (s) => s.write("421 too many users\r\n"), /greeted with 421 "too many users", not 220/],
    ["POP3: an -ERR greeting", "pop3", (s) => s.write("-ERR go away\r\n"), /greeted with "-ERR go away"/],
    ["IMAP: not IMAP", "imap", (s) => s.write("220 mail ESMTP\r\n"), /not an IMAP greeting: "220 mail ESMTP"/],
    [
      "IMAP: an answer with another tag",
      "imap",
      (s) => {
        s.write("* OK ready\r\n");
        onLines(s, () => void s.write("B7 OK what\r\n"));
      },
      /not an IMAP answer to STARTTLS: "B7 OK what"/,
    ],
    ["SMTP: closed during the greeting", "smtp", (s) => s.end("220-hello\r\n"), /closed the connection/],
    ["PostgreSQL: an ErrorResponse", "postgres", (s) => s.once("data", () => s.write("EFATAL")), /answered the SSLRequest with an error/],
    [
      "MySQL: an ERR packet with an SQLSTATE",
      "mysql",
      (s) => {
        const payload = Buffer.concat([Buffer.from([0xff, 0x15, 0x04]), Buffer.from("#28000Access denied")]);
        s.write(Buffer.concat([Buffer.from([payload.length, 0, 0, 0]), payload]));
      },
      /error 1045 "Access denied"/,
    ],
    ["MySQL: a handshake cut short", "mysql", (s) => s.write(Buffer.from([6, 0, 0, 0, 10, 0x38, 0x2e, 0x30, 0, 1])), /cut short/],
    ["MySQL: no protocol 4.1", "mysql", (s) => s.write(mysqlHandshake(0x0800)), /does not speak protocol 4\.1/],
    ["MySQL: an empty packet", "mysql", (s) => s.write(Buffer.from([0, 0, 0, 0])), /empty packet/],
    ["MySQL: no CLIENT_SSL", "mysql", (s) => s.write(mysqlHandshake(0x0200 | 0x8000)), /does not offer TLS/],
    [
      "MySQL: an ERR packet",
      "mysql",
      (s) => {
        const payload = Buffer.concat([Buffer.from([0xff, 0x10, 0x04]), Buffer.from("Too many connections")]);
        s.write(Buffer.concat([Buffer.from([payload.length, 0, 0, 0]), payload]));
      },
      /refused the connection: error 1040 "Too many connections"/,
    ],
  ];
  for (const [name, protocol, script, message] of cases) {
    await t.test(name, async (t) => {
      const server = await peer(t, script);
      assertFailure(t, await probe(server.port, protocol), "starttls_error", message);
    });
  }
});

/** A Handshake v10 packet with these lower capability flags. */
function mysqlHandshake(capabilities: number): Buffer {
  const payload = Buffer.concat([Buffer.from([10]), Buffer.from("8.0.0-double\0"), Buffer.alloc(4), Buffer.alloc(8, 0x61), Buffer.from([0]), Buffer.from([capabilities & 0xff, capabilities >> 8, 33, 2, 0, 0, 0])]);
  return Buffer.concat([Buffer.from([payload.length, 0, 0, 0]), payload]);
}

t.test("a silent server: handshake_timeout at the deadline, for every protocol", async (t) => {
  const silent = await silentServer();
  t.teardown(() => silent.close());
  const protocols = ["smtp", "imap", "pop3", "ftp", "ldap", "postgres", "mysql"] as const;
  // All at once: each waits out its own deadline.
  const outcomes = await Promise.all(
    protocols.map(async (protocol) => {
      const begun = performance.now();
      const result = await probe(silent.port, protocol, { timeoutMs: 600 });
      return { protocol, result, elapsed: performance.now() - begun };
    }),
  );
  for (const { protocol, result, elapsed } of outcomes) {
    await t.test(protocol, async (t) => {
      assertFailure(t, result, "handshake_timeout", /did not finish within/);
      t.ok(elapsed >= 550 && elapsed < 1600, `gave up at the deadline (${Math.round(elapsed)} ms)`);
    });
  }
});

t.test("hostile peers fail fast with starttls_error, never at the deadline", async (t) => {
  const cases: [string, ProbeProtocol, Parameters<typeof scriptedServer>[0], RegExp][] = [
    ["SMTP: an endless multi-line greeting", "smtp", (s) => flood(s, "220-still greeting you\r\n"), /ran past 100 lines/],
    ["FTP: an endless multi-line greeting", "ftp", (s) => flood(s, "220-welcome, and\r\n"), /ran past 100 lines/],
    [
      "IMAP: untagged lines without end after STARTTLS",
      "imap",
      (s) => {
        s.write("* OK ready\r\n");
        s.once("data", () => flood(s, "* OK still thinking\r\n"));
      },
      /ran past 100 lines/,
    ],
    ["SMTP: a line without end", "smtp", (s) => flood(s, "220 xxxxxxxxxxxxxxxx"), /line longer than 2048 bytes/],
    ["IMAP: a line without end", "imap", (s) => flood(s, "* OK xxxxxxxxxxxxx"), /line longer than 2048 bytes/],
    ["POP3: a line without end", "pop3", (s) => flood(s, "+OK xxxxxxxxxxxxxx"), /line longer than 2048 bytes/],
    ["FTP: a line without end", "ftp", (s) => flood(s, "220 xxxxxxxxxxxxxxx"), /line longer than 2048 bytes/],
    ["MySQL: a 16 MiB packet announced", "mysql", (s) => s.write(Buffer.from([0xff, 0xff, 0xff, 0x00])), /packet of 16777215 bytes, more than 8192/],
    ["LDAP: a 2 GiB message announced", "ldap", (s) => s.once("data", () => s.write(Buffer.from([0x30, 0x84, 0x7f, 0xff, 0xff, 0xff]))), /message of 2147483647 bytes, more than 16384/],
    ["LDAP: not BER", "ldap", (s) => s.once("data", () => s.write("HTTP/1.1 400 Bad Request\r\n\r\n")), /not an LDAP message: it starts with byte 0x48/],
    ["LDAP: a length running past its message", "ldap", (s) => s.once("data", () => s.write(Buffer.from([0x30, 0x05, 0x02, 0x01, 0x01, 0x78, 0x7f]))), /not valid BER \(protocolOp\)/],
    ["PostgreSQL: not an answer to SSLRequest", "postgres", (s) => s.once("data", () => s.write("HTTP/1.1 400 Bad Request\r\n\r\n")), /not a PostgreSQL answer to SSLRequest: byte 0x48/],
    ["MySQL: not protocol 10", "mysql", (s) => s.write(Buffer.from([1, 0, 0, 0, 9])), /not a MySQL Handshake v10 packet \(protocol version 9\)/],
  ];
  for (const [name, protocol, script, message] of cases) {
    await t.test(name, async (t) => {
      const server = await peer(t, script);
      const begun = performance.now();
      const result = await probe(server.port, protocol, { timeoutMs: 5000 });
      const elapsed = performance.now() - begun;
      assertFailure(t, result, "starttls_error", message);
      // Long before the 5 s deadline, even on a busy machine.
      t.ok(elapsed < 2500, `failed in ${Math.round(elapsed)} ms`);
    });
  }
});

t.test("bytes after the go-ahead are the TLS handshake's, not the exchange's", async (t) => {
  // The server's go-ahead and, in the same segment, bytes that are not TLS: the handshake must see them.
  const server = await peer(t, (s) => {
    s.write("+OK ready\r\n");
    s.once("data", () => s.write("+OK begin TLS\r\nHTTP/1.1 400 Bad Request\r\n\r\n"));
  });
  const begun = performance.now();
  assertFailure(t, await probe(server.port, "pop3", { timeoutMs: 5000 }), "not_tls");
  t.ok(performance.now() - begun < 2500, "at once, not at the deadline");
});

t.test("an LDAP StartTLS response in long-form lengths, with a response name", async (t) => {
  // Some directories (Active Directory among them) write every length in four bytes.
  const long = (tag: number, content: Buffer): Buffer => {
    const length = Buffer.alloc(4);
    length.writeUInt32BE(content.length);
    return Buffer.concat([Buffer.from([tag, 0x84]), length, content]);
  };
  const oid = Buffer.from("1.3.6.1.4.1.1466.20037");
  const op = Buffer.concat([long(0x0a, Buffer.from([0])), long(0x04, Buffer.alloc(0)), long(0x04, Buffer.alloc(0)), long(0x8a, oid)]);
  const response = long(0x30, Buffer.concat([long(0x02, Buffer.from([1])), long(0x78, op)]));
  const server = await peer(t, (s) =>
    s.once("data", () => {
      s.write(response);
      upgrade(s, { cert: doubleTls.chain, key: doubleTls.key });
    }),
  );
  assertCertificate(t, await probe(server.port, "ldap"), doubleTls.cn);
});

t.test("the exchange's commands as the server receives them", async (t) => {
  const smtp = await smtpServer({ cert: doubleTls.chain, key: doubleTls.key });
  t.teardown(() => smtp.close());
  assertCertificate(t, await probe(smtp.port, "smtp"), doubleTls.cn);
  const said = smtp.received[0] ?? "";
  t.ok(said.startsWith("EHLO [127.0.0.1]\r\nSTARTTLS\r\n"), `EHLO with an address literal, then STARTTLS: ${JSON.stringify(said.slice(0, 40))}`);
  t.equal(said.charCodeAt("EHLO [127.0.0.1]\r\nSTARTTLS\r\n".length), 0x16, "then the ClientHello, a TLS handshake record");

  const requests: Buffer[] = [];
  const mysqlPeer = await peer(t, (s: Socket) => {
    s.write(mysqlHandshake(0x0200 | 0x0800 | 0x8000));
    s.once("data", (chunk: Buffer) => {
      requests.push(chunk.subarray(0, 36));
      upgrade(s, { cert: doubleTls.chain, key: doubleTls.key }, chunk.subarray(36));
    });
  });
  const result = await probe(mysqlPeer.port, "mysql");
  t.equal(result.probe.success, true, `probe through a protocol-4.1 handshake ${result.error?.message ?? ""}`);
  const request = requests[0] as Buffer;
  t.equal(request.readUIntLE(0, 3), 32, "SSLRequest payload of 32 bytes");
  t.equal(request[3], 1, "sequence 1");
  t.ok(request.readUInt32LE(4) & 0x0800, "CLIENT_SSL");
  t.ok(request.readUInt32LE(4) & 0x0200, "CLIENT_PROTOCOL_41");
  t.equal(request[12], 33, "the server's character set");
  t.ok(request.subarray(13, 36).equals(Buffer.alloc(23)), "23 zero bytes");
});

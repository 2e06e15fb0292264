/**
 * OCSP stapling, against OpenSSL on both sides: a CA and its leaves made with `openssl` at test
 * time, `openssl ocsp` answering from an index.txt CA database (one leaf valid, one revoked, one it
 * has never heard of), and `openssl s_server -status` stapling what it fetched, over TLS 1.3 and 1.2.
 * Also a server that staples nothing, staples that are not what they claim (a response for another
 * certificate, tryLater, a successful response with garbage inside, random bytes from a Node server),
 * the bounded parser alone on every prefix and every byte changed, and the series an exporter sends.
 *
 * Loopback only. `openssl ocsp -port` listens on every interface (its `-port` takes no address), so
 * the responder's HTTP side is a small server on 127.0.0.1 that hands each request to one run of
 * `openssl ocsp -index … -reqin … -respout …`: OpenSSL still decides and signs every answer. Every
 * wait is bounded; every child is stopped in teardown.
 */
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createServer as createTlsServer } from "node:tls";
import { promisify } from "node:util";
import t, { type Test } from "tap";
import { Exporter } from "../src/app.js";
import { validateConfig } from "../src/config.js";
import { createLogger } from "../src/log.js";
import { certificateSerial, MAX_OCSP_RESPONSE_BYTES, parseOcspResponse } from "../src/probe/ocsp.js";
import { probeTls, tlsContext, type TlsProbeResult } from "../src/probe/tls.js";
import { freePort } from "./helpers/net.js";
import { missing, start, stop, waitFor, type Started } from "./helpers/processes.js";
import { closedPort } from "./helpers/tls-servers.js";

const execFileAsync = promisify(execFile);
const DAY = 86_400;

if (missing("openssl")) t.fail("openssl is not installed (Debian package openssl); this test never skips");

const dir = await mkdtemp(join(tmpdir(), "cee-ocsp-"));
t.teardown(() => rm(dir, { recursive: true, force: true }));

async function openssl(args: string[]): Promise<string> {
  const { stdout, stderr } = await execFileAsync("openssl", args, { cwd: dir, timeout: 20_000, encoding: "utf8" });
  return stdout + stderr;
}

/** OpenSSL's index.txt time form, YYMMDDHHMMSSZ. */
const indexTime = (unix: number): string => new Date(unix * 1000).toISOString().replace(/^\d\d(\d\d)-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d).*$/, "$1$2$3$4$5$6Z");

// The CA, which also signs the OCSP responses, and three leaves for localhost.
const LEAVES = { good: "1A2B3C01", revoked: "1A2B3C02", unlisted: "1A2B3C03" } as const;
type LeafName = keyof typeof LEAVES;
await openssl(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-subj", "/CN=OCSP Test CA", "-days", "60",
  "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature"]);
await writeFile(join(dir, "leaf.ext"), "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n");
for (const [name, serial] of Object.entries(LEAVES)) {
  await openssl(["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", `${name}.key`, "-out", `${name}.csr`, "-subj", "/CN=localhost"]);
  await openssl(["x509", "-req", "-in", `${name}.csr`, "-CA", "ca.pem", "-CAkey", "ca.key", "-set_serial", `0x${serial}`, "-days", "30", "-extfile", "leaf.ext", "-out", `${name}.pem`]);
}
const caPem = await readFile(join(dir, "ca.pem"), "utf8");
const now = Math.floor(Date.now() / 1000);
const revokedAt = now - 3 * 3600;
// The CA database `openssl ocsp -index` answers from: status, expiry, revocation time, serial, file, subject.
await writeFile(
  join(dir, "index.txt"),
  [`V\t${indexTime(now + 30 * DAY)}\t\t${LEAVES.good}\tunknown\t/CN=localhost`, `R\t${indexTime(now + 30 * DAY)}\t${indexTime(revokedAt)}\t${LEAVES.revoked}\tunknown\t/CN=localhost`].join("\n") + "\n",
);

interface Responder {
  url: string;
  /** The requests answered so far. */
  readonly answered: number;
  /** The last response sent, as DER. */
  readonly last: Buffer | undefined;
}

/** The OCSP responder: HTTP on 127.0.0.1, each answer made and signed by `openssl ocsp` from index.txt. */
async function startResponder(): Promise<Responder> {
  let answered = 0;
  let last: Buffer | undefined;
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > 64 * 1024) req.destroy();
      else chunks.push(chunk);
    });
    req.on("end", () => {
      // POST carries the DER request; GET has it base64 in the path (RFC 6960, A.1).
      const body = req.method === "POST" ? Buffer.concat(chunks) : Buffer.from(decodeURIComponent((req.url ?? "/").slice(1)), "base64");
      const n = answered + 1;
      writeFile(join(dir, `request-${n}.der`), body)
        .then(() => openssl(["ocsp", "-index", "index.txt", "-CA", "ca.pem", "-rsigner", "ca.pem", "-rkey", "ca.key", "-ndays", "2", "-reqin", `request-${n}.der`, "-respout", `response-${n}.der`]))
        .then(() => readFile(join(dir, `response-${n}.der`)))
        .then((der) => {
          answered = n;
          last = der;
          res.writeHead(200, { "content-type": "application/ocsp-response", "content-length": der.length }).end(der);
        })
        .catch((err: Error) => res.writeHead(500).end(err.message));
    });
  });
  server.listen(0, "127.0.0.1");
  await new Promise((resolve) => server.once("listening", resolve));
  t.teardown(() => new Promise((resolve) => server.close(resolve)));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`,
    get answered() {
      return answered;
    },
    get last() {
      return last;
    },
  };
}

const responder = await startResponder();

/** `openssl s_server` for a leaf on 127.0.0.1, ready to accept; stopped in teardown. */
async function sServer(t: Test, leaf: LeafName, options: string[]): Promise<{ port: number; server: Started }> {
  const port = await freePort();
  const server = start("s_server", "openssl", ["s_server", "-accept", `127.0.0.1:${port}`, "-cert", `${leaf}.pem`, "-key", `${leaf}.key`, "-CAfile", "ca.pem", "-www", ...options], dir);
  t.teardown(() => stop(server));
  await waitFor("s_server", 10_000, async () => server.output().includes("ACCEPT"), server);
  return { port, server };
}

/** `-status`: s_server asks the responder for its leaf's status at every handshake and staples the answer. */
const STAPLING = (): string[] => ["-status", "-status_url", responder.url, "-status_timeout", "5", "-status_verbose"];

function probe(port: number): Promise<TlsProbeResult> {
  return probeTls({ host: "127.0.0.1", port, serverName: "localhost", secureContext: tlsContext({ ca: [caPem], systemRoots: false }), connectTimeoutMs: 5000, timeoutMs: 8000 });
}

/** thisUpdate and nextUpdate as `openssl ocsp -resp_text` prints them, in Unix seconds. */
async function opensslTimes(der: Buffer): Promise<{ thisUpdate: number; nextUpdate: number; text: string }> {
  await writeFile(join(dir, "printed.der"), der);
  const text = await openssl(["ocsp", "-respin", "printed.der", "-resp_text", "-noverify"]);
  const time = (label: string): number => {
    const match = new RegExp(`${label}: (\\w{3}) +(\\d+) (\\d\\d):(\\d\\d):(\\d\\d) (\\d{4}) GMT`).exec(text);
    if (!match) throw new Error(`no ${label} in:\n${text}`);
    const [, month, day, hh, mm, ss, year] = match as unknown as string[];
    const monthIndex = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"].indexOf(month as string);
    return Date.UTC(Number(year), monthIndex, Number(day), Number(hh), Number(mm), Number(ss)) / 1000;
  };
  return { thisUpdate: time("This Update"), nextUpdate: time("Next Update"), text };
}

/** A DER element with a short or long length; enough to build test responses. */
function der(tag: number, ...content: Buffer[]): Buffer {
  const body = Buffer.concat(content);
  const length = body.length < 0x80 ? Buffer.from([body.length]) : body.length < 0x100 ? Buffer.from([0x81, body.length]) : Buffer.from([0x82, body.length >> 8, body.length & 0xff]);
  return Buffer.concat([Buffer.from([tag]), length, body]);
}
/** id-pkix-ocsp-basic, 1.3.6.1.5.5.7.48.1.1. */
const OCSP_BASIC_OID = der(0x06, Buffer.from("2b0601050507300101", "hex"));
/** A successful OCSPResponse of type basic whose response octets are `inner`. */
const successfulWith = (inner: Buffer): Buffer => der(0x30, der(0x0a, Buffer.from([0])), der(0xa0, der(0x30, OCSP_BASIC_OID, der(0x04, inner))));

for (const version of ["-tls1_3", "-tls1_2"]) {
  t.test(`a stapled good response over ${version.slice(1)}: status, thisUpdate and nextUpdate as OpenSSL prints them`, async (t) => {
    const { port, server } = await sServer(t, "good", [version, ...STAPLING()]);
    const before = responder.answered;
    const result = await probe(port);
    t.equal(result.probe.success, true, result.probe.message ?? "");
    t.equal(result.probe.chainVerified, true, "the chain still verifies");
    t.equal(result.certificates.length, 2, "the chain (leaf, CA) is still read from the wire");
    t.ok(responder.answered > before, `s_server asked the responder (${server.output().slice(-400)})`);
    const printed = await opensslTimes(responder.last as Buffer);
    t.match(printed.text, "Cert Status: good");
    t.same(result.probe.ocsp, { stapled: true, status: "good", thisUpdate: printed.thisUpdate, nextUpdate: printed.nextUpdate }, "what openssl printed");
    t.equal(printed.nextUpdate - printed.thisUpdate, 2 * DAY, "-ndays 2");
    t.ok(Math.abs(printed.thisUpdate - Date.now() / 1000) < 300, "thisUpdate is now");
  });
}

t.test("a revoked leaf: status revoked with its revocation time from index.txt", async (t) => {
  const { port } = await sServer(t, "revoked", STAPLING());
  const result = await probe(port);
  t.equal(result.probe.success, true, "the handshake itself succeeds: stapling informs, it does not refuse");
  const printed = await opensslTimes(responder.last as Buffer);
  t.match(printed.text, "Cert Status: revoked");
  t.same(result.probe.ocsp, { stapled: true, status: "revoked", thisUpdate: printed.thisUpdate, nextUpdate: printed.nextUpdate, revocationTime: revokedAt });
});

t.test("a leaf the responder does not know: status unknown", async (t) => {
  const { port } = await sServer(t, "unlisted", STAPLING());
  const result = await probe(port);
  t.equal(result.probe.success, true);
  t.match(result.probe.ocsp, { stapled: true, status: "unknown" });
  t.type(result.probe.ocsp?.nextUpdate, "number");
  t.equal(result.probe.ocsp?.revocationTime, undefined);
});

t.test("a server that staples nothing: stapled false, no status", async (t) => {
  for (const version of ["-tls1_3", "-tls1_2"]) {
    const { port } = await sServer(t, "good", [version]);
    const result = await probe(port);
    t.equal(result.probe.success, true);
    t.same(result.probe.ocsp, { stapled: false }, version);
  }
});

t.test("a probe that never reached the server's certificates has no OCSP facts", async (t) => {
  const port = await closedPort();
  const result = await probeTls({ host: "127.0.0.1", port, connectTimeoutMs: 1000, timeoutMs: 1500 });
  t.equal(result.probe.reason, "connection_refused");
  t.equal(result.probe.ocsp, undefined);
});

t.test("staples that say nothing about the leaf are malformed, and the probe goes on", async (t) => {
  // A genuine response, signed by the CA, for the good leaf: stapled by a server presenting another.
  await openssl(["ocsp", "-issuer", "ca.pem", "-cert", "good.pem", "-no_nonce", "-reqout", "good-request.der"]);
  await openssl(["ocsp", "-index", "index.txt", "-CA", "ca.pem", "-rsigner", "ca.pem", "-rkey", "ca.key", "-ndays", "2", "-reqin", "good-request.der", "-respout", "for-good.der"]);
  await writeFile(join(dir, "try-later.der"), der(0x30, der(0x0a, Buffer.from([3]))));
  await writeFile(join(dir, "garbage-inside.der"), successfulWith(Buffer.from("this is no BasicOCSPResponse")));
  const cases: [file: string, leaf: LeafName, detail: RegExp][] = [
    ["for-good.der", "unlisted", /no SingleResponse for the leaf's serial number/],
    ["try-later.der", "good", /responseStatus tryLater/],
    ["garbage-inside.der", "good", /ASN\.1|BasicOCSPResponse/],
  ];
  for (const [file, leaf, detail] of cases) {
    const { port } = await sServer(t, leaf, ["-status_file", file]);
    const result = await probe(port);
    t.equal(result.probe.success, true, `${file}: the probe succeeds`);
    t.equal(result.certificates.length, 2, `${file}: the chain (leaf, CA) is read`);
    t.match(result.probe.ocsp, { stapled: true, status: "malformed", detail }, file);
    t.equal(result.probe.ocsp?.nextUpdate, undefined, `${file}: no times`);
  }
});

// A TLS 1.3 staple travels in a certificate extension, so it cannot exceed 64 KiB: longer ones are the parser test's.
t.test("random bytes stapled by a Node server: malformed, no crash", async (t) => {
  const [cert, key] = await Promise.all([readFile(join(dir, "good.pem")), readFile(join(dir, "good.key"))]);
  for (const staple of [randomBytes(300), Buffer.from([0x30, 0x82, 0xff, 0xff, 0x0a]), Buffer.alloc(60_000, 0x30)]) {
    const server = createTlsServer({ cert, key });
    server.on("OCSPRequest", (_cert: Buffer, _issuer: Buffer, callback: (err: Error | null, response: Buffer) => void) => callback(null, staple));
    server.listen(0, "127.0.0.1");
    await new Promise((resolve) => server.once("listening", resolve));
    t.teardown(() => new Promise((resolve) => server.close(resolve)));
    const result = await probe((server.address() as AddressInfo).port);
    t.equal(result.probe.success, true, `${staple.length} bytes: the probe succeeds`);
    t.match(result.probe.ocsp, { stapled: true, status: "malformed" }, `${staple.length} bytes`);
  }
});

t.test("the parser alone: bounded, total, and matching by serial", async (t) => {
  // The last response the responder made is for some leaf: find which by trying each serial.
  const response = responder.last as Buffer;
  const leafDer = async (name: LeafName): Promise<Buffer> => Buffer.from((await readFile(join(dir, `${name}.pem`), "utf8")).replace(/-----[^-]+-----|\s/g, ""), "base64");
  const serials = await Promise.all((Object.keys(LEAVES) as LeafName[]).map(async (name) => certificateSerial(await leafDer(name))));
  t.same(serials, Object.values(LEAVES).map((serial) => serial.toLowerCase()), "the leaves' serials, as the parser keys them");
  const matching = serials.filter((serial) => parseOcspResponse(response, serial).status !== "malformed");
  t.equal(matching.length, 1, "exactly one leaf matches a response");
  const serial = matching[0];
  t.match(parseOcspResponse(response, undefined), { status: "malformed", detail: "no leaf to match" });
  t.equal(certificateSerial(Buffer.from("not a certificate")), undefined);
  t.match(parseOcspResponse(Buffer.alloc(0), serial), { status: "malformed", detail: "empty response" });
  t.match(parseOcspResponse(Buffer.alloc(MAX_OCSP_RESPONSE_BYTES + 1), serial), { status: "malformed", detail: /over/ });
  t.match(parseOcspResponse(Buffer.concat([response, Buffer.from([0])]), serial), { status: "malformed", detail: /trailing/ });
  let prefixes = 0;
  for (let length = 0; length < response.length; length++) if (parseOcspResponse(response.subarray(0, length), serial).status === "malformed") prefixes++;
  t.equal(prefixes, response.length, "every truncation is malformed");
  let mutations = 0;
  for (let i = 0; i < response.length; i++) {
    for (const value of [0x00, 0x80, 0xff]) {
      const changed = Buffer.from(response);
      changed[i] = value;
      parseOcspResponse(changed, serial); // must not throw
      mutations++;
    }
  }
  t.equal(mutations, response.length * 3, "no change of one byte throws");
});

t.test("the exporter sends the OCSP series of a stapled endpoint", async (t) => {
  const { port } = await sServer(t, "revoked", STAPLING());
  const exporter = await Exporter.create(
    validateConfig({ listen: { address: "127.0.0.1", port: 0 }, sources: { endpoints: [{ address: `127.0.0.1:${port}`, serverName: "localhost", caFile: join(dir, "ca.pem") }] } }),
    createLogger("silent"),
  );
  await exporter.serve();
  t.teardown(() => exporter.close());
  await exporter.scanOnce();
  const body = await (await fetch(`http://127.0.0.1:${exporter.port}/metrics`, { headers: { connection: "close" }, signal: AbortSignal.timeout(10_000) })).text();
  const at = `source="endpoint",namespace="",name="127.0.0.1:${port}",key="localhost"`;
  const printed = await opensslTimes(responder.last as Buffer);
  t.match(body, `cert_endpoint_ocsp_stapled{${at}} 1\n`);
  for (const [status, value] of [["good", 0], ["revoked", 1], ["unknown", 0], ["malformed", 0]] as const) {
    t.match(body, `cert_endpoint_ocsp_status{${at},status="${status}"} ${value}\n`, `status ${status} is ${value}`);
  }
  t.match(body, `cert_endpoint_ocsp_this_update_timestamp_seconds{${at}} ${printed.thisUpdate}\n`);
  t.match(body, `cert_endpoint_ocsp_next_update_timestamp_seconds{${at}} ${printed.nextUpdate}\n`);
  t.match(body, `cert_endpoint_ocsp_revocation_timestamp_seconds{${at}} ${revokedAt}\n`);
});

/**
 * One TLS probe of one endpoint: connect, handshake, read the chain the server presented, verify it.
 *
 * Chain order. The certificates are taken from the server's Certificate handshake message as it
 * crossed the wire, in the order the server sent them. Node's `getPeerCertificate(true)` is not used
 * for this because it re-sorts the peer's certificates by issuer, drops ones that do not link and
 * appends issuers from the local trust store that were never presented. The TCP stream is handed to
 * TLS through a small tap that keeps a copy of the bytes the server sent (bounded); TLS 1.2 and
 * earlier send the Certificate message in clear, and for TLS 1.3 the tap decrypts the server's
 * handshake records with the handshake traffic secret Node reports through its `keylog` event. The
 * tap also yields the certificates when the handshake fails after they arrived (a server demanding
 * a client certificate), which Node's own API cannot. Should the wire not parse (never seen, but a
 * cipher suite the tap does not know would do it) the probe falls back to Node's chain, which then
 * may be reordered or completed from the trust store.
 *
 * Verification is OpenSSL's, through Node: `authorized`/`authorizationError` of the socket, with the
 * system roots plus the configured CAs as trust anchors. The host name is checked separately with
 * `tls.checkServerIdentity` on the presented leaf, whether the chain verified or not.
 */
import { createDecipheriv, createHash, createHmac, X509Certificate } from "node:crypto";
import { isIP, Socket, connect as netConnect } from "node:net";
import { Duplex } from "node:stream";
import { checkServerIdentity, connect as tlsConnect, createSecureContext, rootCertificates, TLSSocket, type SecureContext } from "node:tls";
import type { ReadErrorReason } from "../errors.js";
import type { EndpointProbe } from "../model.js";

export interface TlsProbeOptions {
  /** A DNS name or an IP literal (IPv6 without brackets). */
  host: string;
  port: number;
  /** The name sent as SNI (only when it is not an IP literal) and checked against the leaf; defaults to `host`. */
  serverName?: string;
  /** Trust anchors beside the system roots, and the client certificate; see {@link tlsContext}. */
  secureContext?: SecureContext;
  /** Time allowed for DNS and TCP connect. */
  connectTimeoutMs: number;
  /** Time allowed for the handshake once connected; defaults to what is left of the deadline. */
  handshakeTimeoutMs?: number;
  /** The overall deadline of the probe. */
  timeoutMs: number;
  signal?: AbortSignal;
}

export interface TlsProbeResult {
  probe: EndpointProbe;
  /** The DER certificates the server presented, in the order it sent them; empty when none arrived. */
  certificates: Buffer[];
  /** Why the probe failed; absent on success. */
  error?: { reason: ReadErrorReason; message: string };
}

/** How long to wait for a server that asked for a client certificate to accept or refuse it. */
const POST_HANDSHAKE_WAIT_MS = 1000;

/** Bytes of server traffic kept for reading the chain; no sane chain comes near this. */
const MAX_CAPTURE = 256 * 1024;

/**
 * A secure context trusting the system roots plus `ca` (only `ca` when `systemRoots` is false),
 * optionally presenting a client certificate.
 */
export function tlsContext(options: { ca?: readonly (string | Buffer)[]; systemRoots?: boolean; cert?: string | Buffer; key?: string | Buffer } = {}): SecureContext {
  const systemRoots = options.systemRoots ?? true;
  const ca = systemRoots ? (options.ca?.length ? [...rootCertificates, ...options.ca] : undefined) : [...(options.ca ?? [])];
  return createSecureContext({ ...(ca ? { ca } : {}), ...(options.cert ? { cert: options.cert } : {}), ...(options.key ? { key: options.key } : {}) });
}

let defaultContext: SecureContext | undefined;

/** Host-name results by leaf and name: decoding the leaf is a good part of a probe's CPU. */
const hostMatches = new Map<string, boolean>();
const MAX_HOST_MATCHES = 10_000;

/** `tls.checkServerIdentity` on a DER leaf, remembered per (leaf, name). */
function matchesHost(leaf: Buffer, name: string): boolean {
  const key = createHash("sha256").update(leaf).digest("base64") + name;
  let match = hostMatches.get(key);
  if (match === undefined) {
    try {
      match = checkServerIdentity(name, new X509Certificate(leaf).toLegacyObject()) === undefined;
    } catch {
      match = false;
    }
    if (hostMatches.size >= MAX_HOST_MATCHES) hostMatches.delete(hostMatches.keys().next().value as string);
    hostMatches.set(key, match);
  }
  return match;
}

/** Probes one TLS endpoint. Never throws: every failure is a result with a reason. */
export async function probeTls(options: TlsProbeOptions): Promise<TlsProbeResult> {
  const run = new ProbeRun(options);
  return run.result;
}

const ERRNO_REASONS: Record<string, ReadErrorReason> = {
  ECONNREFUSED: "connection_refused",
  ECONNRESET: "connection_reset",
  EPIPE: "connection_reset",
  ENOTFOUND: "dns_error",
  EAI_AGAIN: "dns_error",
  EAI_NODATA: "dns_error",
  EAI_NONAME: "dns_error",
  EAI_FAIL: "dns_error",
  ETIMEDOUT: "connect_timeout",
  EHOSTUNREACH: "connection_refused",
  ENETUNREACH: "connection_refused",
};

type Phase = "connect" | "handshake" | "post-handshake" | "done";

class ProbeRun {
  readonly result: Promise<TlsProbeResult>;
  readonly #options: TlsProbeOptions;
  readonly #started = performance.now();
  readonly #serverName: string;
  #resolve!: (result: TlsProbeResult) => void;
  #phase: Phase = "connect";
  #raw: Socket | undefined;
  #tls: TLSSocket | undefined;
  #tap: WireTap | undefined;
  #looked = false;
  readonly #timers: NodeJS.Timeout[] = [];
  #ticket = false;
  /** What the socket said at secureConnect; read then because the handle is gone after an error. */
  #session: { authorized: boolean; authorizationError: string; protocol: string; cipher: string } | undefined;
  #onAbort = (): void => this.#fail("connection_reset", "probe aborted");

  constructor(options: TlsProbeOptions) {
    this.#options = options;
    this.#serverName = options.serverName ?? options.host;
    this.result = new Promise((resolve) => (this.#resolve = resolve));
    if (options.signal?.aborted) {
      this.#fail("connection_reset", "probe aborted");
      return;
    }
    options.signal?.addEventListener("abort", this.#onAbort, { once: true });
    this.#timer(Math.min(options.connectTimeoutMs, options.timeoutMs), () => {
      if (this.#phase !== "connect") return;
      if (!this.#looked && !isIP(options.host)) this.#fail("dns_error", `no DNS answer for ${options.host} within the connect timeout`);
      else this.#fail("connect_timeout", `no TCP connection within ${options.connectTimeoutMs} ms`);
    });
    this.#timer(options.timeoutMs, () => this.#onDeadline());
    this.#connect();
  }

  #timer(ms: number, fn: () => void): void {
    this.#timers.push(setTimeout(fn, Math.max(0, ms)));
  }

  #onDeadline(): void {
    if (this.#phase === "connect") this.#fail("connect_timeout", `no TCP connection within the ${this.#options.timeoutMs} ms deadline`);
    else if (this.#phase === "handshake") this.#fail("handshake_timeout", `no completed TLS handshake within ${this.#options.timeoutMs} ms`);
    else if (this.#phase === "post-handshake") this.#finishSecure();
  }

  #connect(): void {
    const raw = netConnect({ host: this.#options.host, port: this.#options.port });
    this.#raw = raw;
    raw.setNoDelay(true);
    raw.once("lookup", (err) => {
      if (!err) this.#looked = true;
    });
    raw.on("error", (err: NodeJS.ErrnoException) => {
      if (this.#phase === "connect") this.#fail(ERRNO_REASONS[err.code ?? ""] ?? "connection_reset", err.message);
    });
    raw.once("connect", () => {
      if (this.#phase !== "connect") return;
      this.#phase = "handshake";
      const remaining = this.#options.timeoutMs - (performance.now() - this.#started);
      const handshakeMs = Math.min(this.#options.handshakeTimeoutMs ?? remaining, remaining);
      this.#timer(handshakeMs, () => {
        if (this.#phase === "handshake") this.#fail("handshake_timeout", `no completed TLS handshake within ${Math.round(handshakeMs)} ms`);
      });
      this.#handshake(raw);
    });
  }

  #handshake(raw: Socket): void {
    const tap = new WireTap(raw);
    this.#tap = tap;
    const sni = isIP(this.#serverName) ? undefined : this.#serverName;
    const socket = tlsConnect({
      socket: tap,
      ...(sni ? { servername: sni } : {}),
      secureContext: this.#options.secureContext ?? (defaultContext ??= tlsContext()),
      rejectUnauthorized: false,
      // The host name is checked on the presented leaf instead (matchesHost).
      checkServerIdentity: () => undefined,
    });
    // Once a chain verifies, Node converts it whole into objects for checkServerIdentity, which
    // ignores them here: that conversion was a third of a probe's CPU. The wire gives the chain.
    socket.getPeerCertificate = (() => ({})) as TLSSocket["getPeerCertificate"];
    this.#tls = socket;
    socket.on("keylog", (line: Buffer) => tap.keylog(line));
    socket.on("error", (err: NodeJS.ErrnoException) => this.#onTlsError(err));
    socket.once("secureConnect", () => this.#onSecure());
    // A session ticket means the server took the handshake, client certificate included. Listening
    // from the start matters: Node only hands tickets to JS when a listener existed when they came.
    socket.once("session", () => {
      this.#ticket = true;
      if (this.#phase === "post-handshake") this.#finishSecure();
    });
    socket.once("data", () => {
      if (this.#phase === "post-handshake") this.#finishSecure();
    });
    socket.once("end", () => this.#onClosed());
    socket.once("close", () => this.#onClosed());
    socket.resume();
  }

  #onSecure(): void {
    if (this.#phase !== "handshake") return;
    const socket = this.#tls as TLSSocket;
    const cipher = socket.getCipher();
    this.#session = {
      authorized: socket.authorized,
      authorizationError: socket.authorized ? "" : String(socket.authorizationError ?? "UNKNOWN"),
      protocol: socket.getProtocol() ?? "",
      cipher: cipher?.standardName ?? cipher?.name ?? "",
    };
    // A server that asked for a client certificate may still refuse it once the client's side of
    // the handshake is done: in TLS 1.3 always after it (an alert answers the client's Finished),
    // and some servers (Node's own) complete a TLS 1.2 handshake and then drop the connection. A
    // session ticket or data means it was accepted; an alert, reset or close means refused; when
    // the server says nothing for a short while it is taken as accepted.
    if (this.#tap?.certificateRequested() && !this.#ticket) {
      this.#phase = "post-handshake";
      const remaining = this.#options.timeoutMs - (performance.now() - this.#started);
      this.#timer(Math.min(POST_HANDSHAKE_WAIT_MS, remaining), () => this.#finishSecure());
      return;
    }
    this.#finishSecure();
  }

  #onClosed(): void {
    if (this.#phase === "handshake") {
      this.#onTlsError(Object.assign(new Error("the server closed the connection during the handshake"), { code: "ECONNRESET" }));
    } else if (this.#phase === "post-handshake") {
      this.#fail("client_cert_required", "the server closed the connection after a handshake in which it asked for a client certificate");
    }
  }

  #finishSecure(): void {
    if (this.#phase === "done") return;
    const socket = this.#tls as TLSSocket;
    const certificates = this.#chain(socket);
    const probe = this.#probeFacts(certificates);
    probe.success = certificates.length > 0;
    this.#end({ probe, certificates, ...(probe.success ? {} : { error: { reason: "tls_error", message: "the server presented no certificate" } }) });
  }

  #onTlsError(err: NodeJS.ErrnoException): void {
    if (this.#phase === "done") return;
    const code = err.code ?? "";
    let reason: ReadErrorReason;
    if (this.#tap?.notTls()) reason = "not_tls";
    else if (this.#phase === "post-handshake") reason = "client_cert_required";
    // A server that asked for a client certificate and then alerts, resets or closes refused it.
    else if (/CERTIFICATE_REQUIRED/.test(code)) reason = "client_cert_required";
    else if (this.#tap?.certificateRequested() && (/ALERT/.test(code) || ERRNO_REASONS[code] === "connection_reset")) reason = "client_cert_required";
    else if (ERRNO_REASONS[code]) reason = ERRNO_REASONS[code] as ReadErrorReason;
    else reason = "tls_error";
    this.#fail(reason, err.message);
  }

  #fail(reason: ReadErrorReason, message: string): void {
    if (this.#phase === "done") return;
    const certificates = this.#tap?.certificates() ?? [];
    const probe = this.#probeFacts(certificates);
    probe.success = false;
    probe.reason = reason;
    probe.message = message;
    this.#end({ probe, certificates, error: { reason, message } });
  }

  /** The presented chain: from the wire, else from Node (see the module comment). */
  #chain(socket: TLSSocket): Buffer[] {
    const wire = this.#tap?.certificates() ?? [];
    if (wire.length > 0) return wire;
    const chain: Buffer[] = [];
    const seen = new Set<object>();
    let cert = TLSSocket.prototype.getPeerCertificate.call(socket, true) as (ReturnType<TLSSocket["getPeerCertificate"]> & { issuerCertificate?: object }) | undefined;
    for (let depth = 0; cert?.raw && depth < 32 && !seen.has(cert); depth++) {
      seen.add(cert);
      chain.push(cert.raw);
      cert = cert.issuerCertificate as typeof cert;
    }
    return chain;
  }

  #probeFacts(certificates: Buffer[]): EndpointProbe {
    const leaf = certificates[0];
    const hostnameMatch = leaf ? matchesHost(leaf, this.#serverName) : false;
    const session = this.#session;
    const chainVerified = session?.authorized === true;
    let verifyError = "";
    if (session && !chainVerified) verifyError = session.authorizationError;
    else if (session && !hostnameMatch) verifyError = "ERR_TLS_CERT_ALTNAME_INVALID";
    return {
      success: false,
      chainVerified,
      verifyError,
      hostnameMatch,
      tlsVersion: session?.protocol || this.#tap?.version() || "",
      cipher: session?.cipher ?? "",
      durationSeconds: (performance.now() - this.#started) / 1000,
    };
  }

  #end(result: TlsProbeResult): void {
    this.#phase = "done";
    result.probe.durationSeconds = (performance.now() - this.#started) / 1000;
    for (const timer of this.#timers) clearTimeout(timer);
    this.#options.signal?.removeEventListener("abort", this.#onAbort);
    this.#tls?.destroy();
    this.#raw?.destroy();
    this.#resolve(result);
  }
}

// ---------------------------------------------------------------------------------------------
// The wire tap: a pass-through Duplex over the TCP socket that keeps the server's bytes.

const HRR_RANDOM = "cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c";

const TLS13_SUITES: Record<number, { cipher: string; keyLength: number; hash: string }> = {
  0x1301: { cipher: "aes-128-gcm", keyLength: 16, hash: "sha256" },
  0x1302: { cipher: "aes-256-gcm", keyLength: 32, hash: "sha384" },
  0x1303: { cipher: "chacha20-poly1305", keyLength: 32, hash: "sha256" },
};

const VERSIONS: Record<number, string> = { 0x0301: "TLSv1", 0x0302: "TLSv1.1", 0x0303: "TLSv1.2", 0x0304: "TLSv1.3" };

interface WireFacts {
  certificates: Buffer[];
  certificateRequested: boolean;
  version: string;
}

class WireTap extends Duplex {
  readonly #raw: Socket;
  readonly #chunks: Buffer[] = [];
  #captured = 0;
  #secret: Buffer | undefined;
  #facts: WireFacts | undefined;
  #factsAt = -1;

  constructor(raw: Socket) {
    super({ allowHalfOpen: false });
    this.#raw = raw;
    raw.on("data", (chunk: Buffer) => {
      if (this.#captured < MAX_CAPTURE) {
        this.#chunks.push(chunk);
        this.#captured += chunk.length;
      }
      if (!this.push(chunk)) raw.pause();
    });
    raw.on("end", () => this.push(null));
    raw.on("error", (err) => this.destroy(err));
    raw.on("close", () => {
      if (!this.destroyed) this.destroy();
    });
  }

  override _read(): void {
    this.#raw.resume();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.#raw.write(chunk, callback);
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.#raw.end(callback);
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.#raw.destroy();
    callback(error);
  }

  keylog(line: Buffer): void {
    const text = line.toString("latin1");
    if (text.startsWith("SERVER_HANDSHAKE_TRAFFIC_SECRET ")) {
      const secret = text.trim().split(" ")[2];
      if (secret) this.#secret = Buffer.from(secret, "hex");
    }
  }

  /** True when the first bytes the server sent are not a TLS record (plain HTTP, SSH banner, …). */
  notTls(): boolean {
    const first = this.#chunks[0];
    if (!first || first.length === 0) return false;
    const type = first[0] as number;
    if (type < 20 || type > 24) return true;
    return first.length > 1 && first[1] !== 3;
  }

  certificates(): Buffer[] {
    return this.#read().certificates;
  }

  certificateRequested(): boolean {
    return this.#read().certificateRequested;
  }

  version(): string {
    return this.#read().version;
  }

  #read(): WireFacts {
    if (this.#facts && this.#factsAt === this.#chunks.length) return this.#facts;
    let facts: WireFacts;
    try {
      facts = parseServerFlight(Buffer.concat(this.#chunks), this.#secret);
    } catch {
      facts = { certificates: [], certificateRequested: false, version: "" };
    }
    this.#facts = facts;
    this.#factsAt = this.#chunks.length;
    return facts;
  }
}

/**
 * Reads the server's handshake messages from its raw byte stream. One pass: record bodies are copied
 * once into a buffer the size of the input (handshake bytes never outnumber the record bytes that
 * carry them), so a peer that splits its messages into one-byte records costs no more than one that
 * does not.
 */
export function parseServerFlight(bytes: Buffer, serverHandshakeSecret: Buffer | undefined): WireFacts {
  const facts: WireFacts = { certificates: [], certificateRequested: false, version: "" };
  const handshake = Buffer.allocUnsafe(bytes.length);
  let filled = 0;
  let consumed = 0;
  let tls13 = false;
  let suite = 0;
  let decrypt: ((header: Buffer, body: Buffer) => Buffer | undefined) | undefined;
  let offset = 0;
  let done = false;
  while (!done && offset + 5 <= bytes.length) {
    const type = bytes[offset] as number;
    const length = bytes.readUInt16BE(offset + 3);
    if (offset + 5 + length > bytes.length) break;
    const header = bytes.subarray(offset, offset + 5);
    const body = bytes.subarray(offset + 5, offset + 5 + length);
    offset += 5 + length;
    let plain: Buffer | undefined;
    if (type === 22) plain = body;
    else if (type === 23 && tls13) {
      decrypt ??= serverHandshakeSecret ? tls13Decrypter(serverHandshakeSecret, suite) : undefined;
      const inner = decrypt?.(header, body);
      if (!inner) break;
      let end = inner.length - 1;
      while (end >= 0 && inner[end] === 0) end--;
      if (end < 0 || inner[end] !== 22) break;
      plain = inner.subarray(0, end);
    } else continue;
    filled += plain.copy(handshake, filled);
    while (filled - consumed >= 4) {
      const msgType = handshake[consumed] as number;
      const msgLength = handshake.readUIntBE(consumed + 1, 3);
      if (filled - consumed < 4 + msgLength) break;
      const msg = handshake.subarray(consumed + 4, consumed + 4 + msgLength);
      consumed += 4 + msgLength;
      if (msgType === 2) {
        const hello = parseServerHello(msg);
        if (hello.retry) continue;
        facts.version = VERSIONS[hello.version] ?? "";
        tls13 = hello.version === 0x0304;
        suite = hello.suite;
      } else if (msgType === 13) {
        facts.certificateRequested = true;
      } else if (msgType === 11) {
        facts.certificates = parseCertificateMessage(msg, tls13);
      } else if (msgType === 20 || msgType === 14) {
        // Finished (1.3) or ServerHelloDone (1.2): the server's flight is over.
        done = true;
        break;
      }
    }
  }
  return facts;
}

function parseServerHello(msg: Buffer): { version: number; suite: number; retry: boolean } {
  let version = msg.readUInt16BE(0);
  const random = msg.subarray(2, 34).toString("hex");
  let at = 34;
  at += 1 + (msg[at] as number); // session id
  const suite = msg.readUInt16BE(at);
  at += 3; // suite + compression
  if (at + 2 <= msg.length) {
    const end = at + 2 + msg.readUInt16BE(at);
    at += 2;
    while (at + 4 <= end) {
      const extType = msg.readUInt16BE(at);
      const extLength = msg.readUInt16BE(at + 2);
      if (extType === 43 && extLength === 2) version = msg.readUInt16BE(at + 4);
      at += 4 + extLength;
    }
  }
  return { version, suite, retry: random === HRR_RANDOM };
}

function parseCertificateMessage(msg: Buffer, tls13: boolean): Buffer[] {
  let at = 0;
  if (tls13) at += 1 + (msg[0] as number); // certificate_request_context
  const end = Math.min(msg.length, at + 3 + msg.readUIntBE(at, 3));
  at += 3;
  const certificates: Buffer[] = [];
  while (at + 3 <= end) {
    const length = msg.readUIntBE(at, 3);
    at += 3;
    if (at + length > end) break;
    certificates.push(Buffer.from(msg.subarray(at, at + length)));
    at += length;
    if (tls13) at += 2 + msg.readUInt16BE(at); // per-certificate extensions
  }
  return certificates;
}

/** HKDF-Expand-Label (RFC 8446 7.1) for outputs no longer than one hash block. */
function expandLabel(hash: string, secret: Buffer, label: string, length: number): Buffer {
  const full = Buffer.from(`tls13 ${label}`, "latin1");
  const info = Buffer.concat([Buffer.from([length >> 8, length & 0xff, full.length]), full, Buffer.from([0]), Buffer.from([1])]);
  return createHmac(hash, secret).update(info).digest().subarray(0, length);
}

function tls13Decrypter(secret: Buffer, suiteId: number): ((header: Buffer, body: Buffer) => Buffer | undefined) | undefined {
  const suite = TLS13_SUITES[suiteId];
  if (!suite) return undefined;
  const key = expandLabel(suite.hash, secret, "key", suite.keyLength);
  const iv = expandLabel(suite.hash, secret, "iv", 12);
  let sequence = 0n;
  return (header, body) => {
    if (body.length < 16) return undefined;
    const nonce = Buffer.from(iv);
    const seq = Buffer.alloc(8);
    seq.writeBigUInt64BE(sequence++);
    for (let i = 0; i < 8; i++) nonce[4 + i] = (nonce[4 + i] as number) ^ (seq[i] as number);
    try {
      const decipher = createDecipheriv(suite.cipher as "aes-128-gcm", key, nonce, { authTagLength: 16 });
      decipher.setAAD(header);
      decipher.setAuthTag(body.subarray(body.length - 16));
      return Buffer.concat([decipher.update(body.subarray(0, body.length - 16)), decipher.final()]);
    } catch {
      return undefined;
    }
  };
}

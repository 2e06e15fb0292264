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
 * a client certificate), which Node's own API cannot.
 *
 * Falling back to Node's chain. Only when the handshake completed and the wire gave no certificate
 * (src/probe/wire-tap.ts lists when: TLS 1.3 records it cannot decrypt, as with a cipher suite other
 * than Node's default three; a Certificate message ending beyond the tap's 256 KiB; a record or
 * message that does not parse) is the chain taken from `getPeerCertificate(true)`: OpenSSL's view,
 * which may be reordered, miss presented certificates that do not link and hold trust-store issuers
 * (the root) the server never sent. A failed handshake has no such fallback (the socket's handle is
 * gone): its certificates are the wire's, possibly none.
 *
 * Verification is OpenSSL's, through Node, with the system roots plus the configured CAs as trust
 * anchors: `cert_endpoint_chain_verified` is its verdict on the presented chain, whatever became of
 * the handshake after. Node gives it as `authorized` at secureConnect, but a TLS 1.2 server that
 * refuses our client certificate alerts before its Finished, so there is no secureConnect; the
 * verdict is read from the handle (as Node reads it for `authorized`) when the client begins its key
 * exchange, after OpenSSL verified the chain (#verdict). A TLS 1.3 server refuses after the client's
 * Finished, past secureConnect, so both versions report the same. The host name is checked
 * separately with `tls.checkServerIdentity` on the presented leaf, whether the chain verified or not.
 */
import { hash, X509Certificate } from "node:crypto";
import { isIP, Socket, connect as netConnect } from "node:net";
import { checkServerIdentity, connect as tlsConnect, createSecureContext, rootCertificates, TLSSocket, type SecureContext, type TLSSocketOptions } from "node:tls";
import type { ReadErrorReason } from "../errors.js";
import type { EndpointProbe, OcspFacts } from "../model.js";
import { PreludeError, type Prelude } from "./prelude.js";
import { certificateSerial, parseOcspResponse } from "./ocsp.js";
import { WireTap } from "./wire-tap.js";

export interface TlsProbeOptions {
  /** A DNS name or an IP literal (IPv6 without brackets). */
  host: string;
  port: number;
  /** Where the TCP connection goes when not to host:port itself: a proxy, which a prelude then asks for host:port. */
  dial?: { host: string; port: number };
  /** Run in order on the TCP connection before the handshake, within the handshake's time. */
  preludes?: readonly Prelude[];
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

/**
 * tls.connect passes `requestOCSP` on to the TLSSocket it makes, though @types/node declares it on
 * TLSSocket's options only.
 */
const REQUEST_OCSP: Pick<TLSSocketOptions, "requestOCSP"> = { requestOCSP: true };

/** How long to wait for a server that asked for a client certificate to accept or refuse it. */
const POST_HANDSHAKE_WAIT_MS = 1000;

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
  const key = hash("sha256", leaf, "base64") + name;
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

/**
 * OpenSSL's result of verifying the peer's chain during this handshake, read from the socket's
 * native handle as Node itself reads it for `authorized` (which Node only sets once the handshake
 * completed). Undefined where the handle offers no such method.
 */
function opensslVerdict(socket: TLSSocket): { authorized: boolean; authorizationError: string } | undefined {
  const handle = (socket as unknown as { _handle?: { verifyError?: () => (Error & { code?: string }) | null } })._handle;
  if (typeof handle?.verifyError !== "function") return undefined;
  const error = handle.verifyError();
  return error ? { authorized: false, authorizationError: String(error.code || error.message) } : { authorized: true, authorizationError: "" };
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

type Phase = "connect" | "prelude" | "handshake" | "post-handshake" | "done";

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
  /** The stapled OCSP response: null when the server stapled none, undefined until OpenSSL said. */
  #staple: Buffer | null | undefined;
  /** What the socket said at secureConnect; read then because the handle is gone after an error. */
  #session: { authorized: boolean; authorizationError: string; protocol: string; cipher: string } | undefined;
  /**
   * OpenSSL's verdict on the server's chain as soon as OpenSSL reached it: in TLS 1.2 and earlier at
   * the client's key exchange, since the handshake can still fail after it (a server refusing our
   * client certificate alerts before its Finished); otherwise #session's, at secureConnect.
   */
  #verdict: { authorized: boolean; authorizationError: string } | undefined;
  #onAbort = (): void => this.#fail("connection_reset", "probe aborted");
  /**
   * Aborted when the probe ends, so that a prelude still talking gives up. Only made when there are
   * preludes: aborting one builds a DOMException and its stack trace, 1 % of a plain probe's CPU.
   */
  #preludeAbort: AbortController | undefined;

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
      const dialed = (options.dial ?? options).host;
      if (!this.#looked && !isIP(dialed)) this.#fail("dns_error", `no DNS answer for ${dialed} within the connect timeout`);
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
    else if (this.#phase === "prelude") this.#fail("handshake_timeout", `the exchange before the TLS handshake did not finish within ${this.#options.timeoutMs} ms`);
    else if (this.#phase === "handshake") this.#fail("handshake_timeout", `no completed TLS handshake within ${this.#options.timeoutMs} ms`);
    else if (this.#phase === "post-handshake") this.#finishSecure();
  }

  #connect(): void {
    const { host, port } = this.#options.dial ?? this.#options;
    const raw = netConnect({ host, port });
    this.#raw = raw;
    raw.setNoDelay(true);
    raw.once("lookup", (err) => {
      if (!err) this.#looked = true;
    });
    raw.on("error", (err: NodeJS.ErrnoException) => {
      if (this.#phase === "connect" || this.#phase === "prelude") this.#fail(ERRNO_REASONS[err.code ?? ""] ?? "connection_reset", err.message);
    });
    raw.once("connect", () => {
      if (this.#phase !== "connect") return;
      this.#phase = "prelude";
      const remaining = this.#options.timeoutMs - (performance.now() - this.#started);
      const handshakeMs = Math.min(this.#options.handshakeTimeoutMs ?? remaining, remaining);
      this.#timer(handshakeMs, () => {
        if (this.#phase === "prelude") this.#fail("handshake_timeout", `the exchange before the TLS handshake did not finish within ${Math.round(handshakeMs)} ms`);
        if (this.#phase === "handshake") this.#fail("handshake_timeout", `no completed TLS handshake within ${Math.round(handshakeMs)} ms`);
      });
      void this.#runPreludes(raw);
    });
  }

  async #runPreludes(raw: Socket): Promise<void> {
    try {
      const preludes = this.#options.preludes ?? [];
      if (preludes.length > 0) this.#preludeAbort = new AbortController();
      for (const prelude of preludes) await prelude(raw, (this.#preludeAbort as AbortController).signal);
    } catch (err) {
      if (err instanceof PreludeError) this.#fail(err.reason, err.message);
      else this.#fail("tls_error", err instanceof Error ? err.message : String(err));
      return;
    }
    if (this.#phase !== "prelude") return;
    this.#phase = "handshake";
    this.#handshake(raw);
  }

  #handshake(raw: Socket): void {
    const tap = new WireTap(raw);
    this.#tap = tap;
    // The TLS socket usually reports the tap's errors itself; a tap error with no listener would end the process.
    tap.on("error", (err: NodeJS.ErrnoException) => this.#onTlsError(err));
    const sni = isIP(this.#serverName) ? undefined : this.#serverName;
    const socket = tlsConnect({
      socket: tap,
      ...(sni ? { servername: sni } : {}),
      secureContext: this.#options.secureContext ?? (defaultContext ??= tlsContext()),
      rejectUnauthorized: false,
      // status_request: the server may staple an OCSP response for its leaf (src/probe/ocsp.ts).
      ...REQUEST_OCSP,
      // The host name is checked on the presented leaf instead (matchesHost).
      checkServerIdentity: () => undefined,
    });
    // Once a chain verifies, Node converts it whole into objects for checkServerIdentity, which
    // ignores them here: that conversion was a third of a probe's CPU. The wire gives the chain.
    socket.getPeerCertificate = (() => ({})) as TLSSocket["getPeerCertificate"];
    this.#tls = socket;
    socket.on("keylog", (line: Buffer) => {
      tap.keylog(line);
      // TLS 1.2 and earlier log the master secret as the client begins its key exchange, which is
      // after OpenSSL verified the server's chain: its verdict is read then (see #verdict).
      if (line.toString("latin1", 0, 14) === "CLIENT_RANDOM ") this.#verdict ??= opensslVerdict(socket);
    });
    // Once per handshake, with the stapled response or null, after the server's certificates arrived.
    socket.once("OCSPResponse", (response: Buffer | null) => (this.#staple = response));
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
    const verdict = this.#verdict ?? session;
    const chainVerified = verdict?.authorized === true;
    let verifyError = "";
    if (verdict && !chainVerified) verifyError = verdict.authorizationError;
    else if (verdict && !hostnameMatch) verifyError = "ERR_TLS_CERT_ALTNAME_INVALID";
    return {
      success: false,
      chainVerified,
      verifyError,
      hostnameMatch,
      tlsVersion: session?.protocol || this.#tap?.version() || "",
      cipher: session?.cipher ?? "",
      durationSeconds: (performance.now() - this.#started) / 1000,
      ...(this.#staple !== undefined || session ? { ocsp: this.#ocspFacts(leaf) } : {}),
    };
  }

  /** What the server stapled, read for the leaf; the bounded parser never throws. */
  #ocspFacts(leaf: Buffer | undefined): OcspFacts {
    if (!this.#staple) return { stapled: false };
    return { stapled: true, ...parseOcspResponse(this.#staple, leaf && certificateSerial(leaf)) };
  }

  #end(result: TlsProbeResult): void {
    this.#phase = "done";
    result.probe.durationSeconds = (performance.now() - this.#started) / 1000;
    for (const timer of this.#timers) clearTimeout(timer);
    this.#preludeAbort?.abort();
    this.#options.signal?.removeEventListener("abort", this.#onAbort);
    this.#tls?.destroy();
    this.#raw?.destroy();
    this.#resolve(result);
  }
}

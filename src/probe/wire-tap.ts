/**
 * The wire tap: a pass-through Duplex over the TCP socket that keeps a bounded copy of the bytes the
 * server sent, and the reader of the server's handshake flight in them (records, ServerHello,
 * CertificateRequest, Certificate; TLS 1.3 handshake records decrypted with the handshake traffic
 * secret from Node's `keylog` event). src/probe/tls.ts explains why the chain is read from the wire.
 *
 * When the wire gives no certificates, and the probe falls back to Node's chain if its handshake
 * completed (src/probe/tls.ts):
 * - TLS 1.3 handshake records it cannot decrypt: a cipher suite other than TLS_AES_128_GCM_SHA256,
 *   TLS_AES_256_GCM_SHA384 and TLS_CHACHA20_POLY1305_SHA256 (the three Node offers by default; a
 *   server can only pick another if the default cipher list was changed), no handshake traffic
 *   secret from `keylog`, or a record that does not authenticate;
 * - a Certificate message that ends beyond MAX_CAPTURE (OpenSSL refuses certificate lists over
 *   100 KiB, so only a huge run of other records before it would do that);
 * - a record cut short, a ServerHello that does not parse (the reading stops there), or a
 *   Certificate message whose lengths do not add up or that holds an empty certificate;
 * - no Certificate message at all: a compressed one (RFC 8879) is not read.
 * test/wire-tap-fuzz.test.ts holds the reader to this on mutated real flights.
 */
import { createDecipheriv, createHmac } from "node:crypto";
import type { Socket } from "node:net";
import { Duplex } from "node:stream";

/** Bytes of server traffic kept for reading the chain; no sane chain comes near this. */
export const MAX_CAPTURE = 256 * 1024;

const HRR_RANDOM = "cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c";

const TLS13_SUITES: Record<number, { cipher: string; keyLength: number; hash: string }> = {
  0x1301: { cipher: "aes-128-gcm", keyLength: 16, hash: "sha256" },
  0x1302: { cipher: "aes-256-gcm", keyLength: 32, hash: "sha384" },
  0x1303: { cipher: "chacha20-poly1305", keyLength: 32, hash: "sha256" },
};

const VERSIONS: Record<number, string> = { 0x0301: "TLSv1", 0x0302: "TLSv1.1", 0x0303: "TLSv1.2", 0x0304: "TLSv1.3" };

export interface WireFacts {
  certificates: Buffer[];
  certificateRequested: boolean;
  version: string;
}

export class WireTap extends Duplex {
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

  /** Bytes of server traffic kept: whole chunks while fewer than MAX_CAPTURE were kept. */
  get capturedBytes(): number {
    return this.#captured;
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

/** Counts the reader's loop iterations over records, messages, extensions and certificate entries. */
export interface FlightMeter {
  steps: number;
}

/**
 * Reads the server's handshake messages from its raw byte stream. One pass: record bodies are copied
 * once into a buffer the size of the input (handshake bytes never outnumber the record bytes that
 * carry them), so a peer that splits its messages into one-byte records costs no more than one that
 * does not. Never throws, whatever the bytes: every read is checked against the end of what it
 * reads (the record, the message, the field), each loop consumes at least three bytes of input per
 * turn, and a message that does not parse exactly yields nothing rather than a guess. The reading
 * stops at the first record that is incomplete or does not decrypt, at the end of the server's
 * flight (ServerHelloDone, or Finished in TLS 1.3), and in TLS 1.3 after the Certificate message.
 * The first ServerHello (after any HelloRetryRequest) and the first Certificate message count, as
 * they do for OpenSSL.
 */
export function parseServerFlight(bytes: Buffer, serverHandshakeSecret: Buffer | undefined, meter?: FlightMeter): WireFacts {
  const facts: WireFacts = { certificates: [], certificateRequested: false, version: "" };
  const handshake = Buffer.allocUnsafe(bytes.length);
  let filled = 0;
  let consumed = 0;
  let hello = false;
  let certificate = false;
  let tls13 = false;
  let suite = 0;
  let decrypt: ((header: Buffer, body: Buffer) => Buffer | undefined) | undefined;
  let offset = 0;
  let done = false;
  let steps = 0;
  while (!done && offset + 5 <= bytes.length) {
    steps++;
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
      steps++;
      const msgType = handshake[consumed] as number;
      const msgLength = handshake.readUIntBE(consumed + 1, 3);
      if (filled - consumed < 4 + msgLength) break;
      const msg = handshake.subarray(consumed + 4, consumed + 4 + msgLength);
      consumed += 4 + msgLength;
      if (msgType === 2 && !hello) {
        const parsed = parseServerHello(msg);
        steps += parsed?.steps ?? 0;
        if (!parsed) {
          // OpenSSL refuses such a ServerHello, so nothing after it is the server's flight.
          done = true;
          break;
        }
        if (parsed.retry) continue;
        hello = true;
        facts.version = VERSIONS[parsed.version] ?? "";
        tls13 = parsed.version === 0x0304;
        suite = parsed.suite;
      } else if (msgType === 13) {
        facts.certificateRequested = true;
      } else if (msgType === 11 && !certificate) {
        certificate = true;
        const parsed = parseCertificateMessage(msg, tls13);
        steps += parsed?.steps ?? 0;
        facts.certificates = parsed?.certificates ?? [];
        // In TLS 1.3 a CertificateRequest comes before the Certificate, so nothing after it is
        // needed: CertificateVerify and Finished are not decrypted (about a fifth of the reader's work).
        if (tls13) {
          done = true;
          break;
        }
      } else if (msgType === 20 || msgType === 14) {
        // Finished (1.3) or ServerHelloDone (1.2): the server's flight is over.
        done = true;
        break;
      }
    }
  }
  if (meter) meter.steps += steps;
  return facts;
}

/** The fields of a ServerHello the reader needs; undefined when the message does not parse. */
function parseServerHello(msg: Buffer): { version: number; suite: number; retry: boolean; steps: number } | undefined {
  // legacy_version, random, session id, cipher suite, compression method.
  if (msg.length < 35) return undefined;
  let version = msg.readUInt16BE(0);
  const retry = msg.subarray(2, 34).toString("hex") === HRR_RANDOM;
  let at = 35 + (msg[34] as number);
  if (at + 3 > msg.length) return undefined;
  const suite = msg.readUInt16BE(at);
  at += 3;
  let steps = 0;
  // Extensions are optional before TLS 1.3; when present, they fill the rest of the message exactly.
  if (at < msg.length) {
    if (at + 2 > msg.length || at + 2 + msg.readUInt16BE(at) !== msg.length) return undefined;
    at += 2;
    while (at < msg.length) {
      steps++;
      if (at + 4 > msg.length) return undefined;
      const extType = msg.readUInt16BE(at);
      const extLength = msg.readUInt16BE(at + 2);
      at += 4;
      if (at + extLength > msg.length) return undefined;
      if (extType === 43 && extLength === 2) version = msg.readUInt16BE(at);
      at += extLength;
    }
  }
  return { version, suite, retry, steps };
}

/**
 * The certificates of a Certificate message, copied out of it; undefined unless the message parses
 * exactly (every length within its parent and filling it, no empty certificate).
 */
function parseCertificateMessage(msg: Buffer, tls13: boolean): { certificates: Buffer[]; steps: number } | undefined {
  let at = 0;
  if (tls13) {
    if (msg.length < 1) return undefined;
    at = 1 + (msg[0] as number); // certificate_request_context
  }
  if (at + 3 > msg.length) return undefined;
  const end = at + 3 + msg.readUIntBE(at, 3);
  if (end !== msg.length) return undefined;
  at += 3;
  const certificates: Buffer[] = [];
  let steps = 0;
  while (at < end) {
    steps++;
    if (at + 3 > end) return undefined;
    const length = msg.readUIntBE(at, 3);
    at += 3;
    if (length === 0 || at + length > end) return undefined;
    const der = msg.subarray(at, at + length);
    at += length;
    if (tls13) {
      // Per-certificate extensions (an OCSP response, SCTs), skipped.
      if (at + 2 > end) return undefined;
      at += 2 + msg.readUInt16BE(at);
      if (at > end) return undefined;
    }
    certificates.push(Buffer.from(der));
  }
  return { certificates, steps };
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

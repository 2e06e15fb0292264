/**
 * The wire tap: a pass-through Duplex over the TCP socket that keeps a bounded copy of the bytes the
 * server sent, and the reader of the server's handshake flight in them (records, ServerHello,
 * CertificateRequest, Certificate; TLS 1.3 handshake records decrypted with the handshake traffic
 * secret from Node's `keylog` event). src/probe/tls.ts explains why the chain is read from the wire.
 */
import { createDecipheriv, createHmac } from "node:crypto";
import type { Socket } from "node:net";
import { Duplex } from "node:stream";

/** Bytes of server traffic kept for reading the chain; no sane chain comes near this. */
const MAX_CAPTURE = 256 * 1024;

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

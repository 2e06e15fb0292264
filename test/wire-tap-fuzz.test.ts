/**
 * Fuzz of the wire tap's reader of the server's handshake flight (src/probe/wire-tap.ts): the reader
 * parses bytes a server chose, and decrypts TLS 1.3 handshake records itself, so it must never
 * throw, never do more work than its input allows and never return bytes the server did not send.
 *
 * The flights are real: captured at test time from node:tls servers (TLS 1.2, TLS 1.3 with each of
 * its three cipher suites, with and without a CertificateRequest) presenting a chain from
 * scripts/certgen.ts, through a WireTap, with the server's handshake traffic secret from the
 * client's `keylog` event. Each is taken apart into its handshake messages (decrypted here, with
 * this file's own record protection) so that mutations can be made at the message level and the
 * flight put back together, re-encrypted, as well as on the raw bytes.
 *
 * Deterministic: one PRNG with a fixed seed per case; a failure names its flight and case seed.
 * No timings: the work bound is counted (the reader's step meter) and the output is bounded by the
 * input.
 */
import { createCipheriv, createDecipheriv, createHmac } from "node:crypto";
import { once } from "node:events";
import { connect as netConnect, createServer as createNetServer, type AddressInfo, type Socket } from "node:net";
import { connect as tlsConnect, createServer as createTlsServer, type TlsOptions } from "node:tls";
import t, { type Test } from "tap";
import { makeChain, privateKeyPem } from "../scripts/certgen.js";
import { MAX_CAPTURE, parseServerFlight, WireTap, type FlightMeter, type WireFacts } from "../src/probe/wire-tap.js";

const BASE_SEED = 0x5eed_2026;
/** Random mutation cases per captured flight. */
const CASES_PER_FLIGHT = 1500;

// ---------------------------------------------------------------------------------------------
// A small deterministic PRNG (xorshift32) and helpers.

class Rng {
  #state: number;

  constructor(seed: number) {
    this.#state = seed >>> 0 || 0x9e3779b9;
  }

  next(): number {
    let x = this.#state;
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    this.#state = x >>> 0;
    return this.#state;
  }

  /** An integer in [0, n). */
  int(n: number): number {
    return n <= 0 ? 0 : this.next() % n;
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)] as T;
  }

  bytes(n: number): Buffer {
    const out = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i++) out[i] = this.next() & 0xff;
    return out;
  }
}

function caseSeed(flightIndex: number, i: number): number {
  return (BASE_SEED ^ Math.imul(flightIndex + 1, 0x9e3779b1) ^ Math.imul(i + 1, 0x85ebca6b)) >>> 0;
}

// ---------------------------------------------------------------------------------------------
// TLS framing and TLS 1.3 record protection, written here independently of the code under test.

const HANDSHAKE = 22;
const CCS = 20;
const APPLICATION_DATA = 23;
const HRR_RANDOM = Buffer.from("cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c", "hex");

const SUITES: Record<number, { cipher: "aes-128-gcm" | "aes-256-gcm" | "chacha20-poly1305"; keyLength: number; hash: string }> = {
  0x1301: { cipher: "aes-128-gcm", keyLength: 16, hash: "sha256" },
  0x1302: { cipher: "aes-256-gcm", keyLength: 32, hash: "sha384" },
  0x1303: { cipher: "chacha20-poly1305", keyLength: 32, hash: "sha256" },
};

function record(type: number, body: Buffer, length = body.length): Buffer {
  const header = Buffer.from([type, 3, 3, 0, 0]);
  header.writeUInt16BE(length & 0xffff, 3);
  return Buffer.concat([header, body]);
}

/** `payload` as records of `type`, cut at the given sizes (the last size repeats). */
function frame(type: number, payload: Buffer, sizes: readonly number[] = [16384]): Buffer[] {
  const records: Buffer[] = [];
  let at = 0;
  let i = 0;
  while (at < payload.length) {
    const size = Math.max(1, sizes[Math.min(i++, sizes.length - 1)] as number);
    records.push(record(type, payload.subarray(at, at + size)));
    at += size;
  }
  return records;
}

/** Record boundaries of well-formed input: [type, start, end of body]. */
function splitRecords(bytes: Buffer): { type: number; start: number; end: number }[] {
  const records: { type: number; start: number; end: number }[] = [];
  for (let at = 0; at + 5 <= bytes.length; ) {
    const end = at + 5 + bytes.readUInt16BE(at + 3);
    if (end > bytes.length) break;
    records.push({ type: bytes[at] as number, start: at, end });
    at = end;
  }
  return records;
}

function hkdfLabel(hash: string, secret: Buffer, label: string, length: number): Buffer {
  const name = Buffer.from("tls13 " + label, "latin1");
  const info = Buffer.alloc(2 + 1 + name.length + 1 + 1);
  info.writeUInt16BE(length, 0);
  info[2] = name.length;
  name.copy(info, 3);
  info[3 + name.length] = 0; // empty context
  info[4 + name.length] = 1; // first (and only) HKDF-Expand block
  return createHmac(hash, secret).update(info).digest().subarray(0, length);
}

class RecordProtection {
  readonly #suite: (typeof SUITES)[number];
  readonly #key: Buffer;
  readonly #iv: Buffer;
  #seq = 0;

  constructor(suiteId: number, secret: Buffer) {
    const suite = SUITES[suiteId];
    if (!suite) throw new Error(`suite ${suiteId.toString(16)}`);
    this.#suite = suite;
    this.#key = hkdfLabel(suite.hash, secret, "key", suite.keyLength);
    this.#iv = hkdfLabel(suite.hash, secret, "iv", 12);
  }

  #nonce(): Buffer {
    const nonce = Buffer.from(this.#iv);
    const seq = this.#seq++;
    for (let i = 0; i < 6; i++) nonce[11 - i] = (nonce[11 - i] as number) ^ (Math.floor(seq / 2 ** (8 * i)) & 0xff);
    return nonce;
  }

  seal(content: Buffer, contentType = HANDSHAKE, padding = 0): Buffer {
    const inner = Buffer.concat([content, Buffer.from([contentType]), Buffer.alloc(padding)]);
    const header = Buffer.from([APPLICATION_DATA, 3, 3, 0, 0]);
    header.writeUInt16BE(inner.length + 16, 3);
    const cipher = createCipheriv(this.#suite.cipher, this.#key, this.#nonce(), { authTagLength: 16 } as object);
    (cipher as unknown as { setAAD(aad: Buffer): void }).setAAD(header);
    const sealed = Buffer.concat([cipher.update(inner), cipher.final(), (cipher as unknown as { getAuthTag(): Buffer }).getAuthTag()]);
    return Buffer.concat([header, sealed]);
  }

  /** The record's content and content type, or undefined when it does not authenticate. */
  open(recordBytes: Buffer): { content: Buffer; type: number } | undefined {
    const header = recordBytes.subarray(0, 5);
    const body = recordBytes.subarray(5);
    const decipher = createDecipheriv(this.#suite.cipher, this.#key, this.#nonce(), { authTagLength: 16 } as object);
    try {
      (decipher as unknown as { setAAD(aad: Buffer): void }).setAAD(header);
      (decipher as unknown as { setAuthTag(tag: Buffer): void }).setAuthTag(body.subarray(body.length - 16));
      const inner = Buffer.concat([decipher.update(body.subarray(0, body.length - 16)), decipher.final()]);
      let end = inner.length - 1;
      while (end >= 0 && inner[end] === 0) end--;
      return { content: inner.subarray(0, end), type: inner[end] as number };
    } catch {
      return undefined;
    }
  }
}

/** Handshake messages (header included) of a well-formed handshake stream, up to `last` type. */
function splitMessages(stream: Buffer, last: number): { messages: Buffer[]; rest: Buffer } {
  const messages: Buffer[] = [];
  let at = 0;
  while (at + 4 <= stream.length) {
    const end = at + 4 + stream.readUIntBE(at + 1, 3);
    if (end > stream.length) break;
    const message = stream.subarray(at, end);
    messages.push(message);
    at = end;
    if (message[0] === last) break;
  }
  return { messages, rest: stream.subarray(at) };
}

// ---------------------------------------------------------------------------------------------
// Flights captured from real handshakes.

const { root, intermediate, leaf } = await makeChain("localhost");
const leafKey = await privateKeyPem(leaf);
const CHAIN = [leaf.der, intermediate.der, root.der];

interface Flight {
  name: string;
  tls13: boolean;
  suite: number;
  secret: Buffer | undefined;
  /** The raw bytes the server sent, as captured. */
  bytes: Buffer;
  /** The ServerHello message and the rest of the server's flight, to its Finished / ServerHelloDone. */
  serverHello: Buffer;
  messages: Buffer[];
  /** Everything the server sent after its flight, raw. */
  after: Buffer;
  version: string;
  certificateRequested: boolean;
  /** What a WireTap on the real connection read. */
  tapFacts: WireFacts;
}

async function capture(name: string, options: TlsOptions, certificateRequested: boolean): Promise<Flight> {
  const server = createTlsServer({ cert: leaf.pem + intermediate.pem + root.pem, key: leafKey, ...options });
  server.on("tlsClientError", () => undefined);
  server.on("secureConnection", (socket) => {
    socket.on("error", () => undefined);
    socket.end("hello\n");
  });
  server.listen({ port: 0, host: "127.0.0.1" });
  await once(server, "listening");
  const raw = netConnect({ host: "127.0.0.1", port: (server.address() as AddressInfo).port });
  await once(raw, "connect");
  const tap = new WireTap(raw);
  const chunks: Buffer[] = [];
  raw.on("data", (chunk: Buffer) => chunks.push(chunk));
  let secret: Buffer | undefined;
  const socket = tlsConnect({ socket: tap, servername: "localhost", ca: [root.pem] });
  socket.on("keylog", (line: Buffer) => {
    tap.keylog(line);
    const [label, , hex] = line.toString("latin1").trim().split(" ");
    if (label === "SERVER_HANDSHAKE_TRAFFIC_SECRET" && hex) secret = Buffer.from(hex, "hex");
  });
  socket.on("error", () => undefined);
  // Destroyed as the probe does on the server's FIN, before TLS would answer it through the ended tap.
  socket.once("end", () => socket.destroy());
  socket.resume();
  await once(socket, "close");
  const tapFacts = { certificates: tap.certificates(), certificateRequested: tap.certificateRequested(), version: tap.version() };
  await new Promise((resolve) => server.close(resolve));
  const bytes = Buffer.concat(chunks);
  return { ...decompose(bytes, secret), name, bytes, secret, certificateRequested, tapFacts };
}

function decompose(bytes: Buffer, secret: Buffer | undefined): Omit<Flight, "name" | "bytes" | "secret" | "certificateRequested" | "tapFacts"> {
  const records = splitRecords(bytes);
  const first = records[0];
  if (!first || first.type !== HANDSHAKE) throw new Error("no ServerHello record");
  const hello = splitMessages(bytes.subarray(first.start + 5, first.end), 2).messages[0] as Buffer;
  const suiteAt = 4 + 2 + 32 + 1 + (hello[38] as number);
  const suite = hello.readUInt16BE(suiteAt);
  const tls13 = suite in SUITES;
  let stream: Buffer[] = [];
  let afterAt = bytes.length;
  if (tls13) {
    const protection = new RecordProtection(suite, secret as Buffer);
    stream.push(bytes.subarray(first.start + 5 + hello.length, first.end));
    for (const r of records.slice(1)) {
      if (r.type !== APPLICATION_DATA) continue;
      const opened = protection.open(bytes.subarray(r.start, r.end));
      if (!opened) throw new Error("a handshake record did not decrypt");
      stream.push(opened.content);
      if (splitMessages(Buffer.concat(stream), 20).messages.some((m) => m[0] === 20)) {
        afterAt = r.end;
        break;
      }
    }
  } else {
    stream = [bytes.subarray(first.start + 5 + hello.length, first.end)];
    for (const r of records.slice(1)) {
      stream.push(bytes.subarray(r.start + 5, r.end));
      if (splitMessages(Buffer.concat(stream), 14).messages.some((m) => m[0] === 14)) {
        afterAt = r.end;
        break;
      }
    }
  }
  const { messages, rest } = splitMessages(Buffer.concat(stream), tls13 ? 20 : 14);
  if (rest.length !== 0) throw new Error("the flight does not end at a record boundary");
  return { tls13, suite, serverHello: Buffer.from(hello), messages: messages.map((m) => Buffer.from(m)), after: bytes.subarray(afterAt), version: tls13 ? "TLSv1.3" : "TLSv1.2" };
}

// ---------------------------------------------------------------------------------------------
// Putting a flight back together, with the plaintext kept for the provenance check.

interface Built {
  bytes: Buffer;
  /** The handshake bytes the builder put into records, before encryption. */
  plaintext: Buffer;
}

interface BuildOptions {
  serverHello?: Buffer;
  /** Handshake bytes after the ServerHello (default: the flight's messages). */
  rest?: Buffer;
  /** Record sizes for the ServerHello and the rest. */
  helloSizes?: number[];
  restSizes?: number[];
  /** Raw bytes before the ServerHello record(s). */
  before?: Buffer;
  /** Raw bytes after the flight (default: what the server sent after it). */
  after?: Buffer;
  /** Extra records between the rest's records (after record i). */
  interleave?: (i: number) => Buffer | undefined;
  suite?: number;
}

function build(flight: Flight, options: BuildOptions = {}): Built {
  const hello = options.serverHello ?? flight.serverHello;
  const rest = options.rest ?? Buffer.concat(flight.messages);
  const parts: Buffer[] = [options.before ?? Buffer.alloc(0), ...frame(HANDSHAKE, hello, options.helloSizes)];
  let restRecords: Buffer[];
  if (flight.tls13) {
    parts.push(record(CCS, Buffer.from([1])));
    const protection = new RecordProtection(options.suite ?? flight.suite, flight.secret as Buffer);
    const sizes = options.restSizes ?? [16384];
    restRecords = [];
    let at = 0;
    for (let i = 0; at < rest.length; i++) {
      const size = Math.max(1, sizes[Math.min(i, sizes.length - 1)] as number);
      restRecords.push(protection.seal(rest.subarray(at, at + size)));
      at += size;
    }
  } else {
    restRecords = frame(HANDSHAKE, rest, options.restSizes);
  }
  restRecords.forEach((r, i) => {
    parts.push(r);
    const extra = options.interleave?.(i);
    if (extra) parts.push(extra);
  });
  parts.push(options.after ?? flight.after);
  return { bytes: Buffer.concat(parts), plaintext: Buffer.concat([hello, rest]) };
}

// ---------------------------------------------------------------------------------------------
// The properties every parse must have.

interface Outcome {
  facts: WireFacts;
  steps: number;
}

/** Parses `input` placed inside a larger buffer whose bytes after it look like more chain. */
function parse(input: Buffer, secret: Buffer | undefined): Outcome {
  const decoy = Buffer.concat([input, Buffer.from([0x0b, 0, 0, 0x20]), leaf.der]);
  const meter: FlightMeter = { steps: 0 };
  const facts = parseServerFlight(decoy.subarray(0, input.length), secret, meter);
  return { facts, steps: meter.steps };
}

/** `needle`'s bytes appear in `haystack` in order (contiguously, or as a subsequence). */
function appearsIn(needle: Buffer, haystack: Buffer): boolean {
  if (needle.length === 0 || haystack.indexOf(needle) >= 0) return true;
  let at = 0;
  for (let i = 0; i < haystack.length && at < needle.length; i++) if (haystack[i] === needle[at]) at++;
  return at === needle.length;
}

const VERSIONS = new Set(["", "TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"]);
/** Work allowed beyond one step per input byte: a handful of loop entries. */
const STEP_SLACK = 16;

/** Problems with a parse of `input` whatever the mutation; empty when none. */
function universal(input: Buffer, plaintext: Buffer, outcome: Outcome | Error): string[] {
  if (outcome instanceof Error) return [`threw ${outcome.name}: ${outcome.message}`];
  const { facts, steps } = outcome;
  const problems: string[] = [];
  if (steps > input.length + STEP_SLACK) problems.push(`${steps} steps for ${input.length} bytes`);
  if (!VERSIONS.has(facts.version)) problems.push(`version ${JSON.stringify(facts.version)}`);
  if (typeof facts.certificateRequested !== "boolean") problems.push("certificateRequested not a boolean");
  const total = facts.certificates.reduce((sum, cert) => sum + cert.length, 0);
  if (total > input.length) problems.push(`${total} certificate bytes out of ${input.length} input bytes`);
  const origin = Buffer.concat([plaintext, input]);
  facts.certificates.forEach((cert, i) => {
    if (!Buffer.isBuffer(cert)) problems.push(`certificate ${i} is not a Buffer`);
    else if (!appearsIn(cert, origin)) problems.push(`certificate ${i} (${cert.length} bytes) was never sent`);
  });
  return problems;
}

function tryParse(input: Buffer, secret: Buffer | undefined): Outcome | Error {
  try {
    return parse(input, secret);
  } catch (err) {
    return err as Error;
  }
}

const sameChain = (certificates: Buffer[], chain: readonly Buffer[] = CHAIN): boolean =>
  certificates.length === chain.length && certificates.every((cert, i) => cert.equals(chain[i] as Buffer));

interface Case {
  label: string;
  input: Buffer;
  plaintext: Buffer;
  secret: Buffer | undefined;
  expect?: (facts: WireFacts) => string | undefined;
}

// ---------------------------------------------------------------------------------------------
// Mutations.

/** Where the length fields of a handshake message are: [offset, width in bytes]. */
function lengthFields(message: Buffer, tls13: boolean): [number, number][] {
  const fields: [number, number][] = [[1, 3]];
  if (message[0] === 2 && message.length >= 39) {
    fields.push([38, 1]); // session id
    const extAt = 39 + (message[38] as number) + 3;
    if (extAt + 2 <= message.length) {
      fields.push([extAt, 2]);
      for (let at = extAt + 2; at + 4 <= message.length; at += 4 + message.readUInt16BE(at + 2)) fields.push([at + 2, 2]);
    }
  } else if (message[0] === 11) {
    let at = 4;
    if (tls13) {
      fields.push([at, 1]);
      at += 1 + (message[at] as number);
    }
    fields.push([at, 3]);
    at += 3;
    while (at + 3 <= message.length) {
      fields.push([at, 3]);
      at += 3 + message.readUIntBE(at, 3);
      if (tls13 && at + 2 <= message.length) {
        fields.push([at, 2]);
        at += 2 + message.readUInt16BE(at);
      }
    }
  }
  return fields;
}

function setLength(message: Buffer, [offset, width]: [number, number], rng: Rng): { message: Buffer; label: string } {
  const copy = Buffer.from(message);
  const original = copy.readUIntBE(offset, width);
  const max = 2 ** (8 * width) - 1;
  const value = rng.pick([0, max, Math.max(0, original - 1), Math.min(max, original + 1), rng.int(max + 1)]);
  copy.writeUIntBE(value, offset, width);
  return { message: copy, label: `length at ${offset}/${width}: ${original} -> ${value}` };
}

type Mutation = (flight: Flight, built: Built, rng: Rng) => { built: Built; label: string };

const byteMutations: Mutation[] = [
  function bitFlips(_flight, built, rng) {
    const bytes = Buffer.from(built.bytes);
    const n = 1 + rng.int(8);
    const at: number[] = [];
    for (let i = 0; i < n; i++) {
      const pos = rng.int(bytes.length);
      bytes[pos] = (bytes[pos] as number) ^ (1 << rng.int(8));
      at.push(pos);
    }
    return { built: { ...built, bytes }, label: `bit flips at ${at.join(",")}` };
  },
  function insertion(_flight, built, rng) {
    const pos = rng.int(built.bytes.length + 1);
    const inserted = rng.bytes(1 + rng.int(16));
    return { built: { ...built, bytes: Buffer.concat([built.bytes.subarray(0, pos), inserted, built.bytes.subarray(pos)]) }, label: `${inserted.length} bytes inserted at ${pos}` };
  },
  function deletion(_flight, built, rng) {
    const pos = rng.int(built.bytes.length);
    const n = 1 + rng.int(16);
    return { built: { ...built, bytes: Buffer.concat([built.bytes.subarray(0, pos), built.bytes.subarray(pos + n)]) }, label: `${n} bytes deleted at ${pos}` };
  },
  function recordLength(_flight, built, rng) {
    const records = splitRecords(built.bytes);
    if (records.length === 0) return { built, label: "no record to change" };
    const target = rng.pick(records);
    const bytes = Buffer.from(built.bytes);
    const original = bytes.readUInt16BE(target.start + 3);
    const value = rng.pick([0, 0xffff, Math.max(0, original - 1), Math.min(0xffff, original + 1), rng.int(0x10000)]);
    bytes.writeUInt16BE(value, target.start + 3);
    return { built: { ...built, bytes }, label: `record at ${target.start}: length ${original} -> ${value}` };
  },
  function recordShuffle(_flight, built, rng) {
    const records = splitRecords(built.bytes).map((r) => built.bytes.subarray(r.start, r.end));
    if (records.length === 0) return { built, label: "no record to move" };
    const i = rng.int(records.length);
    const j = rng.int(records.length);
    const op = rng.pick(["duplicate", "swap", "drop"] as const);
    if (op === "duplicate") records.splice(i, 0, records[i] as Buffer);
    else if (op === "drop") records.splice(i, 1);
    else [records[i], records[j]] = [records[j] as Buffer, records[i] as Buffer];
    return { built: { ...built, bytes: Buffer.concat(records) }, label: `record ${op} ${i} ${j}` };
  },
  function overwrite(_flight, built, rng) {
    const bytes = Buffer.from(built.bytes);
    const pos = rng.int(bytes.length);
    const n = 1 + rng.int(32);
    const fill = rng.pick(["zero", "ff", "random"] as const);
    const with_ = fill === "zero" ? Buffer.alloc(n) : fill === "ff" ? Buffer.alloc(n, 0xff) : rng.bytes(n);
    with_.copy(bytes, pos);
    return { built: { ...built, bytes }, label: `${n} bytes overwritten (${fill}) at ${pos}` };
  },
];

/** Mutations of the handshake messages, the flight then rebuilt (re-encrypted for TLS 1.3). */
function messageMutation(flight: Flight, rng: Rng): { built: Built; label: string } {
  const messages = [flight.serverHello, ...flight.messages];
  const index = rng.int(messages.length);
  const target = messages[index] as Buffer;
  const kind = rng.int(3);
  let mutated: Buffer;
  let label: string;
  if (kind === 0) {
    ({ message: mutated, label } = setLength(target, rng.pick(lengthFields(target, flight.tls13)), rng));
  } else if (kind === 1) {
    mutated = Buffer.from(target);
    const pos = rng.int(mutated.length);
    mutated[pos] = rng.int(256);
    label = `byte ${pos} set`;
  } else {
    mutated = target.subarray(0, rng.int(target.length));
    label = `cut to ${mutated.length} bytes`;
  }
  messages[index] = mutated;
  const sizes = rng.int(2) ? undefined : [1 + rng.int(600)];
  const built = build(flight, { serverHello: messages[0] as Buffer, rest: Buffer.concat(messages.slice(1)), ...(sizes ? { restSizes: sizes } : {}) });
  return { built, label: `message ${index} (type ${target[0]}): ${label}${sizes ? `, records of ${sizes[0]}` : ""}` };
}

// ---------------------------------------------------------------------------------------------
// The flights.

const flights = [
  await capture("TLS 1.2", { maxVersion: "TLSv1.2" }, false),
  await capture("TLS 1.2 with CertificateRequest", { maxVersion: "TLSv1.2", requestCert: true, rejectUnauthorized: false }, true),
  await capture("TLS 1.3 AES-128-GCM", { minVersion: "TLSv1.3", ciphers: "TLS_AES_128_GCM_SHA256" }, false),
  await capture("TLS 1.3 AES-256-GCM with CertificateRequest", { minVersion: "TLSv1.3", ciphers: "TLS_AES_256_GCM_SHA384", requestCert: true, rejectUnauthorized: false }, true),
  await capture("TLS 1.3 CHACHA20-POLY1305", { minVersion: "TLSv1.3", ciphers: "TLS_CHACHA20_POLY1305_SHA256" }, false),
];

t.test("the captured flights read whole, through the tap and directly", async (t) => {
  t.same(
    flights.map((f) => f.suite),
    [flights[0]?.suite, flights[1]?.suite, 0x1301, 0x1302, 0x1303],
    "each TLS 1.3 cipher suite captured",
  );
  for (const flight of flights) {
    t.ok(sameChain(flight.tapFacts.certificates), `${flight.name}: the tap read the chain`);
    t.equal(flight.tapFacts.version, flight.version, `${flight.name}: the tap read the version`);
    t.equal(flight.tapFacts.certificateRequested, flight.certificateRequested, `${flight.name}: CertificateRequest seen or not`);
    const direct = parse(flight.bytes, flight.secret);
    t.ok(sameChain(direct.facts.certificates), `${flight.name}: parsed directly`);
    const rebuilt = build(flight);
    t.ok(rebuilt.bytes.length > 0 && sameChain(parse(rebuilt.bytes, flight.secret).facts.certificates), `${flight.name}: rebuilt by this test`);
    if (flight.tls13) t.same(parse(flight.bytes, undefined).facts, { certificates: [], certificateRequested: false, version: "TLSv1.3" }, `${flight.name}: without the secret, no chain`);
  }
});

/**
 * Runs `cases`, collecting every problem with its label; one assertion for all. Returns how many
 * cases there were and how many gave the whole chain, some other certificates, or none.
 */
function check(t: Test, name: string, cases: Iterable<Case>): { count: number; chain: number; other: number; none: number } {
  const problems: string[] = [];
  const tally = { count: 0, chain: 0, other: 0, none: 0 };
  for (const c of cases) {
    tally.count++;
    const outcome = tryParse(c.input, c.secret);
    const found = universal(c.input, c.plaintext, outcome);
    if (!(outcome instanceof Error)) {
      const certificates = outcome.facts.certificates;
      if (certificates.length === 0) tally.none++;
      else if (sameChain(certificates)) tally.chain++;
      else tally.other++;
      const wrong = c.expect?.(outcome.facts);
      if (wrong) found.push(wrong);
    }
    if (found.length > 0 && problems.length < 20) problems.push(`${c.label}: ${found.join("; ")}`);
  }
  t.same(problems, [], `${name}: ${tally.count} cases (${tally.chain} gave the chain, ${tally.other} other certificates, ${tally.none} none)`);
  return tally;
}

const exactly =
  (flight: Flight, chain: readonly Buffer[] = CHAIN) =>
  (facts: WireFacts): string | undefined => {
    if (!sameChain(facts.certificates, chain)) return `expected the chain, got ${facts.certificates.length} certificates`;
    if (facts.version !== flight.version) return `version ${facts.version}`;
    if (facts.certificateRequested !== flight.certificateRequested) return "certificateRequested wrong";
    return undefined;
  };

const chainOrNone = (facts: WireFacts): string | undefined =>
  facts.certificates.length === 0 || sameChain(facts.certificates) ? undefined : `neither the chain nor nothing: ${facts.certificates.length} certificates`;

function* truncations(flight: Flight, built: Built, offsets: Iterable<number>, label: string): Generator<Case> {
  // A longer prefix never loses the chain a shorter one gave.
  let found = false;
  for (const at of offsets) {
    yield {
      label: `${flight.name}, ${label} cut at ${at}`,
      input: built.bytes.subarray(0, at),
      plaintext: built.plaintext,
      secret: flight.secret,
      expect: (facts) => {
        const wrong = chainOrNone(facts);
        if (wrong) return wrong;
        if (found && facts.certificates.length === 0) return "a longer prefix lost the chain";
        found ||= facts.certificates.length > 0;
        return at === built.bytes.length && !found ? "the whole flight gave no chain" : undefined;
      },
    };
  }
}

function recordBoundaries(bytes: Buffer): number[] {
  const offsets = new Set<number>();
  for (const r of splitRecords(bytes)) for (const at of [r.start - 1, r.start, r.start + 1, r.start + 5, r.end - 1]) if (at >= 0) offsets.add(at);
  offsets.add(bytes.length);
  return [...offsets].sort((a, b) => a - b);
}

const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);

for (const flight of flights) {
  t.test(`${flight.name}: truncated at every byte`, async (t) => {
    check(t, "every byte", truncations(flight, { bytes: flight.bytes, plaintext: Buffer.concat([flight.serverHello, ...flight.messages]) }, range(flight.bytes.length + 1), "captured"));
  });

  t.test(`${flight.name}: one-byte records, whole and truncated`, async (t) => {
    const oneByte = build(flight, { helloSizes: [1], restSizes: [1] });
    check(t, "whole", [{ label: `${flight.name}, one-byte records`, input: oneByte.bytes, plaintext: oneByte.plaintext, secret: flight.secret, expect: exactly(flight) }]);
    // Every record boundary (and the bytes around it) in TLS 1.2; in TLS 1.3 each of the thousands
    // of one-byte records is decrypted, so a sample of 120 boundaries in order.
    let offsets = recordBoundaries(oneByte.bytes);
    if (flight.tls13) {
      const rng = new Rng(caseSeed(99, flights.indexOf(flight)));
      offsets = [...new Set([...range(120).map(() => rng.int(oneByte.bytes.length)), oneByte.bytes.length])].sort((a, b) => a - b);
    }
    check(t, "truncated", truncations(flight, oneByte, offsets, "one-byte records"));
  });

  t.test(`${flight.name}: transformations that keep the chain`, async (t) => {
    const rng = new Rng(caseSeed(100, flights.indexOf(flight)));
    const cases: Case[] = [];
    const add = (label: string, built: Built, expect = exactly(flight)): void => {
      cases.push({ label: `${flight.name}, ${label}`, input: built.bytes, plaintext: built.plaintext, secret: flight.secret, expect });
    };
    for (let i = 0; i < 100; i++) {
      const helloSizes = [1 + rng.int(flight.serverHello.length)];
      const restSizes = range(8).map(() => 1 + rng.int(rng.int(2) ? 16 : 2000));
      add(`records of ${helloSizes.join(",")} / ${restSizes.join(",")} bytes`, build(flight, { helloSizes, restSizes }));
    }
    add("the ServerHello in one-byte records", build(flight, { helloSizes: [1] }));
    const hrr = helloRetryRequest(flight);
    add("a HelloRetryRequest first", build(flight, { before: Buffer.concat([record(HANDSHAKE, hrr), record(CCS, Buffer.from([1]))]) }));
    add("a HelloRetryRequest in the ServerHello's record", build(flight, { serverHello: Buffer.concat([hrr, flight.serverHello]) }));
    for (const n of [1, 3]) {
      const before = Buffer.concat(range(n).map(() => record(APPLICATION_DATA, rng.bytes(rng.int(64)))));
      add(`${n} application-data records before the ServerHello`, build(flight, { before }));
    }
    add("garbage after the flight", build(flight, { after: rng.bytes(4096) }));
    add("a record header announcing 64 KiB after the flight", build(flight, { after: Buffer.from([HANDSHAKE, 3, 3, 0xff, 0xff, 11]) }));
    add("a second Certificate message after the flight", build(flight, { after: record(HANDSHAKE, Buffer.concat([Buffer.from([11, 0, 0, 7, 0, 0, 4, 0, 0, 1, 0x30])])) }));
    add("empty handshake records between records", build(flight, { restSizes: [300], interleave: () => record(HANDSHAKE, Buffer.alloc(0)) }));
    add("ChangeCipherSpec records between records", build(flight, { restSizes: [300], interleave: () => record(CCS, Buffer.from([1])) }));
    if (flight.tls13) {
      add("an empty application-data record among the encrypted ones", build(flight, { restSizes: [300], interleave: (i) => (i === 0 ? record(APPLICATION_DATA, Buffer.alloc(0)) : undefined) }), chainOrNone);
      add("padding inside the encrypted records", buildPadded(flight, rng));
    } else {
      add("application-data records between records", build(flight, { restSizes: [300], interleave: () => record(APPLICATION_DATA, rng.bytes(40)) }));
    }
    check(t, "kept", cases);
  });

  t.test(`${flight.name}: cipher suites in the ServerHello`, async (t) => {
    const cases: Case[] = [];
    for (const suite of [0x1301, 0x1302, 0x1303, 0x1304, 0x1305, 0x0000, 0x00ff, 0xc02f, 0xffff]) {
      const built = build(flight, { serverHello: withSuite(flight, suite) });
      const expect = !flight.tls13 || suite === flight.suite ? exactly(flight) : (facts: WireFacts) => (facts.certificates.length === 0 && facts.version === "TLSv1.3" ? undefined : `suite ${suite.toString(16)}: ${facts.certificates.length} certificates, ${facts.version}`);
      cases.push({ label: `${flight.name}, suite ${suite.toString(16)}`, input: built.bytes, plaintext: built.plaintext, secret: flight.secret, expect });
    }
    check(t, "suites", cases);
  });

  t.test(`${flight.name}: ${CASES_PER_FLIGHT} random mutations`, async (t) => {
    const flightIndex = flights.indexOf(flight);
    function* cases(): Generator<Case> {
      for (let i = 0; i < CASES_PER_FLIGHT; i++) {
        const seed = caseSeed(flightIndex, i);
        const rng = new Rng(seed);
        let built: Built;
        const labels: string[] = [];
        if (rng.int(3) === 0) {
          const m = messageMutation(flight, rng);
          built = m.built;
          labels.push(m.label);
        } else {
          built = rng.int(4) === 0 ? build(flight, { restSizes: [1 + rng.int(64)] }) : { bytes: flight.bytes, plaintext: Buffer.concat([flight.serverHello, ...flight.messages]) };
        }
        const stacked = 1 + rng.int(3);
        for (let j = 0; j < stacked && built.bytes.length > 0; j++) {
          const m = rng.pick(byteMutations)(flight, built, rng);
          built = m.built;
          labels.push(m.label);
        }
        yield { label: `${flight.name}, case seed ${seed.toString(16)}: ${labels.join(" + ")}`, input: built.bytes, plaintext: built.plaintext, secret: flight.secret };
      }
    }
    const tally = check(t, "random", cases());
    // The mutations reach the certificate reader, not only the record layer.
    t.ok(tally.chain > CASES_PER_FLIGHT / 10, `${tally.chain} mutated flights still gave the chain`);
  });
}

function helloRetryRequest(flight: Flight): Buffer {
  const hello = flight.serverHello;
  const sessionId = hello.subarray(39, 39 + (hello[38] as number));
  const suite = Buffer.alloc(2);
  suite.writeUInt16BE(flight.tls13 ? flight.suite : 0x1301);
  const extensions = Buffer.from([0, 43, 0, 2, 3, 4, 0, 51, 0, 2, 0, 0x1d]);
  const body = Buffer.concat([Buffer.from([3, 3]), HRR_RANDOM, Buffer.from([sessionId.length]), sessionId, suite, Buffer.from([0, 0, extensions.length]), extensions]);
  return Buffer.concat([Buffer.from([2, 0, body.length >> 8, body.length & 0xff]), body]);
}

function withSuite(flight: Flight, suite: number): Buffer {
  const hello = Buffer.from(flight.serverHello);
  hello.writeUInt16BE(suite, 39 + (hello[38] as number));
  return hello;
}

/** The TLS 1.3 flight with zero padding after each record's content type (RFC 8446 5.4). */
function buildPadded(flight: Flight, rng: Rng): Built {
  const protection = new RecordProtection(flight.suite, flight.secret as Buffer);
  const rest = Buffer.concat(flight.messages);
  const records: Buffer[] = [];
  for (let at = 0; at < rest.length; at += 500) records.push(protection.seal(rest.subarray(at, at + 500), HANDSHAKE, rng.int(200)));
  const bytes = Buffer.concat([record(HANDSHAKE, flight.serverHello), record(CCS, Buffer.from([1])), ...records, flight.after]);
  return { bytes, plaintext: Buffer.concat([flight.serverHello, rest]) };
}

// ---------------------------------------------------------------------------------------------
// Cases the fuzz found in the reader as it was before these tests (seeds of the TLS 1.2 flights'
// random mutations, against the certificates of the run that found them; kept as inputs built by
// hand, since a seed replays on that run's certificates only). It threw a RangeError on a
// ServerHello shorter than its fixed fields, a session id or extensions running past it, an empty
// Certificate message, TLS 1.3 certificate extensions past the message's end; and it took a
// version from a ServerHello whose extensions did not parse. Each now gives nothing for the
// malformed message (and for a ServerHello, stops there, as OpenSSL would).

function handshakeMessage(type: number, body: Buffer): Buffer {
  const header = Buffer.from([type, 0, 0, 0]);
  header.writeUIntBE(body.length, 1, 3);
  return Buffer.concat([header, body]);
}

const tls12 = flights[0] as Flight;
const tls13 = flights[2] as Flight;

function withMessage(flight: Flight, type: number, replacement: Buffer): Buffer {
  return withMessageBuilt(flight, type, replacement).bytes;
}

function withMessageBuilt(flight: Flight, type: number, replacement: Buffer): Built {
  const rest = flight.messages.map((m) => (m[0] === type ? replacement : m));
  return build(flight, { rest: Buffer.concat(rest) });
}

t.test("regressions: ServerHello and Certificate messages that end early", async (t) => {
  const helloBody = tls12.serverHello.subarray(4);
  const regressions: { label: string; input: Buffer; secret?: Buffer; expect: Partial<WireFacts> }[] = [];
  // Seeds 308b6cf3, 8675827d, e290e1aa, 6f5d148d, fb6cf5a8: a ServerHello shorter than its fixed fields.
  for (const n of [0, 1, 2, 33, 34, 35, 36, 37]) {
    regressions.push({ label: `a ServerHello of ${n} bytes`, input: build(tls12, { serverHello: handshakeMessage(2, helloBody.subarray(0, n)) }).bytes, expect: { certificates: [], version: "" } });
  }
  // Seeds c9d7cd5f, e4ec0ab7, 26ec3373: a session id length past the end of the ServerHello.
  for (const sessionIdLength of [33, 100, 255]) {
    const body = Buffer.from(helloBody);
    body[34] = sessionIdLength;
    regressions.push({ label: `a session id of ${sessionIdLength} bytes`, input: build(tls12, { serverHello: handshakeMessage(2, body) }).bytes, expect: { certificates: [], version: "" } });
  }
  // Extensions whose lengths run past the ServerHello.
  const extensionsAt = 35 + (helloBody[34] as number) + 3;
  for (const [label, at, value] of [
    ["the extensions' length", extensionsAt, 0xffff],
    ["an extension's length", extensionsAt + 4, 0xfff0],
  ] as const) {
    const body = Buffer.from(helloBody);
    body.writeUInt16BE(value, at);
    regressions.push({ label: `${label} past the end`, input: build(tls12, { serverHello: handshakeMessage(2, body) }).bytes, expect: { certificates: [], version: "" } });
  }
  // Seed 488270c8 (and 1e3ff9e5, cut inside it): an empty Certificate message; the rest of the flight still reads.
  regressions.push({ label: "an empty Certificate message (TLS 1.2)", input: withMessage(tls12, 11, handshakeMessage(11, Buffer.alloc(0))), expect: { certificates: [], version: "TLSv1.2" } });
  regressions.push({ label: "an empty Certificate message (TLS 1.3)", input: withMessage(tls13, 11, handshakeMessage(11, Buffer.alloc(0))), secret: tls13.secret as Buffer, expect: { certificates: [], version: "TLSv1.3" } });
  // A Certificate message cut inside an entry, its list length kept.
  const certificate12 = tls12.messages.find((m) => m[0] === 11) as Buffer;
  regressions.push({ label: "a Certificate message cut inside an entry", input: withMessage(tls12, 11, handshakeMessage(11, certificate12.subarray(4, 400))), expect: { certificates: [], version: "TLSv1.2" } });
  // TLS 1.3: the last certificate's extensions length past the end of the message.
  const certificate13 = Buffer.from(tls13.messages.find((m) => m[0] === 11) as Buffer);
  certificate13.writeUInt16BE(0xffff, certificate13.length - 2);
  regressions.push({ label: "certificate extensions past the end (TLS 1.3)", input: withMessage(tls13, 11, certificate13), secret: tls13.secret as Buffer, expect: { certificates: [], version: "TLSv1.3" } });
  // An empty certificate entry.
  regressions.push({ label: "an empty certificate entry", input: withMessage(tls12, 11, handshakeMessage(11, Buffer.from([0, 0, 3, 0, 0, 0]))), expect: { certificates: [], version: "TLSv1.2" } });
  for (const r of regressions) {
    const outcome = tryParse(r.input, r.secret);
    t.same(universal(r.input, Buffer.alloc(0), outcome), [], `${r.label}: no throw, bounded`);
    if (!(outcome instanceof Error)) t.match(outcome.facts, r.expect, r.label);
  }
});

t.test("TLS 1.3: the reading ends with the Certificate message, so nothing after it is decrypted", async (t) => {
  for (const flight of flights.filter((f) => f.tls13)) {
    // One record per handshake byte: the reader counts two steps per record it decrypts (the record,
    // and a look for a whole message), so reading past the Certificate would add two per byte after it.
    const { bytes } = build(flight, { restSizes: [1] });
    const meter: FlightMeter = { steps: 0 };
    const facts = parseServerFlight(bytes, flight.secret, meter);
    t.ok(sameChain(facts.certificates), `${flight.name}: the chain`);
    t.equal(facts.certificateRequested, flight.certificateRequested, `${flight.name}: the CertificateRequest, which comes before the Certificate`);
    const certificateAt = flight.messages.findIndex((m) => m[0] === 11);
    const throughCertificate = flight.messages.slice(0, certificateAt + 1).reduce((n, m) => n + m.length, 0);
    const afterCertificate = flight.messages.slice(certificateAt + 1).reduce((n, m) => n + m.length, 0);
    t.ok(afterCertificate > STEP_SLACK, `${flight.name}: CertificateVerify and Finished take ${afterCertificate} records`);
    t.ok(meter.steps <= 2 * throughCertificate + STEP_SLACK, `${flight.name}: ${meter.steps} steps for the ${throughCertificate} records through the Certificate`);
  }
});

// ---------------------------------------------------------------------------------------------
// A Certificate message of 1 MiB: read in full when parsed directly (the reader's only bound is its
// input), and not at all through a WireTap, which keeps MAX_CAPTURE bytes of the server's traffic.

const MIB = 1024 * 1024;
const huge = new Rng(0x1_0000).bytes(MIB);

function certificateMessage(certificates: Buffer[], tls13: boolean): Buffer {
  const entries = certificates.map((der) => {
    const length = Buffer.alloc(3);
    length.writeUIntBE(der.length, 0, 3);
    return Buffer.concat([length, der, tls13 ? Buffer.alloc(2) : Buffer.alloc(0)]);
  });
  const list = Buffer.concat(entries);
  const listLength = Buffer.alloc(3);
  listLength.writeUIntBE(list.length, 0, 3);
  return handshakeMessage(11, Buffer.concat([tls13 ? Buffer.from([0]) : Buffer.alloc(0), listLength, list]));
}

for (const flight of [tls12, tls13]) {
  t.test(`${flight.name}: a Certificate message of 1 MiB, parsed directly`, async (t) => {
    const chain = [leaf.der, huge, intermediate.der, root.der];
    const { bytes: input, plaintext } = withMessageBuilt(flight, 11, certificateMessage(chain, flight.tls13));
    t.ok(input.length > MIB && input.length > MAX_CAPTURE, `${input.length} bytes`);
    const outcome = parse(input, flight.secret);
    t.ok(sameChain(outcome.facts.certificates, chain), "all four certificates, the 1 MiB one included");
    t.ok(outcome.steps <= input.length + STEP_SLACK, `${outcome.steps} steps for ${input.length} bytes`);
    t.same(universal(input, plaintext, outcome), [], "bounded by the input, nothing made up");
    // Announcing the most a handshake length can say (16 MiB - 1) with 1 MiB behind it: nothing.
    const claimed = Buffer.from(certificateMessage(chain, flight.tls13));
    claimed.writeUIntBE(0xffffff, 1, 3);
    const short = withMessage(flight, 11, claimed);
    const partial = parse(short, flight.secret);
    t.same(partial.facts.certificates, [], "an incomplete message gives nothing");
    t.ok(partial.steps <= short.length + STEP_SLACK, `${partial.steps} steps for ${short.length} bytes`);
  });
}

/** Serves `bytes` to whoever connects, and reads them back through a WireTap. */
async function throughTap(bytes: Buffer): Promise<WireTap> {
  const sockets = new Set<Socket>();
  const server = createNetServer((socket) => {
    sockets.add(socket);
    socket.on("error", () => undefined);
    socket.end(bytes);
  });
  server.listen({ port: 0, host: "127.0.0.1" });
  await once(server, "listening");
  const raw = netConnect({ host: "127.0.0.1", port: (server.address() as AddressInfo).port });
  const tap = new WireTap(raw);
  tap.on("error", () => undefined);
  tap.resume();
  await once(tap, "end");
  tap.destroy();
  for (const socket of sockets) socket.destroy();
  await new Promise((resolve) => server.close(resolve));
  return tap;
}

t.test("through a WireTap: a flight over MAX_CAPTURE gives no chain, one under it does", async (t) => {
  const over = withMessage(tls12, 11, certificateMessage([leaf.der, huge, intermediate.der], false));
  const overTap = await throughTap(over);
  t.same(overTap.certificates(), [], "the Certificate message ends beyond the capture");
  t.equal(overTap.version(), "TLSv1.2", "what came before it is still read");
  t.ok(overTap.capturedBytes >= MAX_CAPTURE && overTap.capturedBytes <= MAX_CAPTURE + 64 * 1024, `${overTap.capturedBytes} bytes kept of ${over.length}`);
  const under = withMessage(tls12, 11, certificateMessage([leaf.der, huge.subarray(0, MAX_CAPTURE / 2), intermediate.der], false));
  const underTap = await throughTap(under);
  t.equal(underTap.certificates().length, 3, "a 128 KiB certificate within the capture is read");
  t.equal(underTap.capturedBytes, under.length);
});

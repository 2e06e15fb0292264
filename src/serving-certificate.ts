/**
 * The exporter's own TLS identity: the serving certificate, its key and the client CA, read from the
 * files (or inline values) of the web config, checked, and swapped into the running server when the
 * files are renewed (cert-manager, kubelet-synced Secret volumes), with no restart.
 */
import { X509Certificate, createPrivateKey, type KeyObject } from "node:crypto";
import { createSecureContext, type SecureContextOptions, type Server as TlsServer, type TlsOptions, type TLSSocket } from "node:tls";
import { parseCertificates } from "./certs/parse.js";
import type { CertRecord } from "./certs/record.js";
import type { Logger } from "./log.js";
import { readFileBounded } from "./read-bounded.js";
import { FileReader, type FileOutcome } from "./sources/file-reader.js";
import type { TlsServerSettings } from "./web-config.js";

/** A certificate chain, a key or a client CA bundle is a few KiB; every public root together is about 200 KiB. */
const MAX_TLS_FILE_BYTES = 1024 * 1024;
/**
 * How often the files are checked for a renewal. Polled rather than watched: a Secret volume renews
 * by swapping a symlink to a new folder, which inotify-based watches on the old files never see.
 */
const POLL_INTERVAL_MS = 5_000;

type Part = "cert" | "key" | "ca";

/** The bytes of one TLS identity. */
type ServingMaterial = Partial<Record<Part, Buffer>>;

/** Where each part comes from, and its name in the web config for messages. */
function sources(settings: TlsServerSettings): { part: Part; file?: string; inline?: string; name: string }[] {
  const all = [
    { part: "cert" as const, file: settings.certFile, inline: settings.cert, name: settings.certFile ? "cert_file" : "cert" },
    { part: "key" as const, file: settings.keyFile, inline: settings.key, name: settings.keyFile ? "key_file" : "key" },
    { part: "ca" as const, file: settings.clientCaFile, inline: settings.clientCa, name: settings.clientCaFile ? "client_ca_file" : "client_ca" },
  ];
  return all.filter((source) => source.file !== undefined || source.inline !== undefined);
}

/** Reads every part now, from its file (bounded, non-blocking) or inline. Throws naming the key. */
export function readServingMaterial(settings: TlsServerSettings): ServingMaterial {
  const material: ServingMaterial = {};
  for (const { part, file, inline, name } of sources(settings)) {
    try {
      material[part] = file === undefined ? Buffer.from(inline as string) : readFileBounded(file, MAX_TLS_FILE_BYTES);
    } catch (err) {
      throw new Error(`tls_server_config.${name}: ${(err as Error).message}`, { cause: err });
    }
  }
  checkMaterial(settings, material);
  return material;
}

function contextOptions(settings: TlsServerSettings, material: ServingMaterial): SecureContextOptions {
  const { minVersion, maxVersion, ciphers, ecdhCurve, honorCipherOrder } = settings;
  return { cert: material.cert, key: material.key, ca: material.ca, minVersion, maxVersion, ciphers, ecdhCurve, honorCipherOrder };
}

/**
 * The secure context options of `material` and its leaf certificate, once the certificates parse, the
 * key is the leaf's, and OpenSSL takes them. Throws naming what is wrong, never quoting the bytes.
 */
function checkMaterial(settings: TlsServerSettings, material: ServingMaterial): { options: SecureContextOptions; leaf: CertRecord } {
  const named = Object.fromEntries(sources(settings).map(({ part, name }) => [part, name]));
  const parse = (part: Part, bytes: Buffer): CertRecord[] => {
    try {
      return parseCertificates(bytes);
    } catch (err) {
      throw new Error(`tls_server_config.${named[part]}: ${(err as Error).message}`, { cause: err });
    }
  };
  const [leaf] = parse("cert", material.cert as Buffer);
  if (material.ca) parse("ca", material.ca);
  let key: KeyObject;
  try {
    key = createPrivateKey(material.key as Buffer);
  } catch (err) {
    throw new Error(`tls_server_config.${named.key}: not a usable private key (${(err as Error).message})`, { cause: err });
  }
  // OpenSSL takes a key of another type than the certificate's without a word, and then cannot serve.
  if (!new X509Certificate(material.cert as Buffer).checkPrivateKey(key)) {
    throw new Error(`tls_server_config: the ${named.key} is not the private key of the ${named.cert} certificate`);
  }
  const options = contextOptions(settings, material);
  try {
    createSecureContext(options);
  } catch (err) {
    throw new Error(`tls_server_config: ${(err as Error).message}`, { cause: err });
  }
  return { options, leaf: leaf as CertRecord };
}

const sameMaterial = (a: ServingMaterial, b: ServingMaterial): boolean =>
  (["cert", "key", "ca"] as const).every((part) => (a[part] === undefined ? b[part] === undefined : b[part] !== undefined && a[part].equals(b[part])));

/** The SAN values of a certificate as Go lists them: DNS names, e-mail addresses, IPs and URIs, without their kind. */
function sanValues(certificate: X509Certificate): string[] {
  try {
    const [record] = parseCertificates(certificate.raw, "der");
    return (record?.sans ?? []).map((san) => san.slice(san.indexOf(":") + 1));
  } catch {
    // OpenSSL took it, our decoder did not: it names nothing that could be allowed.
    return [];
  }
}

/**
 * The serving identity of an HTTPS server, reloaded while it runs. Renewed files are picked up within
 * a poll interval or two; a renewal that cannot be used (a missing file, a certificate that does not
 * match its key) keeps the identity in use, and is logged once.
 */
export class ServingCertificate {
  readonly #settings: TlsServerSettings;
  readonly #log: Logger;
  readonly #watched: { part: Part; file: string }[];
  /** Reads a file only when its stat changed; the copy it returns outlives the reader's zeroed buffer. */
  readonly #reader = new FileReader<Buffer>((bytes) => Buffer.from(bytes), { maxFileSize: MAX_TLS_FILE_BYTES });
  #applied: ServingMaterial;
  #seen: FileOutcome<Buffer>[] = [];
  #timer: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(settings: TlsServerSettings, log: Logger) {
    this.#settings = settings;
    this.#log = log;
    this.#watched = sources(settings).flatMap(({ part, file }) => (file === undefined ? [] : [{ part, file }]));
    this.#applied = readServingMaterial(settings);
  }

  /** Options for https.createServer: the identity, and whether to ask for client certificates. */
  serverOptions(): TlsOptions {
    const { clientAuth } = this.#settings;
    return {
      ...contextOptions(this.#settings, this.#applied),
      requestCert: clientAuth !== "NoClientCert",
      // OpenSSL enforces this one in the handshake; the weaker policies are enforced in #admit.
      rejectUnauthorized: clientAuth === "RequireAndVerifyClientCert",
    };
  }

  /** Enforces the client-certificate policy on `server`'s connections and starts watching the files. */
  attach(server: TlsServer): void {
    const { clientAuth, clientAllowedSans } = this.#settings;
    if (clientAuth === "RequireAnyClientCert" || clientAuth === "VerifyClientCertIfGiven" || clientAllowedSans) {
      server.on("secureConnection", (socket: TLSSocket) => this.#admit(socket));
    }
    if (this.#watched.length > 0) this.#schedule(server);
  }

  close(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
  }

  /** Closes a connection whose client certificate the policy refuses, before any request on it is read. */
  #admit(socket: TLSSocket): void {
    const { clientAuth, clientAllowedSans } = this.#settings;
    const peer = socket.getPeerX509Certificate();
    let refusal: string | undefined;
    if (!peer && clientAuth === "RequireAnyClientCert") refusal = "no client certificate";
    else if (peer && clientAuth === "VerifyClientCertIfGiven" && !socket.authorized) refusal = `client certificate not verified: ${String(socket.authorizationError)}`;
    else if (clientAllowedSans && !(peer && sanValues(peer).some((value) => clientAllowedSans.includes(value)))) refusal = "client certificate has none of client_allowed_sans";
    if (refusal === undefined) return;
    this.#log.debug({ remoteAddress: socket.remoteAddress, refusal }, "TLS connection refused");
    socket.destroy();
  }

  #schedule(server: TlsServer): void {
    this.#timer = setTimeout(() => {
      this.#reload(server)
        .catch((err: unknown) => this.#log.error({ err }, "checking the serving certificate files failed"))
        .finally(() => {
          if (!this.#closed) this.#schedule(server);
        });
    }, POLL_INTERVAL_MS);
    this.#timer.unref();
  }

  /** What every watched file reads now; the reader hands back the very same outcome while a file's stat is unchanged. */
  #read(): Promise<FileOutcome<Buffer>[]> {
    this.#reader.beginScan();
    return Promise.all(this.#watched.map(({ file }) => this.#reader.read(file)));
  }

  async #reload(server: TlsServer): Promise<void> {
    const same = (a: FileOutcome<Buffer>[], b: FileOutcome<Buffer>[]) => a.every((outcome, i) => outcome === b[i]);
    const outcomes = await this.#read();
    if (same(outcomes, this.#seen)) return;
    // A renewal caught in the middle (the certificate read before a swap, the key after) reads
    // differently a second time; the next poll sees it whole.
    if (!same(outcomes, await this.#read())) return;
    this.#seen = outcomes;
    const material: ServingMaterial = { ...this.#applied };
    for (const [i, outcome] of outcomes.entries()) {
      if (outcome.kind !== "value") return this.#keep(outcome.error.message);
      material[(this.#watched[i] as { part: Part }).part] = outcome.value;
    }
    // Touched, or read for the first time, with the bytes already in use.
    if (sameMaterial(material, this.#applied)) return;
    let checked;
    try {
      checked = checkMaterial(this.#settings, material);
    } catch (err) {
      return this.#keep((err as Error).message);
    }
    server.setSecureContext(checked.options);
    this.#applied = material;
    this.#log.info({ subject: checked.leaf.subject, serial: checked.leaf.serial, notAfter: new Date(checked.leaf.notAfter * 1000).toISOString() }, "serving certificate reloaded");
  }

  #keep(why: string): void {
    this.#log.warn({ reason: why }, "the renewed serving certificate cannot be used; still serving the previous one");
  }
}

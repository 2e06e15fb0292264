/**
 * Keys and certificates made by the real `openssl` command at test time, in a temporary folder
 * removed at teardown: roots, intermediates and leaves, with any key reused, so tests can build
 * good and broken chains and key pairs the way operators' tools make them.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export type KeyKind = "rsa" | "ec" | "ed25519";

export interface Made {
  /** Path of the certificate (PEM). */
  cert: string;
  /** Path of its private key (PEM, PKCS#8). */
  key: string;
  /** The certificate's PEM text. */
  pem: string;
}

interface Teardown {
  teardown(fn: () => unknown): void;
}

const KEY_ARGS: Record<KeyKind, string[]> = {
  rsa: ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
  ec: ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
  ed25519: ["-algorithm", "ED25519"],
};

export class OpensslPki {
  readonly dir: string;
  #serial = 1;

  constructor(t: Teardown) {
    this.dir = mkdtempSync(join(tmpdir(), "cee-pki-"));
    t.teardown(() => rmSync(this.dir, { recursive: true, force: true }));
  }

  openssl(args: string[]): string {
    return execFileSync("openssl", args, { cwd: this.dir, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  }

  path(name: string): string {
    return join(this.dir, name);
  }

  read(name: string): Buffer {
    return readFileSync(this.path(name));
  }

  /** A new private key `<name>.key` (PKCS#8 PEM). */
  key(name: string, kind: KeyKind = "ec"): string {
    const path = this.path(`${name}.key`);
    this.openssl(["genpkey", ...KEY_ARGS[kind], "-out", path]);
    return path;
  }

  /** A self-signed CA. */
  root(name: string, cn: string, options: { kind?: KeyKind; key?: string; days?: number } = {}): Made {
    const key = options.key ?? this.key(name, options.kind);
    const cert = this.path(`${name}.crt`);
    this.openssl(["req", "-x509", "-new", "-key", key, "-subj", `/CN=${cn}`, "-days", String(options.days ?? 30), "-addext", "basicConstraints=critical,CA:true", "-addext", "keyUsage=critical,keyCertSign,cRLSign", "-out", cert]);
    return { cert, key, pem: readFileSync(cert, "utf8") };
  }

  /** A certificate signed by `issuer`: a CA when `ca`, else a server leaf. */
  issue(name: string, cn: string, issuer: Made, options: { ca?: boolean; kind?: KeyKind; key?: string; days?: number } = {}): Made {
    const key = options.key ?? this.key(name, options.kind);
    const csr = this.path(`${name}.csr`);
    const ext = this.path(`${name}.ext`);
    const cert = this.path(`${name}.crt`);
    writeFileSync(ext, options.ca ? "basicConstraints=critical,CA:true\nkeyUsage=critical,keyCertSign,cRLSign\n" : `basicConstraints=CA:false\nsubjectAltName=DNS:${cn}\n`);
    this.openssl(["req", "-new", "-key", key, "-subj", `/CN=${cn}`, "-out", csr]);
    this.openssl(["x509", "-req", "-in", csr, "-CA", issuer.cert, "-CAkey", issuer.key, "-set_serial", String(this.#serial++), "-days", String(options.days ?? 20), "-extfile", ext, "-out", cert]);
    return { cert, key, pem: readFileSync(cert, "utf8") };
  }
}

/** PEM texts joined as one bundle. */
export const bundle = (...made: (Made | string)[]): string => made.map((m) => (typeof m === "string" ? m : m.pem)).join("");

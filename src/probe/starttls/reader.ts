/**
 * The one reader every STARTTLS exchange reads the server through: whole lines of at most
 * `maxLineBytes`, replies of at most `maxLines` lines, or exact byte counts of at most
 * `maxBufferedBytes`. It never holds more than that (plus one socket chunk): a server that talks
 * without end, sends a line without end or announces a huge packet fails the exchange with
 * `starttls_error` as soon as the limit is crossed. The probe's deadline comes through the
 * AbortSignal and fails a pending read with `handshake_timeout`. `release()` hands the bytes read
 * past the exchange back to the socket, so the TLS handshake starts on exactly the server's first
 * TLS byte.
 */
import type { Socket } from "node:net";
import { PreludeError } from "../prelude.js";

/**
 * One protocol's STARTTLS exchange: the server's greeting, the protocol's request to start TLS and
 * its go-ahead, all through `reader`. It resolves once the next byte is the server's first TLS byte
 * and throws the reader's errors (`reader.error(...)` for a refusal).
 */
export type StartTlsExchange = (reader: StartTlsReader) => Promise<void>;

export interface ReaderLimits {
  /** A longer line, CRLF included, fails the exchange. */
  maxLineBytes: number;
  /** A reply (a greeting, an answer to one command) of more lines fails the exchange. */
  maxLines: number;
  /** Bytes held unread at once, and the largest exact read. */
  maxBufferedBytes: number;
}

/**
 * Replies are a few lines of a few dozen bytes (RFC 5321 allows 512 bytes a line); the largest are an
 * EHLO's list of extensions and an FTP welcome banner.
 */
export const DEFAULT_LIMITS: ReaderLimits = { maxLineBytes: 2048, maxLines: 100, maxBufferedBytes: 64 * 1024 };

/** A numbered reply of SMTP or FTP: its code and every line's text after the code. */
export interface CodedReply {
  code: number;
  lines: string[];
}

interface Want {
  /** Resolves with the request's bytes once they are buffered; undefined while they are not. */
  take: () => Buffer | undefined;
  resolve: (value: Buffer) => void;
  reject: (error: PreludeError) => void;
}

/**
 * A server's text as a message shows it: at most 80 characters, printable ASCII only (the rest as
 * `?`), quoted. Messages end up in logs and on the status page.
 */
export function quote(text: string): string {
  const shown = text.slice(0, 80).replace(/[^\x20-\x7e]/g, "?");
  return JSON.stringify(text.length > 80 ? `${shown}...` : shown);
}

export class StartTlsReader {
  /** The protocol's name for messages: "SMTP", "LDAP". */
  readonly protocol: string;
  readonly limits: ReaderLimits;
  readonly #socket: Socket;
  readonly #signal: AbortSignal;
  #buffer: Buffer = Buffer.alloc(0);
  /** Bytes of `#buffer` already searched for a line end. */
  #scanned = 0;
  #want: Want | undefined;
  #failure: PreludeError | undefined;
  #ended = false;
  #released = false;

  constructor(protocol: string, socket: Socket, signal: AbortSignal, limits: ReaderLimits = DEFAULT_LIMITS) {
    this.protocol = protocol;
    this.limits = limits;
    this.#socket = socket;
    this.#signal = signal;
    socket.on("data", this.#onData);
    socket.once("end", this.#onEnd);
    socket.once("error", this.#onError);
    signal.addEventListener("abort", this.#onAbort, { once: true });
    if (signal.aborted) this.#onAbort();
    else if (socket.readableEnded) this.#ended = true;
    // A prelude before this one (a proxy's CONNECT) left the socket paused.
    socket.resume();
  }

  /** The address of our end of the connection, e.g. for SMTP's EHLO. */
  get localAddress(): string | undefined {
    return this.#socket.localAddress;
  }

  /** Sends a command or packet. */
  write(data: string | Buffer): void {
    if (!this.#failure && !this.#released) this.#socket.write(data);
  }

  /** The next line, without its line end (CRLF or LF), as latin1 text. */
  async line(): Promise<string> {
    const bytes = await this.#read(() => {
      const end = this.#buffer.indexOf(0x0a, this.#scanned);
      if (end < 0) {
        this.#scanned = this.#buffer.length;
        if (this.#buffer.length >= this.limits.maxLineBytes) throw this.#error(`the server sent a line longer than ${this.limits.maxLineBytes} bytes`);
        return undefined;
      }
      if (end + 1 > this.limits.maxLineBytes) throw this.#error(`the server sent a line longer than ${this.limits.maxLineBytes} bytes`);
      return this.#consume(end + 1);
    });
    const text = bytes.toString("latin1");
    return text.endsWith("\r\n") ? text.slice(0, -2) : text.slice(0, -1);
  }

  /** Exactly `count` bytes. */
  async bytes(count: number): Promise<Buffer> {
    if (count > this.limits.maxBufferedBytes) throw this.#fail(this.#error(`the server announced ${count} bytes, more than the ${this.limits.maxBufferedBytes} an exchange may take`));
    return this.#read(() => (this.#buffer.length >= count ? this.#consume(count) : undefined));
  }

  /**
   * Lines up to and including the first that `last` accepts, at most `maxLines` of them: an IMAP
   * command's tagged answer after the untagged ones.
   */
  async linesUntil(last: (line: string) => boolean, what: string): Promise<string[]> {
    const lines: string[] = [];
    for (let n = 0; n < this.limits.maxLines; n++) {
      const line = await this.line();
      lines.push(line);
      if (last(line)) return lines;
    }
    throw this.#fail(this.#error(`${what} ran past ${this.limits.maxLines} lines`));
  }

  /**
   * A numbered reply (RFC 5321 4.2, RFC 959 4.2): `ddd-text` lines up to `ddd text` with the same
   * code. FTP allows other lines in between; SMTP does not send them.
   */
  async reply(what: string): Promise<CodedReply> {
    const first = await this.line();
    const head = /^(\d{3})([ -]|$)/.exec(first);
    if (!head) throw this.#fail(this.#error(`${what} is not ${this.protocol}: ${quote(first)}`));
    const code = head[1] as string;
    const lines = [first.slice(4)];
    if (head[2] === "-") {
      const rest = await this.linesUntil((line) => line === code || line.startsWith(`${code} `), what);
      lines.push(...rest.map((line) => (line.startsWith(code) ? line.slice(4) : line)));
    }
    return { code: Number(code), lines };
  }

  /** A `starttls_error` naming the protocol, for the exchange to throw. */
  error(message: string): PreludeError {
    return this.#fail(this.#error(message));
  }

  /**
   * Stops reading and hands what was read past the exchange back to the socket, paused, for the TLS
   * handshake. Also called after a failure, to stop listening.
   */
  release(): void {
    if (this.#released) return;
    this.#released = true;
    this.#socket.off("data", this.#onData);
    this.#socket.off("end", this.#onEnd);
    this.#socket.off("error", this.#onError);
    this.#signal.removeEventListener("abort", this.#onAbort);
    this.#socket.pause();
    if (!this.#failure && this.#buffer.length > 0) this.#socket.unshift(this.#buffer);
    this.#buffer = Buffer.alloc(0);
  }

  #error(message: string): PreludeError {
    return new PreludeError("starttls_error", `${this.protocol} STARTTLS: ${message}`);
  }

  #consume(count: number): Buffer {
    const taken = this.#buffer.subarray(0, count);
    this.#buffer = this.#buffer.subarray(count);
    this.#scanned = 0;
    return taken;
  }

  #read(take: () => Buffer | undefined): Promise<Buffer> {
    if (this.#failure) return Promise.reject(this.#failure);
    if (this.#released) return Promise.reject(this.#error("read after the exchange ended"));
    if (this.#want) return Promise.reject(this.#error("two reads at once"));
    return new Promise<Buffer>((resolve, reject) => {
      this.#want = { take, resolve, reject };
      this.#pump();
    });
  }

  /** Answers the pending read if the buffer holds it; fails the exchange when a limit is crossed. */
  #pump(): void {
    const want = this.#want;
    if (want) {
      let value: Buffer | undefined;
      try {
        value = want.take();
      } catch (err) {
        this.#fail(err as PreludeError);
        return;
      }
      if (value) {
        this.#want = undefined;
        // A copy: the buffer may be a slice of a socket chunk that is handed back to the socket.
        want.resolve(Buffer.from(value));
        return;
      }
      if (this.#ended) {
        this.#fail(this.#error("the server closed the connection"));
        return;
      }
    }
    if (this.#buffer.length > this.limits.maxBufferedBytes) {
      this.#fail(this.#error(`the server sent more than ${this.limits.maxBufferedBytes} bytes without being asked`));
    }
  }

  /** Records the exchange's failure and rejects the pending read with it; returns it. */
  #fail(error: PreludeError): PreludeError {
    this.#failure ??= error;
    this.#buffer = Buffer.alloc(0);
    this.#socket.pause();
    const want = this.#want;
    this.#want = undefined;
    want?.reject(this.#failure);
    return this.#failure;
  }

  readonly #onData = (chunk: Buffer): void => {
    if (this.#failure) return;
    this.#buffer = this.#buffer.length === 0 ? chunk : Buffer.concat([this.#buffer, chunk]);
    this.#pump();
  };

  readonly #onEnd = (): void => {
    this.#ended = true;
    this.#pump();
  };

  readonly #onError = (err: NodeJS.ErrnoException): void => {
    this.#fail(new PreludeError("connection_reset", `${this.protocol} STARTTLS: ${err.message}`));
  };

  readonly #onAbort = (): void => {
    this.#fail(new PreludeError("handshake_timeout", `${this.protocol} STARTTLS: the server did not finish the exchange in time`));
  };
}

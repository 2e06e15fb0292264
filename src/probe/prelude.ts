import type { Socket } from "node:net";
import type { ReadErrorReason } from "../errors.js";

/**
 * A conversation on the plain TCP connection before the TLS handshake: the HTTP CONNECT of a proxy,
 * the STARTTLS exchange of a mail, directory or database protocol. It resolves once the socket is
 * ready for the next step, having consumed exactly the bytes of its own exchange, and rejects with
 * a {@link PreludeError}. It must give up when `signal` aborts: the probe's deadline has passed.
 */
export type Prelude = (socket: Socket, signal: AbortSignal) => Promise<void>;

/** Why a prelude failed, as the probe's read-error reason. */
export class PreludeError extends Error {
  readonly reason: ReadErrorReason;

  constructor(reason: ReadErrorReason, message: string) {
    super(message);
    this.name = "PreludeError";
    this.reason = reason;
  }
}

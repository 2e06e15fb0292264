import { closeSync, constants, fstatSync, openSync, readSync } from "node:fs";
import { CertReadError } from "./errors.js";

/**
 * Reads a small file of at most `maxBytes` that the configuration names (the config file itself, a
 * probe's CA, client certificate or key), trusting neither its name nor its reported size: opened
 * non-blocking (a FIFO must not hang), refused unless it is a regular file, and read one byte past
 * the limit so a file that grows while read (or /proc, which reports size 0) is still caught.
 * Throws CertReadError: `unreadable`, `not_found` or `too_large`.
 */
export function readFileBounded(path: string, maxBytes: number): Buffer {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ENOTDIR") throw new CertReadError("not_found", `${path}: no such file`, { cause: err });
    throw new CertReadError("unreadable", `${path}: ${code ?? "cannot be opened"}`, { cause: err });
  }
  try {
    if (!fstatSync(fd).isFile()) throw new CertReadError("unreadable", `${path}: not a regular file`);
    const buffer = Buffer.alloc(maxBytes + 1);
    let length = 0;
    for (;;) {
      const read = readSync(fd, buffer, length, buffer.length - length, null);
      length += read;
      if (read === 0 || length === buffer.length) break;
    }
    if (length > maxBytes) throw new CertReadError("too_large", `${path}: larger than ${maxBytes} bytes`);
    return buffer.subarray(0, length);
  } catch (err) {
    if (err instanceof CertReadError) throw err;
    throw new CertReadError("unreadable", `${path}: ${(err as NodeJS.ErrnoException).code ?? "cannot be read"}`, { cause: err });
  } finally {
    closeSync(fd);
  }
}

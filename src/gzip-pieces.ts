import { constants, crc32, createDeflateRaw, deflateRawSync, type DeflateRaw } from "node:zlib";

/**
 * One gzip body built from pieces compressed apart, so that a piece compressed once can be sent
 * again in later bodies without compressing its text again (src/metrics.ts keeps them).
 *
 * Each piece is raw deflate ended with a full flush: its blocks are not final, end on a byte boundary
 * and refer to nothing before the piece, so pieces in any order make one valid deflate stream. One gzip member wraps them (RFC 1952): a header, the pieces, a final
 * empty block, and the CRC-32 and length of the whole text, the CRC combined from the pieces' own.
 * One member, not one per piece: every gzip reader reads a single member, not every one reads more.
 */

export interface DeflatedPiece {
  readonly deflated: Buffer;
  /** CRC-32 of the piece's text. */
  readonly crc: number;
  /** Bytes of the piece's text. */
  readonly length: number;
}

/** The least a text buffer holds: most pieces' text fits. */
const MIN_TEXT_BUFFER_BYTES = 256 * 1024;

/**
 * Compresses pieces one after another on the thread pool, through one raw deflate stream whose every
 * write ends with a full flush, which empties the compressor and forgets its history: what it wrote
 * for a piece stands alone. One stream per body rather than one per piece: a compressor's state is
 * about 256 KiB, and thousands of them a scrape cost more CPU, collections and RSS than the pieces.
 * One write per piece, its text joined: each write is a trip to the thread pool and back. The text is
 * copied into buffers the compressor keeps and reuses: text held until compressed outlives the young
 * generation, and hundreds of MiB of it promoted a scrape made V8 run a full collection every few
 * dozen pieces.
 */
export class PieceCompressor {
  readonly #deflate: DeflateRaw;
  #output: Buffer[] = [];
  /** Pieces written and not yet out, in order. */
  readonly #waiting: { crc: number; length: number; resolve: (piece: DeflatedPiece) => void; reject: (err: Error) => void }[] = [];
  #failure: Error | undefined;
  #closing = false;
  /** Text buffers free for the next piece: as many as pieces were ever in flight at once. */
  readonly #free: Buffer[] = [];

  constructor(level: number) {
    this.#deflate = createDeflateRaw({ level, flush: constants.Z_FULL_FLUSH });
    this.#deflate.on("data", (chunk: Buffer) => this.#output.push(chunk));
    this.#deflate.on("error", (err) => this.#fail(err));
    this.#deflate.on("close", () => this.#fail(new Error("the compressor closed before the piece was compressed")));
  }

  /** The text, given as its chunks, compressed as one piece. */
  compress(chunks: readonly Uint8Array[]): Promise<DeflatedPiece> {
    if (this.#failure) return Promise.reject(this.#failure);
    let length = 0;
    for (const chunk of chunks) length += chunk.length;
    let buffer = this.#free.pop();
    if (!buffer || buffer.length < length) buffer = Buffer.allocUnsafe(Math.max(length, MIN_TEXT_BUFFER_BYTES));
    let at = 0;
    for (const chunk of chunks) {
      buffer.set(chunk, at);
      at += chunk.length;
    }
    const text = buffer.subarray(0, length);
    return new Promise((resolve, reject) => {
      this.#waiting.push({ crc: crc32(text), length, resolve, reject });
      // A write calls back once its output has been pushed as data.
      this.#deflate.write(text, () => {
        this.#free.push(buffer);
        const done = this.#waiting.shift();
        if (!done) return;
        const deflated = this.#output.length === 1 ? (this.#output[0] as Buffer) : Buffer.concat(this.#output);
        this.#output = [];
        done.resolve({ deflated, crc: done.crc, length: done.length });
        if (this.#closing && this.#waiting.length === 0) this.#deflate.destroy();
      });
    });
  }

  /**
   * Frees the compressor once the pieces given to it are compressed: a body abandoned midway may
   * share them with another. Destroyed, not ended: ending would make the last piece's flush a finish,
   * whose final block would end the deflate stream of every body the piece goes into.
   */
  close(): void {
    this.#closing = true;
    if (this.#waiting.length === 0) this.#deflate.destroy();
  }

  #fail(err: Error): void {
    this.#failure ??= err;
    for (const waiting of this.#waiting.splice(0)) waiting.reject(this.#failure);
  }
}

/** `text` compressed as a piece on the event loop: for short fixed texts, compressed once. */
export function deflatePieceSync(text: Buffer, level: number): DeflatedPiece {
  return { deflated: deflateRawSync(text, { level, finishFlush: constants.Z_FULL_FLUSH }), crc: crc32(text), length: text.length };
}

/** Magic, deflate, no flags, no time, no extra flags, operating system unknown. */
export const GZIP_HEADER: Buffer = Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff]);

/** A final block of fixed codes holding only its end code: closes the stream the pieces left open. */
const FINAL_BLOCK = [0x03, 0x00];

/** The CRC-32 and length of a body's pieces so far, and the trailer that ends it. */
export class GzipTrailer {
  #crc = 0;
  #length = 0;

  add(piece: DeflatedPiece): void {
    this.#crc = crc32Combine(this.#crc, piece.crc, piece.length);
    this.#length += piece.length;
  }

  /** The final block, then the CRC-32 and the length modulo 2^32, little-endian. */
  end(): Buffer {
    const out = Buffer.alloc(FINAL_BLOCK.length + 8);
    out.set(FINAL_BLOCK);
    out.writeUInt32LE(this.#crc, FINAL_BLOCK.length);
    out.writeUInt32LE(this.#length % 2 ** 32, FINAL_BLOCK.length + 4);
    return out;
  }
}

/** The CRC-32 polynomial, bits reversed, as zlib's CRC-32 uses it. */
const POLYNOMIAL = 0xedb88320;

/** a(x)·b(x) modulo the polynomial, in the reversed bit order of CRC-32. */
function multiplyModulo(a: number, b: number): number {
  let product = 0;
  let factor = b;
  for (let bit = 0x80000000; bit !== 0; bit >>>= 1) {
    if (a & bit) product ^= factor;
    factor = factor & 1 ? (factor >>> 1) ^ POLYNOMIAL : factor >>> 1;
  }
  return product >>> 0;
}

/** x^(2^k) modulo the polynomial for k = 0..31: appending 2^k zero bits to a CRC multiplies it by entry k. */
const X_POWERS_OF_TWO: number[] = [];
for (let k = 0, power = 0x40000000; k < 32; k++, power = multiplyModulo(power, power)) X_POWERS_OF_TWO.push(power);

/**
 * The CRC-32 of A followed by B, from A's CRC, B's CRC and B's length: A's CRC shifted past B's
 * bytes (multiplied by x^(8·length)), plus B's. Node offers zlib's crc32 but not its crc32_combine.
 */
export function crc32Combine(crcA: number, crcB: number, lengthB: number): number {
  let shift = 0x80000000; // x^0
  // Bits of 8·lengthB, lowest first: bit k of the length in bytes is bit k + 3 of the length in bits.
  for (let k = 3, rest = lengthB; rest > 0; k++, rest = Math.floor(rest / 2)) {
    if (rest % 2 === 1) shift = multiplyModulo(X_POWERS_OF_TWO[k % 32] as number, shift);
  }
  return (multiplyModulo(shift, crcA) ^ crcB) >>> 0;
}

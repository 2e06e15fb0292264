import type { CertRecord } from "./record.js";
import type { CertFormat } from "./parse.js";

/** Interface placeholder: implemented in the parser work. */
export declare class ParseCache {
  constructor(maxEntries?: number);
  parse(bytes: Uint8Array, format?: CertFormat): readonly CertRecord[];
}

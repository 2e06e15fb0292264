import { hash } from "node:crypto";

/**
 * Cuts a label value to at most `maxBytes` bytes of UTF-8. A cut value ends in a visible marker and
 * a hash of the whole value ("…#" and 12 hex digits), so two long values that share a prefix still
 * make distinct series, and the same value is always cut the same way. Prometheus's
 * `label_value_length_limit` counts bytes, and so does this.
 */
export function truncateLabelValue(value: string, maxBytes: number): string {
  // Fast path: no UTF-16 unit takes more than 3 UTF-8 bytes.
  if (value.length * 3 <= maxBytes || Buffer.byteLength(value, "utf8") <= maxBytes) return value;
  const suffix = `…#${hash("sha256", value, "hex").slice(0, 12)}`;
  const room = maxBytes - Buffer.byteLength(suffix, "utf8");
  // Each UTF-16 unit is at least one byte, so the first maxBytes units hold every byte kept.
  const bytes = Buffer.from(value.slice(0, maxBytes), "utf8");
  let end = Math.max(0, room);
  // Back up to a character boundary (never split a UTF-8 sequence).
  while (end > 0 && ((bytes[end] as number) & 0xc0) === 0x80) end--;
  return bytes.toString("utf8", 0, end) + suffix;
}

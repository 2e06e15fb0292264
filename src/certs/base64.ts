const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/**
 * Strict standard base64, where Buffer.from(…, "base64") would skip any character it does not know.
 * Whitespace (PEM line breaks) is ignored. `padded`: the padding must be complete, as Go's
 * encoding/json demands of []byte fields (kubeconfig and Kubernetes object data); PEM bodies may
 * leave it out. Undefined when the text is not base64.
 */
export function decodeBase64(text: string, padded: boolean): Buffer | undefined {
  const compact = text.replace(/\s+/g, "");
  if (!BASE64.test(compact)) return undefined;
  if (padded ? compact.length % 4 !== 0 : compact.length % 4 === 1) return undefined;
  return Buffer.from(compact, "base64");
}

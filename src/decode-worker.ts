/**
 * The worker side of src/decode-pool.ts: runs one decode at a time and posts the result back. Only
 * pure decoders run here; the pool owns every deadline and memory limit.
 */
import { parentPort } from "node:worker_threads";
import { openPkcs12 } from "./certs/pkcs12.js";
import { parseKubeconfig } from "./certs/kubeconfig.js";
import type { DecodeReply, DecodeRequest } from "./decode-pool.js";
import { toReadError } from "./errors.js";
// yaml.ts loads the yaml library on first use; here it loads before the worker reports ready, so a
// decode's time budget never pays for loading code.
import "yaml";

function run(request: DecodeRequest): DecodeReply {
  const { id, task } = request;
  try {
    if (task.kind === "pkcs12") {
      return { id, result: { kind: "pkcs12", certificates: openPkcs12(task.bytes, task.passphrases, task.maxIterations) } };
    }
    const entries = parseKubeconfig(task.bytes, task.baseDir).map((entry) =>
      entry.kind === "error" ? { key: entry.key, kind: "error" as const, reason: entry.error.reason, message: entry.error.message } : entry,
    );
    return { id, result: { kind: "kubeconfig", entries } };
  } catch (err) {
    const error = toReadError(err, "corrupt_certificate");
    return { id, error: { reason: error.reason, message: error.message } };
  }
}

const port = parentPort;
if (!port) throw new Error("decode-worker runs only as a worker thread");
port.on("message", (request: DecodeRequest) => {
  const reply = run(request);
  // Certificates go back by transfer, not copy.
  const transfer = reply.result?.kind === "pkcs12" ? reply.result.certificates.map((der) => der.buffer as ArrayBuffer) : [];
  port.postMessage(reply, transfer);
});
port.postMessage({ id: 0 } satisfies DecodeReply);

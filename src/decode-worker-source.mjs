// Starts src/decode-worker.ts from TypeScript sources (tests, `tsx src/cli.ts`). On Node 20 a worker
// does not inherit the loader hooks of its parent, so it registers tsx itself. Plain JavaScript, so
// it loads without them; not compiled into dist/, where decode-worker.js starts directly.
import { register } from "tsx/esm/api";

register();
await import("./decode-worker.ts");

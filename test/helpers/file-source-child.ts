/**
 * A FileSource in a process of its own, so that a test running as root can see it run as another
 * user (root reads any directory). argv[2] holds the path groups as JSON; every message "scan" runs
 * one scan and is answered with the SourceView.
 */
import type { PathGroup } from "../../src/config.js";
import { FileSource } from "../../src/sources/files.js";
import { loggedSource } from "./logged-source.js";

const groups = JSON.parse(process.argv[2] ?? "[]") as PathGroup[];
const rig = loggedSource((ctx) => new FileSource(groups, { intervalSeconds: 3600, maxFileSize: 1024 * 1024 }, ctx));
process.on("message", () => {
  void rig.scan().then((view) => process.send?.(view));
});

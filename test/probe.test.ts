import { createHash } from "node:crypto";
import type { SecureVersion } from "node:tls";
import t, { type Test } from "tap";
import { makeCert, makeChain, privateKeyPem, type Issued } from "../scripts/certgen.js";
import { probeTls, tlsContext, type TlsProbeOptions, type TlsProbeResult } from "../src/probe/tls.js";
import { parseServerFlight } from "../src/probe/wire-tap.js";
import {
  blackholePort,
  closeAfterServerHello,
  closedPort,
  plainHttpServer,
  resetServer,
  silentServer,
  tlsServer,
  type LoopbackHost,
  type TestServer,
} from "./helpers/tls-servers.js";

const { root, intermediate, leaf } = await makeChain("localhost");
const leafKey = await privateKeyPem(leaf);
const ca = tlsContext({ ca: [root.pem] });

const fingerprint = (der: Buffer | Issued): string => createHash("sha256").update(Buffer.isBuffer(der) ? der : der.der).digest("hex");

async function serve(t: Test, server: Promise<TestServer> | TestServer): Promise<TestServer> {
  const started = await server;
  t.teardown(() => started.close());
  return started;
}

function probe(server: { host: LoopbackHost; port: number }, options: Partial<TlsProbeOptions> = {}): Promise<TlsProbeResult> {
  return probeTls({ host: server.host, port: server.port, connectTimeoutMs: 1000, timeoutMs: 1500, ...options });
}

/** The outcome of a probe whose overall deadline passed must show up within that deadline. */
function assertFailure(t: Test, result: TlsProbeResult, reason: string): void {
  t.equal(result.probe.success, false, "probe failed");
  t.equal(result.probe.reason, reason, `reason ${reason}`);
  t.equal(result.error?.reason, reason, "error reason");
  t.ok(result.probe.message, "has a message");
  t.equal(result.probe.chainVerified, false, "chain not verified");
}

for (const maxVersion of ["TLSv1.3", "TLSv1.2"] as const) {
  t.test(`a healthy chain over ${maxVersion}`, async (t) => {
    const server = await tlsServer({ cert: leaf.pem + intermediate.pem, key: leafKey, maxVersion });
    t.teardown(() => server.close());
    const result = await probe(server, { secureContext: ca, serverName: "localhost" });
    t.match(result.probe, { success: true, chainVerified: true, verifyError: "", hostnameMatch: true, tlsVersion: maxVersion });
    t.equal(result.probe.reason, undefined);
    t.ok(result.probe.cipher.startsWith("TLS_"), `IANA cipher name ${result.probe.cipher}`);
    t.ok(result.probe.durationSeconds > 0 && result.probe.durationSeconds < 1.5);
    t.same(result.certificates.map(fingerprint), [leaf, intermediate].map(fingerprint), "leaf then intermediate");
    t.same(server.serverNames, ["localhost"], "SNI sent for a DNS name");
  });

  t.test(`the chain is read in the order presented on the wire (${maxVersion})`, async (t) => {
    const stray = await makeCert({ cn: "Unrelated extra", ca: true });
    const server = await serve(t, tlsServer({ cert: leaf.pem + root.pem + stray.pem + intermediate.pem, key: leafKey, maxVersion }));
    const result = await probe(server, { secureContext: ca, serverName: "localhost" });
    t.equal(result.probe.success, true);
    t.same(result.certificates.map(fingerprint), [leaf, root, stray, intermediate].map(fingerprint), "wire order, nothing dropped, nothing added");
  });

  t.test(`a server that requires a client certificate, none configured (${maxVersion})`, async (t) => {
    const clientCa = await makeCert({ cn: "Client CA", ca: true });
    const server = await serve(t, tlsServer({ cert: leaf.pem + intermediate.pem, key: leafKey, clientCa: [clientCa.pem], maxVersion }));
    const result = await probe(server, { secureContext: ca, serverName: "localhost" });
    t.equal(result.probe.success, false);
    t.equal(result.probe.reason, "client_cert_required");
    t.same(result.certificates.map(fingerprint), [leaf, intermediate].map(fingerprint), "the presented chain is still read");
    t.equal(result.probe.hostnameMatch, true, "host name checked on the presented leaf");
    t.equal(result.probe.tlsVersion, maxVersion);
  });

  t.test(`a server that requires a client certificate, one configured (${maxVersion})`, async (t) => {
    const clientCa = await makeCert({ cn: "Client CA", ca: true });
    const client = await makeCert({ cn: "prober", issuer: clientCa });
    const server = await serve(t, tlsServer({ cert: leaf.pem + intermediate.pem, key: leafKey, clientCa: [clientCa.pem], maxVersion }));
    const secureContext = tlsContext({ ca: [root.pem], cert: client.pem, key: await privateKeyPem(client) });
    const result = await probe(server, { secureContext, serverName: "localhost" });
    t.match(result.probe, { success: true, chainVerified: true, hostnameMatch: true, tlsVersion: maxVersion });
    t.equal(result.certificates.length, 2);
  });

  t.test(`a client certificate the server does not trust (${maxVersion})`, async (t) => {
    const clientCa = await makeCert({ cn: "Client CA", ca: true });
    const stranger = await makeCert({ cn: "stranger" });
    const server = await serve(t, tlsServer({ cert: leaf.pem + intermediate.pem, key: leafKey, clientCa: [clientCa.pem], maxVersion }));
    const secureContext = tlsContext({ ca: [root.pem], cert: stranger.pem, key: await privateKeyPem(stranger) });
    const result = await probe(server, { secureContext, serverName: "localhost" });
    t.equal(result.probe.success, false);
    t.equal(result.probe.reason, "client_cert_required");
    t.equal(result.certificates.length, 2, "certificates still read");
  });
}

t.test("an IPv6 literal: no SNI, the name checked against the IP SAN", async (t) => {
  const v6 = await makeCert({ cn: "v6", issuer: intermediate, sans: ["IP:::1"] });
  const server = await tlsServer({ cert: v6.pem + intermediate.pem, key: await privateKeyPem(v6), host: "::1" });
  t.teardown(() => server.close());
  const result = await probe(server, { secureContext: ca });
  t.match(result.probe, { success: true, chainVerified: true, hostnameMatch: true });
  t.same(server.serverNames, [], "no SNI for an IP literal");
});

t.test("an IPv4 literal matches an IP SAN", async (t) => {
  const server = await serve(t, tlsServer({ cert: leaf.pem + intermediate.pem, key: leafKey }));
  const result = await probe(server, { secureContext: ca });
  t.match(result.probe, { success: true, chainVerified: true, hostnameMatch: true });
});

t.test("a DNS name is resolved and sent as SNI", async (t) => {
  const server = await tlsServer({ cert: leaf.pem + intermediate.pem, key: leafKey });
  t.teardown(() => server.close());
  const result = await probeTls({ host: "localhost", port: server.port, connectTimeoutMs: 1000, timeoutMs: 1500, secureContext: ca });
  t.match(result.probe, { success: true, chainVerified: true, hostnameMatch: true });
  t.same(server.serverNames, ["localhost"]);
});

t.test("a port that accepts nothing: connect timeout", async (t) => {
  const server = await serve(t, blackholePort());
  const result = await probe(server, { connectTimeoutMs: 300, timeoutMs: 1000 });
  assertFailure(t, result, "connect_timeout");
  t.ok(result.probe.durationSeconds < 1, "within the connect timeout");
  t.same(result.certificates, []);
});

t.test("a port that accepts nothing on IPv6: connect timeout", async (t) => {
  const server = await serve(t, blackholePort("::1"));
  assertFailure(t, await probe(server, { connectTimeoutMs: 300, timeoutMs: 1000 }), "connect_timeout");
});

t.test("a closed port: connection refused", async (t) => {
  const port = await closedPort();
  assertFailure(t, await probe({ host: "127.0.0.1", port }), "connection_refused");
});

t.test("accepts TCP but never speaks TLS: handshake timeout", async (t) => {
  const server = await serve(t, silentServer());
  const result = await probe(server, { timeoutMs: 400 });
  assertFailure(t, result, "handshake_timeout");
  t.ok(result.probe.durationSeconds < 1.5);
});

t.test("a separate handshake timeout shorter than the deadline", async (t) => {
  const server = await serve(t, silentServer());
  const result = await probe(server, { handshakeTimeoutMs: 200, timeoutMs: 5000 });
  assertFailure(t, result, "handshake_timeout");
  t.ok(result.probe.durationSeconds < 5, "ended by the handshake timeout, not the deadline");
});

t.test("speaks plain HTTP: not_tls", async (t) => {
  const server = await serve(t, plainHttpServer());
  assertFailure(t, await probe(server), "not_tls");
});

t.test("resets in the middle of the handshake: connection_reset", async (t) => {
  const server = await serve(t, resetServer());
  assertFailure(t, await probe(server), "connection_reset");
});

t.test("closes right after ServerHello: connection_reset, version known, no certificates", async (t) => {
  const upstream = await serve(t, tlsServer({ cert: leaf.pem + intermediate.pem, key: leafKey }));
  const proxy = await serve(t, closeAfterServerHello(upstream));
  const result = await probe(proxy, { secureContext: ca, serverName: "localhost" });
  assertFailure(t, result, "connection_reset");
  t.same(result.certificates, []);
  t.equal(result.probe.tlsVersion, "TLSv1.3", "version read from the ServerHello");
});

t.test("a DNS name that does not resolve: dns_error", async (t) => {
  const result = await probeTls({ host: "no-such-host.invalid", port: 443, connectTimeoutMs: 1000, timeoutMs: 1500 });
  assertFailure(t, result, "dns_error");
});

async function faultyLeaf(t: Test, spec: Parameters<typeof makeCert>[0], maxVersion: SecureVersion, withIntermediate = true): Promise<{ result: TlsProbeResult; cert: Issued }> {
  const cert = await makeCert(spec);
  const chain = withIntermediate ? cert.pem + intermediate.pem : cert.pem;
  const server = await serve(t, tlsServer({ cert: chain, key: await privateKeyPem(cert), maxVersion }));
  const result = await probe(server, { secureContext: ca, serverName: "localhost" });
  return { result, cert };
}

// Over TLS 1.2 OpenSSL's verdict is read as the client begins its key exchange, over TLS 1.3 at
// secureConnect (src/probe/tls.ts, #verdict): the same odd chains must give the same verdicts.
for (const maxVersion of ["TLSv1.3", "TLSv1.2"] as const) {
  t.test(`an expired leaf is still exported (${maxVersion})`, async (t) => {
    const { result, cert } = await faultyLeaf(t, { cn: "localhost", issuer: intermediate, sans: ["localhost"], notBeforeDays: -30, notAfterDays: -1 }, maxVersion);
    t.match(result.probe, { success: true, chainVerified: false, verifyError: "CERT_HAS_EXPIRED", hostnameMatch: true, tlsVersion: maxVersion });
    t.equal(fingerprint(result.certificates[0] as Buffer), fingerprint(cert));
    t.equal(result.error, undefined);
  });

  t.test(`a not-yet-valid leaf (${maxVersion})`, async (t) => {
    const { result } = await faultyLeaf(t, { cn: "localhost", issuer: intermediate, sans: ["localhost"], notBeforeDays: 2, notAfterDays: 30 }, maxVersion);
    t.match(result.probe, { success: true, chainVerified: false, verifyError: "CERT_NOT_YET_VALID", hostnameMatch: true });
    t.equal(result.certificates.length, 2);
  });

  t.test(`a self-signed leaf (${maxVersion})`, async (t) => {
    const { result, cert } = await faultyLeaf(t, { cn: "localhost", sans: ["localhost"] }, maxVersion, false);
    t.match(result.probe, { success: true, chainVerified: false, verifyError: "DEPTH_ZERO_SELF_SIGNED_CERT", hostnameMatch: true });
    t.same(result.certificates.map(fingerprint), [fingerprint(cert)], "one certificate, no self-loop");
  });

  t.test(`a wrong host name (${maxVersion})`, async (t) => {
    const { result } = await faultyLeaf(t, { cn: "other.example", issuer: intermediate, sans: ["other.example"] }, maxVersion);
    t.match(result.probe, { success: true, chainVerified: true, hostnameMatch: false, verifyError: "ERR_TLS_CERT_ALTNAME_INVALID" });
    t.equal(result.certificates.length, 2);
  });

  t.test(`a missing intermediate (${maxVersion})`, async (t) => {
    const { result, cert } = await faultyLeaf(t, { cn: "localhost", issuer: intermediate, sans: ["localhost"] }, maxVersion, false);
    t.match(result.probe, { success: true, chainVerified: false, verifyError: "UNABLE_TO_VERIFY_LEAF_SIGNATURE", hostnameMatch: true });
    t.same(result.certificates.map(fingerprint), [fingerprint(cert)]);
  });

  t.test(`an untrusted root without the CA configured (${maxVersion})`, async (t) => {
    const server = await serve(t, tlsServer({ cert: leaf.pem + intermediate.pem, key: leafKey, maxVersion }));
    const result = await probe(server, { serverName: "localhost" });
    t.match(result.probe, { success: true, chainVerified: false, verifyError: "UNABLE_TO_GET_ISSUER_CERT_LOCALLY", hostnameMatch: true, tlsVersion: maxVersion });
  });
}

// chain_verified says whether the chain the server presented verified against the trust store, the
// same in both versions when the server then refuses the client (reason client_cert_required).
// TLS 1.2 servers refuse before their Finished, so the client's handshake never completes; TLS 1.3
// ones after the client's Finished, so it does. Both ways of refusing are covered: no client
// certificate (OpenSSL's alert in the handshake) and one the server does not trust (Node's server
// completes its side, then drops the connection).
for (const trusted of [true, false]) {
  for (const client of ["none", "untrusted"] as const) {
    t.test(`a refused client, ${trusted ? "trusted" : "untrusted"} server chain, client certificate ${client}: same verdict in TLS 1.2 and 1.3`, async (t) => {
      const clientCa = await makeCert({ cn: "Client CA", ca: true });
      const stranger = await makeCert({ cn: "stranger" });
      const secureContext = tlsContext({
        ...(trusted ? { ca: [root.pem] } : {}),
        ...(client === "untrusted" ? { cert: stranger.pem, key: await privateKeyPem(stranger) } : {}),
      });
      const verdicts: Record<string, unknown> = {};
      for (const maxVersion of ["TLSv1.2", "TLSv1.3"] as const) {
        const server = await serve(t, tlsServer({ cert: leaf.pem + intermediate.pem, key: leafKey, clientCa: [clientCa.pem], maxVersion }));
        const { probe: facts, certificates } = await probe(server, { secureContext, serverName: "localhost" });
        t.match(facts, { success: false, reason: "client_cert_required", tlsVersion: maxVersion, hostnameMatch: true }, maxVersion);
        t.same(certificates.map(fingerprint), [leaf, intermediate].map(fingerprint), `${maxVersion}: the presented chain`);
        verdicts[maxVersion] = { chainVerified: facts.chainVerified, verifyError: facts.verifyError };
      }
      const expected = trusted ? { chainVerified: true, verifyError: "" } : { chainVerified: false, verifyError: "UNABLE_TO_GET_ISSUER_CERT_LOCALLY" };
      t.same(verdicts, { "TLSv1.2": expected, "TLSv1.3": expected });
    });
  }
}

t.test("an abort ends the probe at once", async (t) => {
  const server = await serve(t, silentServer());
  const controller = new AbortController();
  const pending = probe(server, { signal: controller.signal, timeoutMs: 30_000, connectTimeoutMs: 30_000 });
  setImmediate(() => controller.abort());
  const result = await pending;
  t.equal(result.probe.success, false);
  t.ok(result.probe.durationSeconds < 30);
});

t.test("parseServerFlight tolerates garbage and truncation", async (t) => {
  t.same(parseServerFlight(Buffer.from("HTTP/1.1 400 Bad Request\r\n\r\n"), undefined).certificates, []);
  t.same(parseServerFlight(Buffer.from([22, 3, 3, 0, 200, 2, 0]), undefined).certificates, []);
  t.same(parseServerFlight(Buffer.alloc(0), undefined), { certificates: [], certificateRequested: false, version: "" });
});

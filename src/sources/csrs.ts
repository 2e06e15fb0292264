import { createHash } from "node:crypto";
import type { KubeConfig } from "@kubernetes/client-node";
import picomatch from "picomatch";
import { decodeBase64 } from "../certs/base64.js";
import type { CsrsConfig, KubernetesConfig } from "../config.js";
import { CertReadError } from "../errors.js";
import { KubeCertificateSource, parseFound, type CertificateKind } from "./kube-certificates.js";
import { resourcePath, type KubeObject } from "./kube-collection.js";
import type { SourceContext } from "./source.js";

/** What is read of a CertificateSigningRequest. */
export interface CsrObject extends KubeObject {
  spec?: { signerName?: string | null } | null;
  status?: { certificate?: string | null } | null;
}

/** The issued certificate of a CSR (base64 of PEM) and its signer; undefined while none was issued. */
export function issuedCertificate(csr: CsrObject): { signerName: string; certificate: string } | undefined {
  const certificate = csr.status?.certificate;
  if (typeof certificate !== "string" || certificate === "") return undefined;
  return { signerName: csr.spec?.signerName ?? "", certificate };
}

const GLOB = /[*?[\]{}!]/;

/**
 * CertificateSigningRequests as a kind of the collection engine: the certificate a signer issued
 * (`status.certificate`), e.g. kubelet serving and client certificates. Locations: `{source: "csr",
 * namespace: "", name: <CSR>, key: <signer name>}`. Literal signer names are selected on the server
 * (`spec.signerName=…`, one list-and-watch each); globs are matched here. Kubernetes deletes issued
 * CSRs after an hour by default, so their certificates stay only while the CSR does.
 */
export function csrKind(config: CsrsConfig, ctx: SourceContext): CertificateKind<CsrObject> {
  const signers = config.signerNames;
  const literal = signers.length > 0 && !signers.some((s) => GLOB.test(s));
  const matchSigner = signers.length === 0 ? () => true : picomatch(signers, { dot: true });
  return {
    name: "csr",
    source: "csr",
    resource: { resource: "certificatesigningrequests", group: "certificates.k8s.io", path: resourcePath("certificates.k8s.io", "v1", "certificatesigningrequests", false) },
    ...(config.labelSelector ? { labelSelector: config.labelSelector } : {}),
    ...(literal ? { fieldSelectors: [...new Set(signers)].map((s) => `spec.signerName=${s}`) } : {}),
    digest(csr) {
      const issued = issuedCertificate(csr);
      if (!issued || !matchSigner(issued.signerName)) return undefined;
      return createHash("sha1").update(issued.signerName).update("\0").update(issued.certificate).digest("base64");
    },
    read(csr) {
      const issued = issuedCertificate(csr)!;
      const bytes = decodeBase64(issued.certificate, true);
      if (!bytes) return [{ key: issued.signerName, result: new CertReadError("bad_base64", "status.certificate is not valid base64") }];
      return [parseFound(ctx, issued.signerName, bytes, "pem")];
    },
  };
}

export function csrsSource(config: CsrsConfig, kubeConfig: KubeConfig, kubernetes: KubernetesConfig, ctx: SourceContext): KubeCertificateSource {
  return new KubeCertificateSource("csr", [csrKind(config, ctx)], kubeConfig, kubernetes, ctx);
}

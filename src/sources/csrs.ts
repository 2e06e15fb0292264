import type { KubeConfig } from "@kubernetes/client-node";
import picomatch from "picomatch";
import type { CsrsConfig, KubernetesConfig } from "../config.js";
import { byteField, fieldsDigest, KubeCertificateSource, parseFound, type CertificateKind } from "./kube-certificates.js";
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
      return fieldsDigest([{ key: issued.signerName, raw: issued.certificate }]);
    },
    read(csr) {
      const issued = issuedCertificate(csr)!;
      return [parseFound(ctx, issued.signerName, byteField(issued.certificate, "status.certificate"), "pem")];
    },
  };
}

export function csrsSource(config: CsrsConfig, kubeConfig: KubeConfig, kubernetes: KubernetesConfig, ctx: SourceContext): KubeCertificateSource {
  return new KubeCertificateSource("csr", [csrKind(config, ctx)], kubeConfig, kubernetes, ctx);
}

/**
 * The annotations the exporter reads on Kubernetes objects. A module of their own, so that what
 * shows them (the status page) does not load the Kubernetes client with the source that reads them.
 */
export const ANNOTATION_WARNING_DAYS = "cert-expiry-exporter.io/warning-days";
export const ANNOTATION_CRITICAL_DAYS = "cert-expiry-exporter.io/critical-days";
export const ANNOTATION_CM_CERTIFICATE = "cert-manager.io/certificate-name";
export const ANNOTATION_CM_ISSUER = "cert-manager.io/issuer-name";
export const ANNOTATION_CM_ISSUER_KIND = "cert-manager.io/issuer-kind";

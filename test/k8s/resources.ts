/**
 * Resource types the API server double serves. Adding one is a matter of adding an entry here:
 * discovery, REST routes, selectors, watch and Table output all derive from it.
 */

export interface ObjectMeta {
  name?: string;
  generateName?: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  creationTimestamp?: string | null;
  generation?: number;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  [k: string]: unknown;
}

export interface K8sObject {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMeta;
  [k: string]: unknown;
}

export interface ColumnDefinition {
  name: string;
  type: "string" | "integer" | "number" | "boolean" | "date";
  format: string;
  description: string;
  priority: number;
}

/** One field-level validation failure, as in a 422 Invalid Status's details.causes. */
export interface Cause {
  reason: "FieldValueRequired" | "FieldValueInvalid" | "FieldValueTooLong" | "FieldValueNotSupported" | "FieldValueForbidden";
  field: string;
  message: string;
}

export interface ResourceType {
  /** "" for the core group. */
  group: string;
  version: string;
  /** Plural, as in the URL. */
  resource: string;
  singular: string;
  kind: string;
  namespaced: boolean;
  shortNames?: string[];
  categories?: string[];
  /** Field-selectable fields besides metadata.name (and metadata.namespace when namespaced). */
  fields?: (obj: K8sObject) => Record<string, string>;
  /** Table columns after Name; `row` returns the cells after the name. */
  columns: ColumnDefinition[];
  row: (obj: K8sObject, now: number) => unknown[];
  /** Defaulting and normalisation applied to writes through the API (not to control-method puts). */
  prepare?: (obj: K8sObject, old: K8sObject | undefined) => void;
  /** Validation of writes through the API; failures answer 422 Invalid. */
  validate?: (obj: K8sObject) => Cause[];
}

export function apiVersionOf(t: ResourceType): string {
  return t.group ? `${t.group}/${t.version}` : t.version;
}

/** k8s.io/apimachinery/pkg/util/duration.HumanDuration, as kubectl shows AGE. */
export function humanDuration(ms: number): string {
  const seconds = Math.floor(ms / 1000);
  if (seconds < -1) return "<invalid>";
  if (seconds < 0) return "0s";
  if (seconds < 120) return `${seconds}s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 10) return seconds % 60 === 0 ? `${minutes}m` : `${minutes}m${seconds % 60}s`;
  if (minutes < 180) return `${minutes}m`;
  const hours = Math.floor(minutes / 60);
  if (hours < 8) return minutes % 60 === 0 ? `${hours}h` : `${hours}h${minutes % 60}m`;
  if (hours < 48) return `${hours}h`;
  const days = Math.floor(hours / 24);
  if (hours < 24 * 8) return hours % 24 === 0 ? `${days}d` : `${days}d${hours % 24}h`;
  if (hours < 24 * 365 * 2) return `${days}d`;
  const years = Math.floor(days / 365);
  if (hours < 24 * 365 * 8) return days % 365 === 0 ? `${years}y` : `${years}y${days % 365}d`;
  return `${years}y`;
}

function col(name: string, type: ColumnDefinition["type"], description: string, priority = 0): ColumnDefinition {
  return { name, type, format: "", description, priority };
}

const AGE = col("Age", "date", "CreationTimestamp is a timestamp representing the server time when this object was created.");

function age(obj: K8sObject, now: number): string {
  const ts = obj.metadata.creationTimestamp;
  return ts ? humanDuration(now - Date.parse(ts)) : "<unknown>";
}

type Dict = Record<string, unknown>;
const dict = (v: unknown): Dict => (v && typeof v === "object" && !Array.isArray(v) ? (v as Dict) : {});
const list = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
const str = (v: unknown, dflt = ""): string => (typeof v === "string" ? v : dflt);

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const SECRET_MAX_BYTES = 1024 * 1024;

export const SECRETS: ResourceType = {
  group: "",
  version: "v1",
  resource: "secrets",
  singular: "secret",
  kind: "Secret",
  namespaced: true,
  fields: (o) => ({ type: str(o.type) }),
  columns: [col("Type", "string", "The type of the secret"), col("Data", "integer", "The number of entries in the secret data"), AGE],
  row: (o, now) => [str(o.type), Object.keys(dict(o.data)).length, age(o, now)],
  prepare(o) {
    if (!o.type) o.type = "Opaque";
    if (o.stringData !== undefined) {
      const data = dict(o.data);
      for (const [k, v] of Object.entries(dict(o.stringData))) data[k] = Buffer.from(str(v)).toString("base64");
      o.data = data;
      delete o.stringData;
    }
  },
  validate(o) {
    const causes: Cause[] = [];
    let total = 0;
    for (const [k, v] of Object.entries(dict(o.data))) {
      if (typeof v !== "string" || !BASE64.test(v)) {
        causes.push({ reason: "FieldValueInvalid", field: `data[${k}]`, message: `Invalid value: "${k}": illegal base64 data` });
      } else total += Buffer.byteLength(v, "base64");
      if (!/^[-._a-zA-Z0-9]+$/.test(k)) {
        causes.push({ reason: "FieldValueInvalid", field: `data[${k}]`, message: `Invalid value: "${k}": a valid config key must consist of alphanumeric characters, '-', '_' or '.'` });
      }
    }
    if (total > SECRET_MAX_BYTES) causes.push({ reason: "FieldValueTooLong", field: "data", message: `Too long: must have at most ${SECRET_MAX_BYTES} bytes` });
    if (o.type === "kubernetes.io/tls") {
      for (const k of ["tls.crt", "tls.key"]) {
        if (!(k in dict(o.data))) causes.push({ reason: "FieldValueRequired", field: `data[${k}]`, message: "Required value" });
      }
    }
    return causes;
  },
};

export const NAMESPACES: ResourceType = {
  group: "",
  version: "v1",
  resource: "namespaces",
  singular: "namespace",
  kind: "Namespace",
  namespaced: false,
  shortNames: ["ns"],
  fields: (o) => ({ "status.phase": str(dict(o.status).phase) }),
  columns: [col("Status", "string", "The status of the namespace"), AGE],
  row: (o, now) => [str(dict(o.status).phase), age(o, now)],
  prepare(o, old) {
    o.spec = old ? old.spec : { finalizers: ["kubernetes"] };
    o.status = old ? old.status : { phase: "Active" };
    o.metadata.labels = { ...o.metadata.labels, "kubernetes.io/metadata.name": o.metadata.name! };
  },
  validate(o) {
    const name = o.metadata.name ?? "";
    return /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(name) && name.length <= 63
      ? []
      : [{ reason: "FieldValueInvalid", field: "metadata.name", message: `Invalid value: "${name}": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-'` }];
  },
};

export const CONFIGMAPS: ResourceType = {
  group: "",
  version: "v1",
  resource: "configmaps",
  singular: "configmap",
  kind: "ConfigMap",
  namespaced: true,
  shortNames: ["cm"],
  columns: [col("Data", "integer", "Number of data in configmap"), AGE],
  row: (o, now) => [Object.keys(dict(o.data)).length + Object.keys(dict(o.binaryData)).length, age(o, now)],
};

let nextClusterIp = 1;

function servicePorts(o: K8sObject): string {
  const ports = list(dict(o.spec).ports).map(dict);
  if (!ports.length) return "<none>";
  return ports.map((p) => `${String(p.port)}${p.nodePort ? `:${String(p.nodePort)}` : ""}/${str(p.protocol, "TCP")}`).join(",");
}

export const SERVICES: ResourceType = {
  group: "",
  version: "v1",
  resource: "services",
  singular: "service",
  kind: "Service",
  namespaced: true,
  shortNames: ["svc"],
  categories: ["all"],
  fields: (o) => ({ "spec.clusterIP": str(dict(o.spec).clusterIP), "spec.type": str(dict(o.spec).type) }),
  columns: [
    col("Type", "string", "The type of the service"),
    col("Cluster-IP", "string", "The cluster IP of the service"),
    col("External-IP", "string", "The external IPs of the service"),
    col("Port(s)", "string", "The ports of the service"),
    AGE,
    col("Selector", "string", "The label selector of the service", 1),
  ],
  row: (o, now) => {
    const spec = dict(o.spec);
    const ext = list(spec.externalIPs).map(String);
    const sel = Object.entries(dict(spec.selector)).map(([k, v]) => `${k}=${String(v)}`);
    return [str(spec.type), str(spec.clusterIP, "<none>"), ext.length ? ext.join(",") : "<none>", servicePorts(o), age(o, now), sel.length ? sel.join(",") : "<none>"];
  },
  prepare(o, old) {
    const spec = dict(o.spec);
    o.spec = spec;
    spec.type ??= "ClusterIP";
    if (spec.clusterIP === undefined) {
      const oldIp = old ? dict(old.spec).clusterIP : undefined;
      if (oldIp) spec.clusterIP = oldIp;
      else if (spec.type !== "ExternalName") {
        const n = nextClusterIp++;
        spec.clusterIP = `10.96.${(n >> 8) & 255}.${n & 255}`;
      }
    }
    if (spec.clusterIP && !spec.clusterIPs) spec.clusterIPs = [spec.clusterIP];
    spec.ports = list(spec.ports).map((p) => ({ protocol: "TCP", ...dict(p) }));
    o.status ??= { loadBalancer: {} };
  },
};

export const INGRESSES: ResourceType = {
  group: "networking.k8s.io",
  version: "v1",
  resource: "ingresses",
  singular: "ingress",
  kind: "Ingress",
  namespaced: true,
  shortNames: ["ing"],
  columns: [
    col("Class", "string", "The name of the IngressClass resource that should be used for ingress"),
    col("Hosts", "string", "Hosts that incoming requests are matched against before the ingress rule"),
    col("Address", "string", "Address is a list containing ingress points for the load-balancer"),
    col("Ports", "string", "Ports of TLS configurations that open"),
    AGE,
  ],
  row: (o, now) => {
    const spec = dict(o.spec);
    const hosts = list(spec.rules).map((r) => str(dict(r).host)).filter(Boolean);
    const addrs = list(dict(dict(o.status).loadBalancer).ingress).map((i) => str(dict(i).ip) || str(dict(i).hostname));
    return [str(spec.ingressClassName, "<none>"), hosts.length ? hosts.join(",") : "*", addrs.join(","), list(spec.tls).length ? "80, 443" : "80", age(o, now)];
  },
  prepare(o) {
    o.status ??= { loadBalancer: {} };
  },
};

export const NODES: ResourceType = {
  group: "",
  version: "v1",
  resource: "nodes",
  singular: "node",
  kind: "Node",
  namespaced: false,
  shortNames: ["no"],
  fields: (o) => ({ "spec.unschedulable": String(dict(o.spec).unschedulable === true) }),
  columns: [
    col("Status", "string", "The status of the node"),
    col("Roles", "string", "The roles of the node"),
    AGE,
    col("Version", "string", "Kubelet Version reported by the node."),
  ],
  row: (o, now) => {
    const ready = list(dict(o.status).conditions).map(dict).find((c) => c.type === "Ready");
    return [ready?.status === "True" ? "Ready" : "NotReady", "<none>", age(o, now), str(dict(dict(o.status).nodeInfo).kubeletVersion)];
  },
};

function webhookConfigurations(kind: "ValidatingWebhookConfiguration" | "MutatingWebhookConfiguration"): ResourceType {
  const plural = `${kind.toLowerCase()}s`;
  return {
    group: "admissionregistration.k8s.io",
    version: "v1",
    resource: plural,
    singular: kind.toLowerCase(),
    kind,
    namespaced: false,
    categories: ["api-extensions"],
    columns: [col("Webhooks", "integer", "Webhooks is the number of webhooks"), AGE],
    row: (o, now) => [list(o.webhooks).length, age(o, now)],
  };
}

export const VALIDATING_WEBHOOKS = webhookConfigurations("ValidatingWebhookConfiguration");
export const MUTATING_WEBHOOKS = webhookConfigurations("MutatingWebhookConfiguration");

export const API_SERVICES: ResourceType = {
  group: "apiregistration.k8s.io",
  version: "v1",
  resource: "apiservices",
  singular: "apiservice",
  kind: "APIService",
  namespaced: false,
  categories: ["api-extensions"],
  columns: [col("Service", "string", "The reference to the service that hosts this API endpoint."), AGE],
  row: (o, now) => {
    const service = dict(dict(o.spec).service);
    return [service.name ? `${str(service.namespace)}/${str(service.name)}` : "Local", age(o, now)];
  },
};

export const CUSTOM_RESOURCE_DEFINITIONS: ResourceType = {
  group: "apiextensions.k8s.io",
  version: "v1",
  resource: "customresourcedefinitions",
  singular: "customresourcedefinition",
  kind: "CustomResourceDefinition",
  namespaced: false,
  shortNames: ["crd", "crds"],
  categories: ["api-extensions"],
  columns: [col("Created At", "date", "The time the object was created"), AGE],
  row: (o, now) => [str(o.metadata.creationTimestamp), age(o, now)],
};

export const CERTIFICATE_SIGNING_REQUESTS: ResourceType = {
  group: "certificates.k8s.io",
  version: "v1",
  resource: "certificatesigningrequests",
  singular: "certificatesigningrequest",
  kind: "CertificateSigningRequest",
  namespaced: false,
  shortNames: ["csr"],
  fields: (o) => ({ "spec.signerName": str(dict(o.spec).signerName) }),
  columns: [AGE, col("SignerName", "string", "The signer of the request"), col("Requestor", "string", "The user who made the request"), col("Condition", "string", "The state of the request")],
  row: (o, now) => {
    const spec = dict(o.spec);
    const conditions = list(dict(o.status).conditions).map((c) => str(dict(c).type));
    const issued = dict(o.status).certificate ? ["Issued"] : [];
    return [age(o, now), str(spec.signerName), str(spec.username), [...conditions, ...issued].join(",") || "Pending"];
  },
};

/** Every type the double knows; `ApiServerOptions.resources` picks which are served. */
export const ALL_RESOURCES: ResourceType[] = [
  NAMESPACES,
  SECRETS,
  CONFIGMAPS,
  SERVICES,
  NODES,
  INGRESSES,
  VALIDATING_WEBHOOKS,
  MUTATING_WEBHOOKS,
  API_SERVICES,
  CUSTOM_RESOURCE_DEFINITIONS,
  CERTIFICATE_SIGNING_REQUESTS,
];

export type CertFormat = "auto" | "pem" | "der" | "pkcs7";

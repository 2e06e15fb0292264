/**
 * Which targets a /probe module may reach: host-name globs, address blocks (CIDR), or everything
 * when the module says so. /probe takes its target from whoever can reach the exporter, so without
 * this a module would be an open relay into every network the exporter can reach.
 *
 * Address blocks are checked against the addresses the probe dials, not against a name. A name is
 * resolved once, here; every address it resolves to must be inside the blocks, and the probe then
 * dials the first of those checked addresses instead of resolving the name again. A DNS answer that
 * changes between the check and the connection (DNS rebinding, or a short TTL) therefore cannot
 * carry a probe outside the blocks, and a name that resolves to one address inside and one outside
 * is refused rather than leaving the choice to the resolver.
 */
import { BlockList, isIP, isIPv4 } from "node:net";

/** A module's `allow`, as the configuration gives it. */
export interface AllowSettings {
  any?: true | undefined;
  hosts?: readonly string[] | undefined;
  cidrs?: readonly string[] | undefined;
}

/** Resolves a host name to every address it has (what the system resolver answers, /etc/hosts included). */
export type Lookup = (host: string, signal: AbortSignal) => Promise<string[]>;

/** `10.0.0.0/8`, `fd00::/8`, or a single address (a /32 or /128): the address, its family and prefix. Throws on anything else. */
export function parseCidr(value: string): { address: string; family: "ipv4" | "ipv6"; prefix: number } {
  const match = /^([0-9a-fA-F:.]+)(?:\/(\d{1,3}))?$/.exec(value);
  const version = match ? isIP(match[1] as string) : 0;
  if (!match || version === 0) throw new Error(`not an address block such as 10.0.0.0/8 or fd00::/8: ${JSON.stringify(value.slice(0, 80))}`);
  const family = version === 4 ? "ipv4" : "ipv6";
  const max = version === 4 ? 32 : 128;
  const prefix = match[2] === undefined ? max : Number(match[2]);
  if (prefix > max) throw new Error(`prefix /${prefix} is longer than an ${family === "ipv4" ? "IPv4" : "IPv6"} address (/${max}): ${value}`);
  return { address: match[1] as string, family, prefix };
}

/** A host glob: letters, digits, `-`, `_`, `.`, `:` and `*`. */
export const HOST_GLOB = /^[A-Za-z0-9*_.:-]{1,253}$/;

/**
 * A host glob as a regular expression over a lowercased host: `*` stands for any run of characters
 * within one label (no dot), `**` for any run at all. `*.example.com` takes `a.example.com` but not
 * `a.b.example.com`; `**.example.com` takes both; neither takes `example.com` itself.
 */
function globPattern(glob: string): RegExp {
  let source = "";
  for (let i = 0; i < glob.length; i++) {
    const char = glob[i] as string;
    if (char === "*" && glob[i + 1] === "*") {
      source += ".*";
      i++;
    } else if (char === "*") {
      source += "[^.]*";
    } else {
      source += char.replace(/[.\\^$+?()[\]{}|]/g, "\\$&");
    }
  }
  return new RegExp(`^${source}$`);
}

/** An IPv4-mapped IPv6 address (`::ffff:10.0.0.1`) is the IPv4 address it carries. */
function unmapped(address: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  return mapped ? (mapped[1] as string) : address;
}

/** Why a target was refused, in words for the 403 answer. */
export class NotAllowedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "NotAllowedError";
  }
}

/**
 * One module's allow-list. Each list given is a condition of its own: with `hosts`, the host as
 * written in the target must match one of the globs; with `cidrs`, every address the probe could
 * dial must be inside one of the blocks. With both, a target must pass both. `any: true` lets every
 * target through.
 */
export class AllowList {
  readonly #any: boolean;
  readonly #hosts: RegExp[] | undefined;
  readonly #blocks: BlockList | undefined;

  constructor(settings: AllowSettings) {
    this.#any = settings.any === true;
    this.#hosts = settings.hosts?.map((glob) => globPattern(glob.toLowerCase()));
    if (settings.cidrs) {
      const blocks = new BlockList();
      for (const cidr of settings.cidrs) {
        const { address, family, prefix } = parseCidr(cidr);
        blocks.addSubnet(address, prefix, family);
      }
      this.#blocks = blocks;
    }
  }

  /** True when the addresses behind a host must be checked, which means resolving a name here. */
  get checksAddresses(): boolean {
    return !this.#any && this.#blocks !== undefined;
  }

  /**
   * What can be checked without the network: `any`, the host globs, and an IP address against the
   * blocks. Throws a NotAllowedError when the host is refused.
   */
  screen(host: string): void {
    if (this.#any) return;
    if (this.#hosts && !this.#hosts.some((pattern) => pattern.test(host))) throw new NotAllowedError(`${host} matches none of the module's allowed hosts`);
    if (this.#blocks && isIP(host)) this.#check(host, host);
  }

  /**
   * Checks a target's host (lowercase; IPv6 without brackets). Resolves with the address to dial
   * when the host is a name that had to be resolved for the check, undefined when the probe may dial
   * the host itself; rejects with a NotAllowedError, or with the lookup's own error when the name
   * does not resolve.
   */
  async admit(host: string, lookup: Lookup, signal: AbortSignal): Promise<string | undefined> {
    this.screen(host);
    if (this.#any || !this.#blocks || isIP(host)) return undefined;
    const addresses = await lookup(host, signal);
    if (addresses.length === 0) throw Object.assign(new Error(`${host} has no address`), { code: "ENOTFOUND" });
    for (const address of addresses) this.#check(host, address);
    return addresses[0];
  }

  #check(host: string, address: string): void {
    const plain = unmapped(address);
    if (!(this.#blocks as BlockList).check(plain, isIPv4(plain) ? "ipv4" : "ipv6")) {
      throw new NotAllowedError(plain === host ? `${host} is outside the module's allowed address blocks` : `${host} resolves to ${plain}, outside the module's allowed address blocks`);
    }
  }
}

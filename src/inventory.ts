import { locationId, type Location, type LocationEntry, type LocationUpdate, type SourceKind } from "./model.js";

/**
 * A location's entry as the inventory holds it. Every replace makes a new entry with a new revision,
 * so a reader can tell an unchanged location by its revision without keeping the entry.
 */
export type HeldEntry = LocationEntry & { readonly revision: number };

/**
 * The single store every source feeds and metrics read. A location is replaced as a whole, so a
 * scrape never sees half of an update, and it disappears only when its source says it is gone.
 */
export class Inventory {
  readonly #entries = new Map<string, HeldEntry>();
  /**
   * Locations and certificates held per source, kept as entries come and go: a scrape reads them
   * without a pass over the entries. A source is here while it holds a location, even one without
   * certificates.
   */
  readonly #perSource = new Map<SourceKind, { locations: number; certificates: number }>();
  #generation = 0;

  /** Grows on every change; the Secrets benchmark times an update's arrival by it. */
  get generation(): number {
    return this.#generation;
  }

  get size(): number {
    return this.#entries.size;
  }

  replace(location: Location, update: LocationUpdate): void {
    const id = locationId(location);
    this.#count(this.#entries.get(id), -1);
    this.#generation++;
    const entry: HeldEntry = { ...update, location: { ...location }, revision: this.#generation };
    this.#entries.set(id, entry);
    this.#count(entry, 1);
  }

  remove(location: Location): boolean {
    const id = locationId(location);
    const entry = this.#entries.get(id);
    if (!entry) return false;
    this.#entries.delete(id);
    this.#count(entry, -1);
    this.#generation++;
    return true;
  }

  /** Marks a location's last-known entry stale, or current again; nothing when it is not held. */
  setStale(location: Location, stale: boolean): void {
    const id = locationId(location);
    const entry = this.#entries.get(id);
    if (!entry || (entry.stale === true) === stale) return;
    this.#generation++;
    const updated: LocationEntry & { revision: number } = { ...entry, revision: this.#generation };
    if (stale) updated.stale = true;
    else delete updated.stale;
    this.#entries.set(id, updated);
  }

  get(location: Location): LocationEntry | undefined {
    return this.#entries.get(locationId(location));
  }

  /** Removes every location of a source for which `keep` (given its locationId) says no; returns how many went. */
  prune(source: SourceKind, keep: (id: string, location: Location) => boolean): number {
    let removed = 0;
    for (const [id, entry] of this.#entries) {
      if (entry.location.source === source && !keep(id, entry.location)) {
        this.#entries.delete(id);
        this.#count(entry, -1);
        removed++;
      }
    }
    if (removed > 0) this.#generation++;
    return removed;
  }

  entries(): IterableIterator<HeldEntry> {
    return this.#entries.values();
  }

  certificateCount(): number {
    let count = 0;
    for (const held of this.#perSource.values()) count += held.certificates;
    return count;
  }

  /** Certificates held per source, for every source that holds a location. */
  *certificatesBySource(): IterableIterator<[SourceKind, number]> {
    for (const [source, held] of this.#perSource) yield [source, held.certificates];
  }

  #count(entry: LocationEntry | undefined, sign: 1 | -1): void {
    if (!entry) return;
    const { source } = entry.location;
    const held = this.#perSource.get(source) ?? { locations: 0, certificates: 0 };
    held.locations += sign;
    held.certificates += sign * entry.certificates.length;
    if (held.locations === 0) this.#perSource.delete(source);
    else this.#perSource.set(source, held);
  }
}

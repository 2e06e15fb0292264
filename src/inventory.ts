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
  #generation = 0;

  /** Grows on every change; the Secrets benchmark times an update's arrival by it. */
  get generation(): number {
    return this.#generation;
  }

  get size(): number {
    return this.#entries.size;
  }

  replace(location: Location, update: LocationUpdate): void {
    this.#generation++;
    this.#entries.set(locationId(location), { ...update, location: { ...location }, revision: this.#generation });
  }

  remove(location: Location): boolean {
    const removed = this.#entries.delete(locationId(location));
    if (removed) this.#generation++;
    return removed;
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
    for (const entry of this.#entries.values()) count += entry.certificates.length;
    return count;
  }
}

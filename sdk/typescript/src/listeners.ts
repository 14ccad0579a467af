/** A set of listeners of one kind of value; a listener that throws does not stop the others. */
export class Listeners<T> {
  private readonly set = new Set<(v: T) => void>();

  /** Adds a listener; returns the function that removes it. */
  add(listener: (v: T) => void): () => void {
    this.set.add(listener);
    return () => {
      this.set.delete(listener);
    };
  }

  emit(v: T, warn: (msg: string, ...args: unknown[]) => void): void {
    for (const l of [...this.set]) {
      try {
        l(v);
      } catch (err) {
        warn("switchboard: listener threw", err);
      }
    }
  }

  get size(): number {
    return this.set.size;
  }
}

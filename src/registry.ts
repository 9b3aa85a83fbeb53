import { UserError } from './errors.js';

/** A named map of factories. Unknown keys fail with the list of known ones. */
export class Registry<T> {
  private readonly entries = new Map<string, T>();

  constructor(readonly kind: string) {}

  register(key: string, value: T): this {
    if (this.entries.has(key)) throw new Error(`${this.kind} \`${key}\` is registered twice`);
    this.entries.set(key, value);
    return this;
  }

  get(key: string): T {
    const value = this.entries.get(key);
    if (value === undefined) {
      throw new UserError(`unknown ${this.kind} \`${key}\`; known: ${this.keys().join(', ')}`);
    }
    return value;
  }

  has(key: string): boolean {
    return this.entries.has(key);
  }

  keys(): string[] {
    return [...this.entries.keys()].sort();
  }
}

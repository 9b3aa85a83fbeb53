import { InvalidArgumentError } from 'commander';
import { UserError } from '../errors.js';

/**
 * Runs a command's action: a UserError (a mistake the user can fix) becomes one line on
 * stderr and exit code 1 (or the error's own `exitCode`, e.g. 130 after Ctrl-C), with no
 * stack trace; anything else is a bug and keeps its stack.
 */
export function action<A extends unknown[]>(fn: (...args: A) => Promise<void>): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      await fn(...args);
    } catch (error) {
      if (error instanceof UserError) {
        process.stderr.write(`distill: ${error.message}\n`);
        // Exit now: a progress bar stopped mid-epoch would keep its timer (and the process) alive.
        process.exit((error as { exitCode?: number }).exitCode ?? 1);
      }
      throw error;
    }
  };
}

/** Commander value parser for whole numbers: a bad value is a one-line usage error. */
export function parseInteger(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n)) throw new InvalidArgumentError(`expected a whole number, got "${value}"`);
  return n;
}

/** Commander value parser for a comma-separated list of whole numbers, e.g. `1,2,3`. */
export function parseIntegerList(value: string): number[] {
  const list = value.split(',').map((v) => Number(v.trim()));
  if (list.length === 0 || !list.every(Number.isInteger)) {
    throw new InvalidArgumentError(`expected whole numbers separated by commas, e.g. 1,2,3, got "${value}"`);
  }
  return list;
}

/** Commander value parser for numbers (floats). */
export function parseNumber(value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n)) throw new InvalidArgumentError(`expected a number, got "${value}"`);
  return n;
}

/** Commander collector for repeatable options (`--set a=1 --set b=2`). */
export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

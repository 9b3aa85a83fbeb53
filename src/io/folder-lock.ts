/**
 * One process at a time on a folder (a sweep's or a search's): a `.lock` file created
 * exclusively, holding who took it. A lock left by a process that died on this host is taken
 * over; one from another host is reported with the file to delete if that process is gone.
 */
import { closeSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { UserError } from '../errors.js';

const LOCK = '.lock';

/** Whether a process with this pid runs on this host. */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Takes the folder's lock for `what` (e.g. `distill sweep`); returns its release. `takeOver`: take
 * it whoever holds it (a caller that knows it is the only one, e.g. a BullMQ worker holding the job).
 */
export function lockFolder(dir: string, what: string, o: { takeOver?: boolean } = {}): () => void {
  const file = join(dir, LOCK);
  const me = { host: hostname(), pid: process.pid, what };
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(file, 'wx');
      writeSync(fd, JSON.stringify(me));
      closeSync(fd);
      return () => {
        try {
          unlinkSync(file);
        } catch {}
      };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      let holder: typeof me | undefined;
      try {
        holder = JSON.parse(readFileSync(file, 'utf8')) as typeof me;
      } catch {}
      if (o.takeOver || (holder && holder.host === me.host && !processAlive(holder.pid))) {
        unlinkSync(file);
        continue;
      }
      throw new UserError(
        holder
          ? `${dir} is in use by ${holder.what} (pid ${holder.pid} on ${holder.host}); wait for it or stop it (if it is gone, delete ${file})`
          : `${dir} is locked (${file}); if no distill process uses it, delete that file`,
      );
    }
  }
  throw new UserError(`cannot lock ${dir}; delete ${file} if no distill process uses it`);
}

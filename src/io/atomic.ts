import { createHash, randomBytes } from 'node:crypto';
import { appendFileSync, readdirSync, rmSync } from 'node:fs';
import { hostname } from 'node:os';
import { open, rename, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { UserError } from '../errors.js';
import { processAlive } from './folder-lock.js';

/** What a full or failing disk is called, for the one-line error. */
const DISK_ERRORS: Record<string, string> = {
  ENOSPC: 'no space left on the device',
  EDQUOT: 'the disk quota is exceeded',
  EIO: 'an input/output error of the device',
  EROFS: 'the file system is read-only',
  EFBIG: 'the file is too large for the file system',
};

/**
 * Fault injection for tests, unset in normal use. `DISTILL_FAULT_WRITE=ENOSPC@3` makes this
 * process's 3rd atomic write fail as a full disk would (after its temp file is created);
 * `DISTILL_FAULT_WRITE=KILL@3` SIGKILLs the process during its 3rd atomic write, once the
 * temp file is written and synced but before the rename (the last moment the old file is
 * what readers see). `DISTILL_TRACE_WRITES=FILE` appends each atomic write's target to FILE,
 * so that `npm run stress` can aim a kill at every write of a run.
 */
let writes = 0;
type Fault = { kill: true } | { kill: false; error: NodeJS.ErrnoException };
function injectedFault(file: string): Fault | undefined {
  const trace = process.env.DISTILL_TRACE_WRITES;
  if (trace) appendFileSync(trace, `${file}\n`);
  const spec = process.env.DISTILL_FAULT_WRITE;
  if (!spec) return undefined;
  const [code, at] = spec.split('@');
  if (++writes !== Number(at ?? 1)) return undefined;
  if (code === 'KILL') return { kill: true };
  return { kill: false, error: Object.assign(new Error(`${code}: injected fault, write`), { code }) };
}

/** This host, in temp names: a pid means something only on the host that wrote it (shared folders). */
const HOST = createHash('sha256').update(hostname()).digest('hex').slice(0, 6);

/** `<pid>-<host>`: the part of a temp name that says who writes it. */
export function tempTag(): string {
  return `${process.pid}-${HOST}`;
}

/** Folders this process has already cleared of dead writers' temps. */
const cleared = new Set<string>();

/**
 * Removes the temp files (or folders) in `file`'s folder, named `….tmp-${tempTag()}…`, that
 * processes of this host left when they were killed mid-write. Every target has one writer at a
 * time (run, sweep and search folders are locked), so a dead writer's temp is garbage. Once per
 * folder and process: a temp is stale only if its writer died, and writers that die later are
 * cleared by the next process that writes there (a resumed run).
 */
export function removeStaleTemps(file: string): void {
  const dir = dirname(file);
  if (cleared.has(dir)) return;
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return;
  }
  cleared.add(dir);
  for (const name of names) {
    const [, pid, host] = /\.tmp-(\d+)-([0-9a-f]{6})(?:-|$)/.exec(name) ?? [];
    if (host === HOST && Number(pid) !== process.pid && !processAlive(Number(pid)))
      rmSync(join(dir, name), { recursive: true, force: true });
  }
}

/**
 * Writes a file so that readers see the old content or the new, never a mix: a temp file
 * in the same folder, fsync, rename over the target, fsync the folder. The temp file never
 * outlives a failure, and temps of earlier writers killed mid-write go once the file is
 * replaced. `content` may be several chunks (written in order). A full or failing
 * disk (ENOSPC, EDQUOT, EIO, EROFS, EFBIG) is a one-line `UserError` naming the file.
 */
export async function writeFileAtomic(
  file: string,
  content: string | Uint8Array | readonly Uint8Array[],
): Promise<void> {
  const tmp = `${file}.tmp-${tempTag()}-${randomBytes(4).toString('hex')}`;
  try {
    const fh = await open(tmp, 'wx');
    try {
      const fault = injectedFault(file);
      if (fault && !fault.kill) throw fault.error;
      if (Array.isArray(content)) await fh.writev(content as Uint8Array[]);
      else await fh.writeFile(content as string | Uint8Array);
      await fh.sync();
      if (fault?.kill) process.kill(process.pid, 'SIGKILL');
    } finally {
      await fh.close();
    }
    await rename(tmp, file);
    removeStaleTemps(file);
  } catch (e) {
    await rm(tmp, { force: true });
    const reason = DISK_ERRORS[(e as NodeJS.ErrnoException).code ?? ''];
    if (reason)
      throw new UserError(
        `cannot write ${file}: ${reason}; free some space (or choose another --out) and run again — the file's previous version is intact, and --resume continues a run from its last checkpoint`,
      );
    throw e;
  }
  await open(dirname(file), 'r')
    .then((d) => d.sync().finally(() => d.close()))
    .catch(() => {});
}

import { randomBytes } from 'node:crypto';
import { open, rename, rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import { UserError } from '../errors.js';

/** What a full or failing disk is called, for the one-line error. */
const DISK_ERRORS: Record<string, string> = {
  ENOSPC: 'no space left on the device',
  EDQUOT: 'the disk quota is exceeded',
  EIO: 'an input/output error of the device',
  EROFS: 'the file system is read-only',
  EFBIG: 'the file is too large for the file system',
};

/**
 * Fault injection for tests: `DISTILL_FAULT_WRITE=ENOSPC@3` makes this process's 3rd atomic
 * write fail as a full disk would (after its temp file is created). Unset in normal use.
 */
let writes = 0;
function injectedFault(): NodeJS.ErrnoException | undefined {
  const spec = process.env.DISTILL_FAULT_WRITE;
  if (!spec) return undefined;
  const [code, at] = spec.split('@');
  if (++writes !== Number(at ?? 1)) return undefined;
  return Object.assign(new Error(`${code}: injected fault, write`), { code });
}

/**
 * Writes a file so that readers see the old content or the new, never a mix: a temp file
 * in the same folder, fsync, rename over the target, fsync the folder. The temp file never
 * outlives a failure. `content` may be several chunks (written in order). A full or failing
 * disk (ENOSPC, EDQUOT, EIO, EROFS, EFBIG) is a one-line `UserError` naming the file.
 */
export async function writeFileAtomic(
  file: string,
  content: string | Uint8Array | readonly Uint8Array[],
): Promise<void> {
  const tmp = `${file}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  try {
    const fh = await open(tmp, 'wx');
    try {
      const fault = injectedFault();
      if (fault) throw fault;
      if (Array.isArray(content)) await fh.writev(content as Uint8Array[]);
      else await fh.writeFile(content as string | Uint8Array);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, file);
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

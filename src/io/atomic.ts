import { randomBytes } from 'node:crypto';
import { open, rename, rm } from 'node:fs/promises';
import { dirname } from 'node:path';

/**
 * Writes a file so that readers see the old content or the new, never a mix: a temp file
 * in the same folder, fsync, rename over the target, fsync the folder. The temp file never
 * outlives a failure. `content` may be several chunks (written in order).
 */
export async function writeFileAtomic(
  file: string,
  content: string | Uint8Array | readonly Uint8Array[],
): Promise<void> {
  const tmp = `${file}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  try {
    const fh = await open(tmp, 'wx');
    try {
      if (Array.isArray(content)) await fh.writev(content as Uint8Array[]);
      else await fh.writeFile(content as string | Uint8Array);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, file);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
  await open(dirname(file), 'r')
    .then((d) => d.sync().finally(() => d.close()))
    .catch(() => {});
}

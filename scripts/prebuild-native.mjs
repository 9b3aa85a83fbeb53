#!/usr/bin/env node
// Prebuilt native addons for the package (run by `npm pack` through "prepack"): the addon built
// from native/ twice — generic (any x64/arm64 CPU) and, on x64, with AVX2+FMA — into
// prebuilds/<platform>-<arch>/tfjs_distill_native[.avx2].node. The loader
// (src/backend/native/addon.ts) picks the AVX2 one when the CPU has AVX2 and FMA. Both link
// OpenBLAS dynamically (libopenblas.so.0: Debian's libopenblas0). Fails loudly: a package
// must not ship without them.
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const built = join(root, 'native', 'build', 'Release', 'tfjs_distill_native.node');
const outDir = join(root, 'prebuilds', `${process.platform}-${process.arch}`);
rmSync(join(root, 'prebuilds'), { recursive: true, force: true });
mkdirSync(outDir, { recursive: true });
const variants =
  process.arch === 'x64'
    ? [
        ['generic', '1'],
        ['avx2', ''],
      ]
    : [['generic', '1']];
for (const [name, generic] of variants) {
  const r = spawnSync(process.execPath, [join(root, 'scripts', 'build-native.mjs')], {
    // stdout stays clean for `npm pack --json`
    stdio: ['ignore', 2, 2],
    env: { ...process.env, TFJS_DISTILL_GENERIC: generic, DISTILL_REQUIRE_NATIVE: '1', TFJS_DISTILL_FROM_SOURCE: '1' },
  });
  if (r.status !== 0) {
    console.error(`prebuild-native: the ${name} addon did not build`);
    process.exit(1);
  }
  const target = join(outDir, name === 'generic' ? 'tfjs_distill_native.node' : 'tfjs_distill_native.avx2.node');
  copyFileSync(built, target);
  console.error(`prebuild-native: ${target.slice(root.length + 1)}`);
}

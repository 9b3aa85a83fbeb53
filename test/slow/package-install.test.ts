/**
 * The package as users get it: `npm pack` (which prebuilds the native addon), then the tarball
 * installed into a fresh project offline from npm's cache, with install scripts ignored (npm 11
 * runs none that `allowScripts` does not name), and `distill doctor` there picks native.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';

type LockEntry = { dev?: boolean; devOptional?: boolean; [key: string]: unknown };

test('npm pack → npm ci --offline --ignore-scripts in a fresh project → distill doctor reports native', () => {
  const work = mkdtempSync(join(tmpdir(), 'pack-'));
  const npm = (args: string[], cwd: string) =>
    execFileSync('npm', args, {
      cwd,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, npm_config_loglevel: 'error' },
    });
  const packed = JSON.parse(npm(['pack', '--json', '--pack-destination', work], process.cwd())) as Array<{
    filename: string;
    integrity: string;
    files: Array<{ path: string }>;
  }>;
  const { filename, integrity, files } = packed[0]!;
  const paths = files.map((f) => f.path);
  assert.ok(
    paths.includes('prebuilds/linux-x64/tfjs_distill_native.node'),
    'the generic prebuilt addon is in the package',
  );
  assert.ok(
    paths.includes('native/binding.gyp') && paths.includes('scripts/build-native.mjs'),
    'sources for the fallback build',
  );
  assert.ok(!paths.some((p) => p.startsWith('test/') || p.startsWith('src/')), 'no sources of the library itself');

  // A lockfile for the fresh project: the package from the tarball, its dependencies as this repository locks them.
  const own = JSON.parse(readFileSync('package.json', 'utf8')) as {
    name: string;
    version: string;
    dependencies: Record<string, string>;
  };
  const lock = JSON.parse(readFileSync('package-lock.json', 'utf8')) as { packages: Record<string, LockEntry> };
  const project = join(work, 'app');
  execFileSync('mkdir', ['-p', project]);
  const dependencies = { [own.name]: `file:../${filename}` };
  writeFileSync(
    join(project, 'package.json'),
    JSON.stringify({ name: 'app', version: '1.0.0', private: true, dependencies }),
  );
  const packages: Record<string, unknown> = {
    '': { name: 'app', version: '1.0.0', dependencies },
    [`node_modules/${own.name}`]: {
      version: own.version,
      resolved: `file:../${filename}`,
      integrity,
      dependencies: own.dependencies,
      bin: { distill: 'dist/cli/main.js' },
      hasInstallScript: true,
    },
  };
  // With `resolved` (this repository's lockfile leaves it out) and `integrity`, npm takes each tarball from its cache.
  for (const [key, entry] of Object.entries(lock.packages)) {
    if (!key.startsWith('node_modules/') || entry.dev || entry.devOptional) continue;
    const name = (entry['name'] as string | undefined) ?? key.slice(key.lastIndexOf('node_modules/') + 13);
    const resolved = `https://registry.npmjs.org/${name}/-/${name.split('/').at(-1)}-${entry['version'] as string}.tgz`;
    packages[key] = { resolved, ...entry };
  }
  writeFileSync(
    join(project, 'package-lock.json'),
    JSON.stringify({ name: 'app', version: '1.0.0', lockfileVersion: 3, requires: true, packages }),
  );
  npm(['ci', '--offline', '--ignore-scripts', '--no-audit', '--no-fund'], project);

  const doctor = execFileSync(join(project, 'node_modules', '.bin', 'distill'), ['doctor', '--json'], {
    cwd: project,
    encoding: 'utf8',
    env: { ...process.env, DISTILL_BACKEND: '' },
  });
  const report = JSON.parse(doctor) as { backend: string; native: { addon?: string } };
  assert.equal(report.backend, 'native', doctor);
  assert.match(
    report.native.addon ?? '',
    /node_modules\/tfjs-distill\/prebuilds\/linux-x64\/tfjs_distill_native(\.avx2)?\.node$/,
    'the prebuilt addon',
  );
});

#!/usr/bin/env node
// Builds the optional native backend (native/ → native/build/Release/tfjs_distill_native.node).
// Run by package.json's "install" script. It must never fail the install: whatever goes
// wrong, it prints one line saying why and that the wasm backend will be used, and exits 0 —
// unless DISTILL_REQUIRE_NATIVE=1 (CI), which makes a native backend that is not built (or
// does not load) exit 1.
// A prebuilt addon of the package (prebuilds/, scripts/prebuild-native.mjs) that loads makes it a no-op
// (TFJS_DISTILL_FROM_SOURCE=1 builds anyway).
// Environment: TFJS_DISTILL_SKIP_NATIVE=1 skips; TFJS_DISTILL_GENERIC=1 builds without AVX2/FMA;
// CC overrides the C compiler; TFJS_DISTILL_OPENBLAS_INCLUDE / _LIB point at a custom OpenBLAS.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const nativeDir = join(root, 'native');
const buildDir = join(nativeDir, 'build');
const addonPath = join(buildDir, 'Release', 'tfjs_distill_native.node');
const logPath = join(buildDir, 'build-native.log');
const log = [];
let tmp = null;

function finish(ok, message) {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
  try {
    mkdirSync(buildDir, { recursive: true });
    writeFileSync(logPath, `${log.join('\n')}\n`);
  } catch {
    /* logging is best effort */
  }
  if (!ok && process.env.DISTILL_REQUIRE_NATIVE === '1') {
    console.error(
      `tfjs-distill: native backend not built (${message}); DISTILL_REQUIRE_NATIVE=1, so this is an error (log: ${logPath})`,
    );
    process.exit(1);
  }
  console.log(
    ok
      ? `tfjs-distill: native backend built (${message})`
      : `tfjs-distill: native backend not built (${message}); the wasm backend will be used`,
  );
  process.exit(0);
}

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 600_000, ...opts });
  log.push(
    `$ ${cmd} ${args.join(' ')}`,
    r.stdout ?? '',
    r.stderr ?? '',
    `exit ${r.status}${r.error ? ` ${r.error.message}` : ''}`,
  );
  return r;
}

function main() {
  if (process.env.TFJS_DISTILL_SKIP_NATIVE) finish(false, 'TFJS_DISTILL_SKIP_NATIVE is set');
  if (process.platform === 'win32') finish(false, 'Windows is not supported by the native addon');
  // An installed package ships prebuilt addons: when one loads here, there is nothing to build.
  if (!process.env.TFJS_DISTILL_FROM_SOURCE) {
    const arch = `${process.platform}-${process.arch}`;
    for (const name of ['tfjs_distill_native.avx2.node', 'tfjs_distill_native.node']) {
      const prebuilt = join(root, 'prebuilds', arch, name);
      if (!existsSync(prebuilt)) continue;
      const r = run(process.execPath, ['-e', `require(${JSON.stringify(prebuilt)}).info()`]);
      if (r.status === 0) finish(true, `prebuilt ${join('prebuilds', arch, name)} loads; nothing to build`);
    }
  }
  if (!existsSync(join(nativeDir, 'binding.gyp'))) finish(false, 'native/ sources are not in this package');

  const cc = process.env.CC || 'cc';
  const ccVersion = run(cc, ['--version']);
  if (ccVersion.status !== 0) finish(false, `no C compiler (${cc})`);

  // OpenBLAS: find cblas.h next to libopenblas and check that a program links and runs.
  const incCandidates = [
    process.env.TFJS_DISTILL_OPENBLAS_INCLUDE,
    '/usr/include/x86_64-linux-gnu/openblas-pthread',
    '/usr/include/aarch64-linux-gnu/openblas-pthread',
    '/usr/include/x86_64-linux-gnu/openblas-openmp',
    '/usr/include/openblas',
    '/usr/local/include/openblas',
    '/opt/homebrew/opt/openblas/include',
    '/usr/local/opt/openblas/include',
    '/usr/include',
    '/usr/local/include',
  ].filter(Boolean);
  const libFlags = process.env.TFJS_DISTILL_OPENBLAS_LIB
    ? [
        `-L${process.env.TFJS_DISTILL_OPENBLAS_LIB}`,
        `-Wl,-rpath,${process.env.TFJS_DISTILL_OPENBLAS_LIB}`,
        '-lopenblas',
      ]
    : ['-lopenblas'];
  tmp = mkdtempSync(join(tmpdir(), 'tfjs-distill-native-'));
  {
    const probe = join(tmp, 'probe.c');
    writeFileSync(
      probe,
      '#include <cblas.h>\nint main(void){openblas_set_num_threads(1);' +
        'float a=2,b=3,c=0;cblas_sgemm(CblasRowMajor,CblasNoTrans,CblasNoTrans,1,1,1,1.f,&a,1,&b,1,0.f,&c,1);' +
        'return c==6.f?0:1;}\n',
    );
    let include = null;
    for (const dir of incCandidates) {
      if (!existsSync(join(dir, 'cblas.h'))) continue;
      const out = join(tmp, 'probe');
      const r = run(cc, ['-O1', `-I${dir}`, probe, '-o', out, ...libFlags]);
      if (r.status === 0 && run(out, []).status === 0) {
        include = dir;
        break;
      }
    }
    if (!include) finish(false, 'OpenBLAS not found (install libopenblas-dev)');

    // AVX2+FMA only if the compiler accepts it and this CPU runs it.
    let cflags = '';
    let simd = 'generic';
    if (!process.env.TFJS_DISTILL_GENERIC && process.arch === 'x64') {
      const simdProbe = join(tmp, 'simd.c');
      writeFileSync(
        simdProbe,
        '#include <immintrin.h>\nint main(void){__builtin_cpu_init();' +
          'if(!__builtin_cpu_supports("avx2")||!__builtin_cpu_supports("fma"))return 1;' +
          '__m256 a=_mm256_set1_ps(1.f);a=_mm256_fmadd_ps(a,a,a);return _mm256_cvtss_f32(a)==2.f?0:1;}\n',
      );
      const out = join(tmp, 'simd');
      const flags = ['-mavx2', '-mfma'];
      if (run(cc, ['-O2', ...flags, simdProbe, '-o', out]).status === 0 && run(out, []).status === 0) {
        cflags = flags.join(' ');
        simd = 'avx2+fma';
      }
    }

    // node-gyp: the copy bundled with npm; headers from nodedir (never downloaded).
    const gypCandidates = [
      process.env.npm_config_node_gyp,
      process.env.npm_execpath &&
        join(dirname(process.env.npm_execpath), '..', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
      join(
        dirname(process.execPath),
        '..',
        'lib',
        'node_modules',
        'npm',
        'node_modules',
        'node-gyp',
        'bin',
        'node-gyp.js',
      ),
    ].filter(Boolean);
    const gyp = gypCandidates.find((p) => existsSync(p));
    if (!gyp) finish(false, "npm's node-gyp not found");
    const nodedirCandidates = [process.env.npm_config_nodedir, resolve(dirname(process.execPath), '..')].filter(
      Boolean,
    );
    const nodedir = nodedirCandidates.find((d) => existsSync(join(d, 'include', 'node', 'node_api.h')));
    if (!nodedir) finish(false, 'Node headers not found (no include/node/node_api.h; set npm config nodedir)');

    const env = {
      ...process.env,
      CC: cc,
      TFJS_DISTILL_INCLUDE: include,
      TFJS_DISTILL_CFLAGS: cflags,
      TFJS_DISTILL_LIBS: libFlags.join(' '),
    };
    const jobs = process.env.JOBS || '2';
    const r = run(process.execPath, [gyp, 'rebuild', `--nodedir=${nodedir}`, `--jobs=${jobs}`], {
      cwd: nativeDir,
      env,
    });
    if (r.status !== 0 || !existsSync(addonPath)) {
      const lines = `${r.stderr ?? ''}\n${r.stdout ?? ''}`.split('\n').filter((l) => /error/i.test(l));
      finish(false, `compile failed: ${(lines[0] ?? `see ${logPath}`).trim().slice(0, 200)}`);
    }
    // Load it once in a child process: a broken binary must not reach the library.
    const check = run(process.execPath, [
      '-e',
      `const a=require(${JSON.stringify(addonPath)});` +
        'const i=a.info();process.stdout.write(i.blasConfig.split(" ").slice(0,2).join("_")+" "+i.simd+" "+i.threads)',
    ]);
    if (check.status !== 0) {
      rmSync(addonPath, { force: true });
      finish(
        false,
        'the built addon does not load: ' +
          (check.stderr || '')
            .split('\n')
            .find((l) => l.trim())
            ?.slice(0, 200),
      );
    }
    const [blas, , threads] = (check.stdout || '').split(' ');
    finish(
      true,
      `${(blas || 'OpenBLAS').replace('_', ' ')}, ${simd}, ${threads} threads → ${addonPath.slice(root.length + 1)}`,
    );
  }
}

try {
  main();
} catch (err) {
  finish(false, `unexpected error: ${String(err?.message ?? err).split('\n')[0]}`);
}

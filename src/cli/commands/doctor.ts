import { createRequire } from 'node:module';
import os from 'node:os';
import * as tf from '@tensorflow/tfjs';
import { useBestBackend } from '../../backend/index.js';
import { nativeBackendInfo } from '../../backend/native.js';
import { locateFashionMnist } from '../../data/fashion-mnist.js';
import { UserError } from '../../errors.js';

export interface DoctorOptions {
  backend?: string;
  data?: string;
  json?: boolean;
}

/** What `distill doctor` reports: the backend in use and why, the data found, versions. */
export async function doctor(options: DoctorOptions): Promise<Record<string, unknown>> {
  const require = createRequire(import.meta.url);
  const choice = await useBestBackend({ backend: options.backend });
  let data: string;
  try {
    data = locateFashionMnist({ dir: options.data }).dir;
  } catch (error) {
    if (!(error instanceof UserError)) throw error;
    data = `not found (${error.message})`;
  }
  const info = {
    backend: choice.name,
    why: choice.reason,
    tried: choice.attempts.map((a) => `${a.name}: ${a.ok ? 'ok' : a.reason}`),
    native: (() => {
      const n = nativeBackendInfo();
      return n.available
        ? { addon: n.addonPath, simd: n.simd, sgemm: n.sgemm, blas: n.blasConfig }
        : { unavailable: n.reason };
    })(),
    cpus: os.cpus().length,
    fashionMnist: data,
    versions: {
      node: process.versions.node,
      tfjs: tf.version.tfjs,
      'tfjs-distill': (require('../../../package.json') as { version: string }).version,
    },
  };
  if (options.json) {
    console.log(JSON.stringify(info));
  } else {
    console.log(`backend       ${info.backend} — ${info.why}`);
    for (const t of info.tried) console.log(`  tried       ${t}`);
    const n = info.native as { addon?: string; simd?: string; sgemm?: string; unavailable?: string };
    console.log(`native addon  ${n.addon ? `${n.addon} (${n.simd}; sgemm ${n.sgemm})` : n.unavailable}`);
    console.log(`cpus          ${info.cpus}`);
    console.log(`fashion-mnist ${info.fashionMnist}`);
    console.log(
      `versions      node ${info.versions.node}, tfjs ${info.versions.tfjs}, tfjs-distill ${info.versions['tfjs-distill']}`,
    );
  }
  return info;
}

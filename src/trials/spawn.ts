/**
 * Runs one trial in a child process (`child.ts`, forked with this process's Node flags, so it
 * runs under tsx in the tests as it does from `dist/`), with its own native thread count.
 * Resolves with the trial's result; rejects with the trial's own error (a `UserError` stays
 * one, `Interrupted` after an abort), or a `TrialCrashed` when the process dies without a word.
 */
import { fork } from 'node:child_process';
import { hostname } from 'node:os';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { UserError } from '../errors.js';
import { Interrupted } from '../train/fit.js';
import type { ChildMessage, ChildRequest } from './child.js';
import type { ExecutorRunOptions, TrialResult, TrialSpec } from './types.js';

/** The trial's process ended (killed, out of memory) before it sent a result. */
export class TrialCrashed extends Error {
  override readonly name = 'TrialCrashed';
}

const CHILD = fileURLToPath(new URL(import.meta.url.endsWith('.ts') ? './child.ts' : './child.js', import.meta.url));

export function spawnTrial(spec: TrialSpec, shared: string, o: ExecutorRunOptions = {}): Promise<TrialResult> {
  return new Promise((resolvePromise, reject) => {
    if (o.signal?.aborted) {
      reject(new Interrupted(`trial ${spec.id} not started`));
      return;
    }
    const child = fork(CHILD, [], {
      env: { ...process.env, TFJS_DISTILL_THREADS: String(spec.threads) },
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    });
    let settled = false;
    const finish = (fn: () => void) => {
      if (settled) return;
      settled = true;
      o.signal?.removeEventListener('abort', abort);
      fn();
    };
    const abort = () => child.connected && child.send({ type: 'abort' } satisfies ChildRequest);
    o.signal?.addEventListener('abort', abort);
    // Anything the trial's process prints (library warnings) is a log line of the trial.
    for (const stream of [child.stdout!, child.stderr!]) {
      createInterface({ input: stream }).on('line', (line) => {
        if (line.trim() !== '') o.onEvent?.({ type: 'log', id: spec.id, line });
      });
    }
    child.on('message', (m: ChildMessage) => {
      if (m.type === 'event') o.onEvent?.(m.event);
      else if (m.type === 'result') finish(() => resolvePromise(m.result));
      else
        finish(() =>
          reject(
            m.kind === 'interrupted'
              ? new Interrupted(m.message)
              : m.kind === 'user'
                ? new UserError(`trial ${spec.id}: ${m.message}`)
                : new Error(`trial ${spec.id} failed: ${m.message}`),
          ),
        );
    });
    child.on('error', (e) => finish(() => reject(e)));
    child.on('exit', (code, signal) =>
      finish(() =>
        reject(
          o.signal?.aborted
            ? new Interrupted(`trial ${spec.id} stopped`)
            : new TrialCrashed(
                `trial ${spec.id}: its process ended (${signal ?? `exit code ${code}`}) without a result`,
              ),
        ),
      ),
    );
    child.send({
      type: 'run',
      spec,
      shared,
      worker: o.worker ?? `${hostname()}:${process.pid}`,
    } satisfies ChildRequest);
  });
}

/**
 * The process of one trial (forked by `spawn.ts`): receives `{ spec, shared }` over IPC, runs
 * `runTrial`, sends its events and then `{ type: 'result' }` or `{ type: 'error' }`, and exits.
 * `{ type: 'abort' }` stops it at the end of the current batch (its checkpoint stays). When the
 * parent goes away (killed), the IPC channel closes and this process exits too, so a dead
 * worker leaves no orphan training.
 */
import { UserError } from '../errors.js';
import { Interrupted } from '../train/fit.js';
import { runTrial } from './run-trial.js';
import type { TrialSpec } from './types.js';

export type ChildRequest = { type: 'run'; spec: TrialSpec; shared: string; worker: string } | { type: 'abort' };
export type ChildMessage =
  | { type: 'event'; event: import('./types.js').TrialEvent }
  | { type: 'result'; result: import('./types.js').TrialResult }
  | { type: 'error'; message: string; kind: 'user' | 'interrupted' | 'bug' };

const send = (m: ChildMessage) => new Promise<void>((done) => process.send!(m, undefined, {}, () => done()));

if (process.send) {
  const controller = new AbortController();
  process.on('disconnect', () => process.exit(1));
  process.on('SIGINT', () => controller.abort());
  process.on('message', (m: ChildRequest) => {
    if (m.type === 'abort') controller.abort();
    else
      void runTrial(m.spec, {
        shared: m.shared,
        worker: m.worker,
        signal: controller.signal,
        onEvent: (event) => void send({ type: 'event', event }),
      })
        .then((result) => send({ type: 'result', result }))
        .catch((e: unknown) =>
          send({
            type: 'error',
            message: e instanceof Error ? (e instanceof UserError ? e.message : (e.stack ?? e.message)) : String(e),
            kind: e instanceof Interrupted ? 'interrupted' : e instanceof UserError ? 'user' : 'bug',
          }),
        )
        .finally(() => process.exit(0));
  });
}

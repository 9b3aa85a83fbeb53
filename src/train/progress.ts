/**
 * Training progress as `TrainCallbacks`: a bar or a line per epoch on stderr, or one JSON
 * object per epoch on stdout. Used by the training loops (`createFit`, the quickstart, the
 * CLI's `train`); the CLI picks the mode from its flags (`src/cli/progress.ts`).
 */
import cliProgress from 'cli-progress';
import type { TrainCallbacks } from './types.js';

export type ProgressMode = 'bar' | 'lines' | 'json' | 'quiet';

export interface ProgressOptions {
  mode: ProgressMode;
  /** What is training, e.g. "teacher" or "student (kd)". */
  label: string;
  epochs: number;
  /** Samples in one epoch, for samples/s and ETA. */
  samplesPerEpoch: number;
}

const fmt = (losses: Record<string, number>) =>
  Object.entries(losses)
    .map(([k, v]) => `${k} ${v.toFixed(4)}`)
    .join(' ');

/**
 * Training callbacks that show progress: a bar per epoch (samples/s, ETA, running loss per
 * term) on a terminal, one line per epoch otherwise, one JSON object per epoch with --json.
 */
export function progressCallbacks({ mode, label, epochs, samplesPerEpoch }: ProgressOptions): TrainCallbacks {
  if (mode === 'quiet') return {};
  let bar: cliProgress.SingleBar | undefined;
  let seen = 0;
  let started = 0;
  const running: Record<string, number> = {};
  return {
    onEpochBegin(epoch) {
      seen = 0;
      started = performance.now();
      for (const k of Object.keys(running)) delete running[k];
      if (mode !== 'bar') return;
      bar = new cliProgress.SingleBar(
        {
          format: `${label} epoch ${epoch + 1}/${epochs} [{bar}] {percentage}% | {speed} samples/s | ETA {eta_formatted} | {losses}`,
          stream: process.stderr,
          hideCursor: true,
          clearOnComplete: false,
        },
        cliProgress.Presets.shades_classic,
      );
      bar.start(samplesPerEpoch, 0, { speed: 0, losses: '' });
    },
    onBatchEnd({ size, losses }) {
      seen += size;
      const first = Object.values(losses)[0] ?? {};
      for (const [k, v] of Object.entries(first))
        running[k] = running[k] === undefined ? v : 0.9 * running[k]! + 0.1 * v;
      const speed = Math.round(seen / ((performance.now() - started) / 1000));
      bar?.update(seen, { speed, losses: fmt(running) });
    },
    onEpochEnd(epoch, records) {
      bar?.stop();
      for (const [name, r] of Object.entries(records)) {
        if (mode === 'json') {
          process.stdout.write(`${JSON.stringify({ model: label === name ? name : `${label}/${name}`, ...r })}\n`);
          continue;
        }
        const speed = Math.round(seen / r.seconds);
        const val = r.valAccuracy === undefined ? '' : ` val_acc ${(100 * r.valAccuracy).toFixed(2)}%`;
        process.stderr.write(
          `${label} epoch ${epoch + 1}/${epochs} ${r.seconds.toFixed(1)}s ${speed} samples/s ${fmt(r.losses)} train_acc ${(100 * (r.trainAccuracy ?? 0)).toFixed(2)}%${val}\n`,
        );
      }
    },
  };
}

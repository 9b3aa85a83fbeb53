/**
 * The training contract every scheme is written against — `Fit`: one training phase in,
 * its histories and time out; `Interrupted` when the run was stopped — and `createFit`,
 * the checkpointed loop behind it: `train` plus progress output, a checkpoint at the end of
 * every epoch, resume from the last one, and a clean stop at the end of the current batch
 * when the run's AbortSignal fires (Ctrl-C).
 */
import { join } from 'node:path';
import type { Dataset } from '../data/dataset.js';
import { Rng } from '../data/rng.js';
import type { ExperimentData } from '../data/sources.js';
import { UserError } from '../errors.js';
import type { Teacher } from '../teachers/types.js';
import {
  captureCheckpoint,
  readCheckpoint,
  restoreModels,
  restoreOptimizer,
  restoreTermVariables,
  writeCheckpoint,
} from './checkpoint.js';
import { createOptimizer } from './optimizers.js';
import { progressCallbacks, type ProgressMode } from './progress.js';
import { earlyStoppingState, train } from './trainer.js';
import type {
  EpochRecord,
  Learner,
  OptimizerSpec,
  QuantizationAware,
  TeacherSelector,
  TrainCallbacks,
} from './types.js';

/** Thrown when the run's signal fired: the training stopped at the end of a batch. */
export class Interrupted extends UserError {
  /** Conventional exit code after SIGINT. */
  readonly exitCode = 130;
}

/** One training phase: which models learn, from what, for how long. */
export interface FitPhase {
  /** Unique within a seed; names the checkpoint file (letters, digits, `.`, `_`, `-`). */
  id: string;
  /** Shown in progress output, e.g. `small (kd)`. */
  label: string;
  learners: Learner[];
  teacher?: Teacher;
  /** Who teaches whom (online schemes); default: the frozen teacher teaches every learner. */
  selectTeacher?: TeacherSelector;
  /** Default: the experiment's epochs. */
  epochs?: number;
  /** Seed of this phase's data order and dropout; default the fit's (the run's seed). */
  seed?: number;
  /** More callbacks, called after progress output and checkpointing. */
  callbacks?: TrainCallbacks;
  /** Training rows of this phase (e.g. one chunk of a stream); default the experiment's. */
  train?: Dataset;
  /** Per-epoch validation rows; default the experiment's. */
  validation?: Dataset;
  /** Shapes of the taps `selectTeacher` hands over when learners teach (see `TrainOptions`). */
  teacherTapShapes?: Record<string, readonly number[]>;
  /** Cache the frozen teacher's logits per row (default true); off when its weights change. */
  cacheTeacher?: boolean;
}

export interface FitResult {
  /** Per learner name: every epoch, including those of earlier (interrupted) processes. */
  history: Record<string, EpochRecord[]>;
  /** Training seconds, all processes together. */
  seconds: number;
  /** True when the phase had already finished before this process (weights restored, nothing trained). */
  restored: boolean;
}

export type Fit = (phase: FitPhase) => Promise<FitResult>;

/** What every phase of a run trains with. */
/** One epoch of one learner in one phase, as `FitSettings.onEpoch` receives it. */
export interface EpochInfo {
  seed: number;
  phase: string;
  model: string;
  epochs: number;
  record: EpochRecord;
}

export interface FitSettings {
  seed: number;
  data: ExperimentData;
  epochs: number;
  batchSize: number;
  optimizer: OptimizerSpec;
  schedule: 'constant' | 'cosine';
  /** Folder of this seed's checkpoints (`<phase id>.ckpt`). */
  checkpointDir: string;
  /** Called before the first file is written (creates the run folder lazily). */
  beforeWrite?: () => Promise<void>;
  progress: ProgressMode;
  /** Prefix of progress lines, e.g. `seed 1 ·`. */
  progressPrefix?: string;
  /** Stop a phase when its first learner's validation accuracy stalls (see `TrainOptions.earlyStopping`). */
  earlyStopping?: { patience: number; minDelta: number };
  /** Extra fields of each `--json` line, e.g. `{ seed: 1 }`. */
  jsonFields?: Record<string, unknown>;
  signal?: AbortSignal;
  /** Called after every epoch of every phase, per learner (whatever the progress mode): a trial reports with it. */
  onEpoch?: (info: EpochInfo) => void | Promise<void>;
  /**
   * Quantization-aware distillation in the last epochs of every phase of this fit (a run gives
   * it to the students' fit, never to the teacher's): see `QuantizationAware`.
   */
  quantizationAware?: QuantizationAware;
}

const ID = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

/** Calls each callback of every set in order. */
export function mergeCallbacks(...sets: Array<TrainCallbacks | undefined>): TrainCallbacks {
  const all = sets.filter((s): s is TrainCallbacks => s !== undefined);
  return {
    async onTrainBegin() {
      for (const s of all) await s.onTrainBegin?.();
    },
    async onEpochBegin(e) {
      for (const s of all) await s.onEpochBegin?.(e);
    },
    async onBatchBegin(b) {
      for (const s of all) await s.onBatchBegin?.(b);
    },
    async onBatchEnd(l) {
      for (const s of all) await s.onBatchEnd?.(l);
    },
    async onEpochEnd(e, r) {
      for (const s of all) await s.onEpochEnd?.(e, r);
    },
    async onTrainEnd(h) {
      for (const s of all) await s.onTrainEnd?.(h);
    },
  };
}

/** Progress output of one phase: bar / lines (stderr) or one JSON object per epoch (stdout). */
function progressFor(s: FitSettings, label: string, epochs: number, samplesPerEpoch: number): TrainCallbacks {
  const report: TrainCallbacks | undefined = s.onEpoch && {
    async onEpochEnd(_epoch, records) {
      for (const [model, record] of Object.entries(records))
        await s.onEpoch!({ seed: s.seed, phase: label, model, epochs, record });
    },
  };
  if (s.progress !== 'json') {
    const shown = progressCallbacks({
      mode: s.progress,
      label: `${s.progressPrefix ?? ''}${label}`,
      epochs,
      samplesPerEpoch,
    });
    return report ? mergeCallbacks(shown, report) : shown;
  }
  return mergeCallbacks(report, {
    onEpochEnd(_epoch, records) {
      for (const [model, r] of Object.entries(records)) {
        process.stdout.write(`${JSON.stringify({ ...s.jsonFields, phase: label, model, ...r, epochs })}\n`);
      }
    },
  });
}

/**
 * A `Fit` for one seed. A phase whose checkpoint is complete is restored, not retrained; a
 * partial one continues from its last epoch with the saved weights, term variables,
 * optimizer state and random stream, so it ends exactly as an uninterrupted run would.
 */
export function createFit(s: FitSettings): Fit {
  return async (phase) => {
    if (!ID.test(phase.id)) throw new Error(`fit: phase id \`${phase.id}\` must be letters, digits, ".", "_" or "-"`);
    const file = join(s.checkpointDir, `${phase.id}.ckpt`);
    const epochs = phase.epochs ?? s.epochs;
    const ckpt = await readCheckpoint(file);
    if (ckpt && ckpt.epochs !== epochs) {
      throw new UserError(
        `checkpoint ${file} is for ${ckpt.epochs} epochs but this run has ${epochs}; the experiment changed since — start a new run (another --out)`,
      );
    }
    if (ckpt) restoreModels(ckpt, phase.learners, file);
    // early stopping's state is derived from the history, so a stopped phase stays stopped
    const monitored = (h: Record<string, EpochRecord[]>) =>
      (h[phase.learners[0]!.name] ?? []).map((e) => e.valAccuracy);
    const stopping = s.earlyStopping;
    const stopped =
      ckpt !== undefined &&
      stopping !== undefined &&
      earlyStoppingState(monitored(ckpt.history), stopping.minDelta).sinceBest >= stopping.patience;
    if (ckpt && (ckpt.epoch >= epochs || stopped)) {
      // Finished: weights, and the state terms hold from the start (e.g. a teacher snapshot).
      restoreTermVariables(ckpt, phase.learners, file, { existingOnly: true });
      return { history: ckpt.history, seconds: ckpt.seconds, restored: true };
    }

    const optimizer = createOptimizer(s.optimizer);
    const rng = ckpt ? Rng.fromState(ckpt.rngState) : new Rng(phase.seed ?? s.seed);
    const history: Record<string, EpochRecord[]> = ckpt
      ? structuredClone(ckpt.history)
      : Object.fromEntries(phase.learners.map((l) => [l.name, []]));
    let seconds = ckpt?.seconds ?? 0;
    let epochStart = 0;
    let epochNow = 0;
    let batches = 0;
    const stop = (where: string) => new Interrupted(`interrupted ${where} of ${phase.label}`);
    const own: TrainCallbacks = {
      async onTrainBegin() {
        if (!ckpt) return;
        restoreTermVariables(ckpt, phase.learners, file);
        await restoreOptimizer(ckpt, optimizer);
      },
      onEpochBegin(epoch) {
        epochStart = performance.now();
        epochNow = epoch;
        batches = 0;
      },
      async onBatchEnd() {
        batches++;
        // Let signal handlers (Ctrl-C) and timers (progress bars) run between batches.
        await new Promise((r) => setImmediate(r));
        if (s.signal?.aborted) throw stop(`in epoch ${epochNow + 1}/${epochs} after batch ${batches}`);
      },
      async onEpochEnd(epoch, records) {
        for (const [name, r] of Object.entries(records)) {
          history[name] ??= [];
          history[name].push(r);
        }
        seconds += (performance.now() - epochStart) / 1000;
        await s.beforeWrite?.();
        await writeCheckpoint(
          file,
          await captureCheckpoint({
            learners: phase.learners,
            optimizer,
            rngState: rng.getState(),
            epoch: epoch + 1,
            epochs,
            history,
            seconds,
            meta: { phase: phase.id, label: phase.label, seed: s.seed },
          }),
        );
        if (s.signal?.aborted && epoch + 1 < epochs) throw stop(`after epoch ${epoch + 1}/${epochs}`);
      },
    };
    try {
      await train({
        learners: phase.learners,
        teacher: phase.teacher,
        selectTeacher: phase.selectTeacher,
        teacherTapShapes: phase.teacherTapShapes,
        cacheTeacher: phase.cacheTeacher,
        train: phase.train ?? s.data.train,
        validation: phase.validation ?? s.data.validation,
        augment: s.data.augment,
        epochs,
        batchSize: s.batchSize,
        optimizer,
        schedule: s.schedule,
        seed: s.seed,
        rng,
        initialEpoch: ckpt?.epoch ?? 0,
        earlyStopping: stopping && { ...stopping, previous: ckpt ? monitored(ckpt.history) : [] },
        quantizationAware: s.quantizationAware,
        callbacks: mergeCallbacks(
          progressFor(s, phase.label, epochs, (phase.train ?? s.data.train).size),
          own,
          phase.callbacks,
        ),
      });
    } finally {
      optimizer.dispose();
    }
    return { history, seconds, restored: false };
  };
}

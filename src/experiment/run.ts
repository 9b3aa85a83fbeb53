/**
 * `distill run`: a whole experiment from one YAML file. Validates everything first (config,
 * data, backend, students, teacher) and writes nothing until the first epoch has finished;
 * then, per seed, lets the scheme train (checkpointed every epoch), evaluates teacher and
 * students on the test set, exports each student and writes the seed's report; finally a
 * summary across seeds. `resume` continues an interrupted run from its folder alone.
 *
 * Run folder:
 *   experiment.yaml              the resolved config (all a resume needs)
 *   teacher/                     a teacher trained here: model.json, checkpoints/
 *   seed-<n>/checkpoints/*.ckpt  one per training phase, rewritten every epoch
 *   seed-<n>/students/<id>/      exported students (model.json + weights.bin)
 *   seed-<n>/students/<id>-<enc>/  the same re-encoded for `export.evaluate` (float16, uint8), evaluated from the files
 *   seed-<n>/report.{json,md,html}, plots/, done.json
 *   summary.json, summary.md     mean ± std over seeds
 *   progress.json                which seeds are done
 *   epochs.jsonl                 a line per epoch of every training phase (seed, phase, model, losses, accuracies)
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { appendFile, mkdir } from 'node:fs/promises';
import { join, relative, resolve } from 'node:path';
import { useBestBackend } from '../backend/index.js';
import { experimentYaml, type ExperimentConfig } from '../config/experiment.js';
import { dataSources } from '../data/sources.js';
import { UserError } from '../errors.js';
import type { RunReport } from '../eval/types.js';
import { registerFileRouters } from '../io/file-handler.js';
import { reshapeStudent } from '../knowledge/index.js';
import { buildModel } from '../models/zoo.js';
import { checkTaps, layerNames } from '../models/taps.js';
import { writeFileAtomic } from '../io/atomic.js';
import { lockFolder } from '../io/folder-lock.js';
import { schemes, type StudentFactory } from '../schemes/index.js';
import { createFit, Interrupted, type FitSettings } from '../train/fit.js';
import type { ProgressMode } from '../train/progress.js';
import { loadExperiment, type LoadedExperiment } from './load.js';
import { runSeed, type SeedContext } from './seed.js';
import { summarizeReports, writeSummary, type RunSummary } from './summary.js';
import { type PreparedTeacher, teacherSources } from './teacher-sources.js';

/** The run folder's per-epoch log (appended as training goes; read by `distill board`). */
export const EPOCHS_FILE = 'epochs.jsonl';

/** Seed distance between the initializations of a student's variants (`StudentFactory.build(k)`). */
const VARIANT_SEED_STRIDE = 7919;

export interface RunExperimentOptions {
  /** The experiment file (not with `resume`); with `text`, only its name in messages. */
  file?: string;
  /** The experiment's YAML, when it is not read from `file` (a built-in experiment such as the quickstart). */
  text?: string;
  /** `path=value` overrides (not with `resume`). */
  set?: string[];
  /** A run folder to continue. */
  resume?: string;
  /** Overrides the config's backend. */
  backend?: string;
  /** Overrides the config's output folder. */
  out?: string;
  /** Default `lines`. */
  progress?: ProgressMode;
  /** Aborting stops training at the end of the current batch (the last checkpoint stays). */
  signal?: AbortSignal;
  log?: (line: string) => void;
  /**
   * The run folder is locked while it runs (a second run or resume on it is refused with the first's pid);
   * `takeOver` takes a lock that another process left (a trial given to this worker by its queue).
   */
  takeOverLock?: boolean;
  /** After every epoch of every training phase (teacher and students), whatever the progress mode. */
  onEpoch?: FitSettings['onEpoch'];
}

export interface RunExperimentResult {
  runDir: string;
  summary: RunSummary;
  /** One per seed. */
  reports: RunReport[];
}

/** `kd(temperature=4)+ce`-style descriptions of the configured terms. */
export function describeTerms(knowledge: ExperimentConfig['knowledge']): { short: string; long: string } {
  const short = knowledge.map((k) => k.key).join('+');
  const long = knowledge
    .map((k) => {
      const args = Object.entries(k.kwargs)
        // a switched-off flag (e.g. standardize: false) says nothing about the method
        .filter(([, v]) => v !== false)
        .map(([a, v]) => `${a}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
        .join(', ');
      return `${k.weight === 1 ? '' : `${k.weight}·`}${k.key}${args ? `(${args})` : ''}`;
    })
    .join(' + ');
  return { short, long };
}

function display(p: string): string {
  const r = relative(process.cwd(), p);
  return r !== '' && !r.startsWith('..') ? r : p;
}

/** The files of a run folder other than its lock and the temp files of writes cut short. */
function keptFiles(runDir: string): string[] {
  return existsSync(runDir) ? readdirSync(runDir).filter((f) => f !== '.lock' && !f.includes('.tmp-')) : [];
}

function load(o: RunExperimentOptions): { loaded: LoadedExperiment; runDir: string; fresh: boolean } {
  if (o.resume !== undefined) {
    if (o.file !== undefined) throw new UserError('give an experiment file or --resume DIR, not both');
    if ((o.set ?? []).length > 0)
      throw new UserError(
        '--set cannot change a resumed run (it continues exactly as it started); start a new run to change settings',
      );
    if (o.out !== undefined)
      throw new UserError('--out cannot move a resumed run; it continues in the folder given to --resume');
    const runDir = resolve(o.resume);
    const file = join(runDir, 'experiment.yaml');
    if (!existsSync(file)) {
      // A run killed as it created its folder leaves it with at most its lock: nothing to resume.
      const left = keptFiles(runDir);
      throw new UserError(
        !existsSync(runDir)
          ? `${o.resume} does not exist: a run keeps its folder from its first checkpoint on, so one stopped earlier left nothing to resume; start it again (distill run EXPERIMENT.yaml --out ${o.resume}) or check the path`
          : left.length === 0
            ? `${o.resume} has no experiment.yaml: its run stopped before it kept anything; start it again (distill run EXPERIMENT.yaml --out ${o.resume})`
            : `${o.resume} is not a run folder (it has no experiment.yaml); give the folder distill run wrote`,
      );
    }
    const values =
      o.backend !== undefined ? [{ path: ['backend'], value: o.backend, label: `--backend ${o.backend}` }] : [];
    return { loaded: loadExperiment({ path: display(file), values }), runDir, fresh: false };
  }
  if (o.file === undefined)
    throw new UserError('give an experiment file: distill run EXPERIMENT.yaml (examples/ has runnable ones)');
  const values = [
    ...(o.backend !== undefined ? [{ path: ['backend'], value: o.backend, label: `--backend ${o.backend}` }] : []),
    ...(o.out !== undefined ? [{ path: ['out'], value: o.out, label: `--out ${o.out}` }] : []),
  ];
  const loaded = loadExperiment({ path: o.file, text: o.text, set: o.set, values });
  const runDir = loaded.config.out;
  // A folder holding only a lock and temp files is what a run killed before it kept anything leaves.
  if (keptFiles(runDir).length > 0) {
    throw new UserError(
      existsSync(join(runDir, 'experiment.yaml'))
        ? `run folder ${display(runDir)} already exists; continue it with distill run --resume ${display(runDir)}, or choose another --out`
        : `output folder ${display(runDir)} exists and is not empty; choose another --out`,
    );
  }
  return { loaded, runDir, fresh: true };
}

/** Runs (or resumes) an experiment; see the module comment for what it writes. */
export async function runExperiment(o: RunExperimentOptions): Promise<RunExperimentResult> {
  // A resumed folder is locked before anything else is read; a new one when it is created (beforeWrite).
  const resumed = o.resume !== undefined ? resolve(o.resume) : undefined;
  const release =
    resumed !== undefined && existsSync(join(resumed, 'experiment.yaml'))
      ? lockFolder(resumed, 'distill run', { takeOver: o.takeOverLock })
      : undefined;
  try {
    return await runUnlocked(o);
  } finally {
    release?.();
  }
}

async function runUnlocked(o: RunExperimentOptions): Promise<RunExperimentResult> {
  const log = o.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const { loaded, runDir, fresh } = load(o);
  const { config } = loaded;
  registerFileRouters();

  // Everything that can fail on the user's input fails here, before anything is written.
  const data = loaded.located(['data'], () => dataSources.get(config.data.key).load(config.data.kwargs as never));
  // `auto` leaves the choice to DISTILL_BACKEND, else the fastest backend that works.
  const backend = await loaded.located(['backend'], () =>
    useBestBackend({ backend: config.backend === 'auto' ? undefined : config.backend }),
  );
  // Said once everything is checked, so a mistake is the only line a user sees.
  const checked = [
    `backend: ${backend.name} (${backend.reason})`,
    `data: ${data.name}, ${data.train.size} train / ${data.validation?.size ?? 0} validation / ${data.test.size} test`,
  ];
  const student = (i: number, seed: number): StudentFactory => {
    const s = config.students[i]!;
    return {
      name: s.name,
      model: s.model,
      build: (variant = 0) =>
        loaded.located(['students', i, 'model'], () =>
          buildModel({
            key: s.model.key,
            kwargs: s.model.kwargs,
            inputShape: data.train.sampleShape,
            numClasses: data.train.numClasses,
            seed: seed + 1000 + VARIANT_SEED_STRIDE * variant,
            name: variant === 0 ? s.name : `${s.name}-${variant}`,
          }),
        ),
    };
  };
  const teacherSource = teacherSources.get(config.teacher.key);
  const prepared = await loaded.located(['teacher'], () =>
    teacherSource.prepare(config.teacher.kwargs, {
      data,
      config,
      located: (p, fn) => loaded.located(['teacher', 'kwargs', ...p], fn),
    }),
  );
  const scheme = schemes.get(config.scheme.key);
  if (scheme.needsTeacher && config.teacher.key === 'none') {
    throw loaded.fail(
      ['teacher', 'key'],
      `teacher.key: scheme \`${config.scheme.key}\` learns from a frozen teacher; give one (teacher: {key: file, …} or {key: train, …}) or use a scheme that makes its own`,
    );
  }
  let unlockRun: (() => void) | undefined;
  try {
    checkTermsMeetModels(loaded, config, student, prepared, scheme.check);

    checked.forEach((line) => log(line));

    // The run folder appears with the first file worth keeping (the first checkpoint).
    let created = !fresh;
    const beforeWrite = async () => {
      if (created) return;
      await mkdir(runDir, { recursive: true });
      unlockRun = lockFolder(runDir, 'distill run', { takeOver: o.takeOverLock });
      await writeFileAtomic(join(runDir, 'experiment.yaml'), experimentYaml(config));
      created = true;
    };
    const progress = o.progress ?? 'lines';
    const common: Omit<FitSettings, 'seed' | 'checkpointDir'> = {
      data,
      epochs: config.epochs,
      batchSize: config.batchSize,
      schedule: config.schedule,
      earlyStopping: config.earlyStopping,
      optimizer: config.optimizer,
      beforeWrite,
      progress,
      signal: o.signal,
      // Every epoch of every phase, one JSON line (`distill board` draws live curves from it).
      onEpoch: async (info) => {
        await beforeWrite();
        await appendFile(join(runDir, EPOCHS_FILE), `${JSON.stringify({ ...info, time: new Date().toISOString() })}\n`);
        await o.onEpoch?.(info);
      },
    };
    try {
      if (!fresh) log(`resuming ${display(runDir)}`);
      const first = config.seeds[0]!;
      const obtained = await prepared.obtain({
        fit: createFit({
          ...common,
          seed: first,
          checkpointDir: join(runDir, 'teacher', 'checkpoints'),
          jsonFields: { seed: first },
        }),
        dir: join(runDir, 'teacher'),
        beforeWrite,
        log,
      });
      const method = describeTerms(config.knowledge);
      const reports: RunReport[] = [];
      let teacherLogits: Float32Array | undefined;
      const done = new Set<number>();
      const writeProgress = () =>
        writeFileAtomic(
          join(runDir, 'progress.json'),
          `${JSON.stringify(
            {
              seeds: Object.fromEntries(config.seeds.map((s) => [s, done.has(s) ? 'done' : 'pending'])),
              complete: done.size === config.seeds.length,
              updatedAt: new Date().toISOString(),
            },
            null,
            2,
          )}\n`,
        );
      const seedContext: SeedContext = {
        config,
        loaded,
        data,
        scheme,
        obtained,
        student,
        method,
        common,
        beforeWrite,
        log,
        signal: o.signal,
      };
      for (const seed of config.seeds) {
        const seedDir = join(runDir, `seed-${seed}`);
        if (existsSync(join(seedDir, 'done.json'))) {
          reports.push(JSON.parse(readFileSync(join(seedDir, 'report.json'), 'utf8')) as RunReport);
          done.add(seed);
          log(`seed ${seed}: finished earlier`);
          continue;
        }
        if (o.signal?.aborted) throw new Interrupted(`interrupted before seed ${seed}`);
        const run = await runSeed(seedContext, seed, seedDir, teacherLogits);
        teacherLogits = run.teacherLogits;
        reports.push(run.report);
        done.add(seed);
        await writeProgress();
        log(
          `seed ${seed}: report ${display(join(seedDir, 'report.md'))}, students in ${display(join(seedDir, 'students'))}/`,
        );
      }
      await beforeWrite();
      const summary = summarizeReports({ name: config.name, seeds: config.seeds, reports });
      const written = await writeSummary({ dir: runDir, summary });
      await writeProgress();
      log(`summary: ${display(written.markdown)} (also summary.json)`);
      return { runDir, summary, reports };
    } catch (e) {
      if (e instanceof Interrupted) {
        const hint = created
          ? `the last checkpoint is kept; resume with: distill run --resume ${display(runDir)}`
          : 'no epoch had finished, so nothing was saved; run it again to start over';
        throw new Interrupted(`${e.message}; ${hint}`);
      }
      throw e;
    }
  } finally {
    unlockRun?.();
    prepared.dispose();
  }
}

/** Each term meets each student and the teacher once, before any training: layer names, shapes, adapters. */
function checkTermsMeetModels(
  loaded: LoadedExperiment,
  config: ExperimentConfig,
  student: (i: number, seed: number) => StudentFactory,
  prepared: PreparedTeacher,
  schemeCheck:
    | ((terms: ReturnType<LoadedExperiment['createTerms']>, kwargs: Record<string, unknown>) => void)
    | undefined,
): void {
  const teacherLayers = prepared.tapNames();
  const teacherShapes = Object.fromEntries(teacherLayers.map((l) => [l.name, l.shape as number[]]));
  config.students.forEach((s, i) => {
    let model = student(i, config.seeds[0]!).build();
    const terms = loaded.createTerms();
    try {
      model = reshapeStudent(terms, model, prepared.layersAfter?.bind(prepared), (k, rebuild) => {
        loaded.located(['knowledge', k, 'key'], () => {
          if (config.scheme.key !== 'offline')
            throw new UserError(
              `knowledge term \`${terms[k]!.term.key}\` rebuilds the student around the teacher's classifier, which only the offline scheme does; use scheme: {key: offline}`,
            );
        });
        loaded.located(['knowledge', k, 'kwargs'], rebuild);
      });
      const studentShapes = Object.fromEntries(layerNames(model).map((l) => [l.name, l.shape as number[]]));
      terms.forEach(({ term }, k) =>
        loaded.located(['knowledge', k, 'kwargs'], () => {
          checkTaps(model, term.needs.studentTaps ?? [], `student ${s.name}`);
          for (const tap of term.needs.teacherTaps ?? []) {
            if (!(tap in teacherShapes)) {
              const list = teacherLayers.map((l) => `${l.name} [${l.shape.join(',')}]`).join(', ');
              throw new UserError(
                `the teacher has no layer \`${tap}\`; layers: ${list || '(none: this teacher gives logits only)'}`,
              );
            }
          }
          term.prepare?.({ student: studentShapes, teacher: teacherShapes });
        }),
      );
      loaded.located(['knowledge'], () => schemeCheck?.(terms, config.scheme.kwargs));
    } finally {
      terms.forEach(({ term }) => term.dispose());
      model.dispose();
    }
  });
}

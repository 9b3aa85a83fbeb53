#!/usr/bin/env node
import { Command } from 'commander';
import { cacheTeacher, type CacheTeacherOptions } from './commands/cache-teacher.js';
import { doctor } from './commands/doctor.js';
import { evalCommand, type EvalCommandOptions } from './commands/eval.js';
import { exportCommand, type ExportCommandOptions } from './commands/export.js';
import { runCommand } from './commands/run.js';
import { trainCommand, type TrainCommandOptions } from './commands/train.js';
import { studentsCommand, type StudentsCommandOptions } from './commands/students.js';
import { startBoard } from '../board/server.js';
import { searchCommand, type SearchCommandOptions } from './commands/search.js';
import { sweepCommand, workerCommand, type SweepCommandOptions, type WorkerCommandOptions } from './commands/sweep.js';
import { dataSources } from '../data/sources.js';
import { compareRuns } from '../experiment/compare.js';
import { teacherSources } from '../experiment/teacher-sources.js';
import { knowledge } from '../knowledge/index.js';
import { models } from '../models/zoo.js';
import { schemes } from '../schemes/index.js';
import { optimizers } from '../train/optimizers.js';
import { action, collect, parseInteger, parseIntegerList, parseNumber } from './run-command.js';
import { UserError } from '../errors.js';
import { defaultProgressMode } from './progress.js';
import { QUICKSTART_DEFAULTS, quickstartYaml, runQuickstart } from '../experiment/quickstart.js';

const program = new Command()
  .name('distill')
  .description(
    'Knowledge distillation for TensorFlow.js: train a small student from a large teacher, and measure what it bought.',
  )
  .showHelpAfterError('(add --help for usage)');

program
  .command('doctor')
  .description('show the backend in use and why, the data found, and versions')
  .option('--backend <name>', 'auto, native, wasm or cpu (env DISTILL_BACKEND)')
  .option('--data <dir>', 'folder with the Fashion-MNIST IDX files (env DISTILL_DATA)')
  .option('--json', 'one JSON object instead of text')
  .addHelpText('after', '\nExample:\n  $ distill doctor --backend wasm')
  .action(
    action(async (opts: { backend?: string; data?: string; json?: boolean }) => {
      await doctor(opts);
    }),
  );

program
  .command('quickstart')
  .description(
    'train a CNN teacher on Fashion-MNIST (cached), a student on labels and the same student with kd; measure all three; write the report and the student (a built-in experiment: --print-config shows it)',
  )
  .option(
    '--out <dir>',
    'the run folder (report, students); an earlier quickstart there is replaced',
    'runs/quickstart',
  )
  .option('--cache <dir>', 'the trained teacher is kept here and reused', '.distill-cache')
  .option('--data <dir>', 'folder with the Fashion-MNIST IDX files (env DISTILL_DATA)')
  .option('--subset <n>', 'use only the first N training images', parseInteger)
  .option('--epochs <n>', `student epochs (default ${QUICKSTART_DEFAULTS.epochs})`, parseInteger)
  .option(
    '--labeled <n>',
    'keep the labels of only N training images, the rest an unlabeled transfer set (the teacher still learns from all labels)',
    parseInteger,
  )
  .option(
    '--teacher-epochs <n>',
    `teacher epochs when not cached (default ${QUICKSTART_DEFAULTS.teacherEpochs})`,
    parseInteger,
  )
  .option('--seed <n>', `students' seed (default ${QUICKSTART_DEFAULTS.seeds[0]})`, parseInteger)
  .option(
    '--seeds <list>',
    "several students' seeds, e.g. 1,2,3: a report each and a mean ± std summary",
    parseIntegerList,
  )
  .option('--teacher-seed <n>', `teacher's seed (default ${QUICKSTART_DEFAULTS.teacherSeed})`, parseInteger)
  .option('--temperature <t>', `KD temperature (default ${QUICKSTART_DEFAULTS.temperature})`, parseFloat)
  .option('--alpha <a>', `weight of the soft-target term (default ${QUICKSTART_DEFAULTS.alpha})`, parseFloat)
  .option(
    '--student-width <w>',
    `width multiplier of the student CNN (default ${QUICKSTART_DEFAULTS.studentWidth})`,
    parseFloat,
  )
  .option('--backend <name>', 'auto, native, wasm or cpu (env DISTILL_BACKEND)')
  .option('--json', 'one JSON object per epoch on stdout')
  .option('--quiet', 'no progress output')
  .option('--print-config', 'print the experiment YAML (with these options) and exit; distill run accepts it')
  .addHelpText(
    'after',
    '\nExamples:\n  $ distill quickstart\n  $ distill quickstart --subset 6000 --epochs 2 --out /tmp/qs\n  $ distill quickstart --labeled 5000 --seeds 1,2\n  $ distill quickstart --print-config > qs.yaml && distill run qs.yaml --set seeds=[1,2,3]',
  )
  .action(
    action(async (opts: Record<string, never>) => {
      if (opts.seed !== undefined && opts.seeds !== undefined) throw new UserError('give --seed or --seeds, not both');
      const options = {
        outDir: opts.out,
        cacheDir: opts.cache,
        dataDir: opts.data,
        subset: opts.subset,
        labeled: opts.labeled,
        epochs: opts.epochs,
        teacherEpochs: opts.teacherEpochs,
        seeds: opts.seeds ?? (opts.seed === undefined ? undefined : [opts.seed]),
        teacherSeed: opts.teacherSeed,
        temperature: opts.temperature,
        alpha: opts.alpha,
        studentWidth: opts.studentWidth,
        backend: opts.backend,
        progress: defaultProgressMode({ json: opts.json, quiet: opts.quiet }),
      };
      if (opts.printConfig) process.stdout.write(quickstartYaml(options));
      else await runQuickstart(options);
    }),
  );

program
  .command('cache-teacher')
  .description(
    "write a teacher's logits for every row of a dataset to a file; training reads them instead of running the teacher",
  )
  .requiredOption('--teacher <path>', 'model.json (TF.js LayersModel or GraphModel) or .onnx file')
  .requiredOption('--out <file>', 'the cache file to write')
  .option('--data <dir>', 'folder with the Fashion-MNIST IDX files (env DISTILL_DATA)')
  .option('--csv <file>', 'a CSV file of numeric features instead of Fashion-MNIST')
  .option('--label-column <name>', 'with --csv: the column holding the class')
  .option('--split <part>', 'train, validation or test', 'train')
  .option(
    '--validation-fraction <f>',
    'split off this fraction of the training set first, as the training run will',
    parseFloat,
  )
  .option('--seed <n>', 'seed of that split', parseInteger)
  .option('--subset <n>', 'use only the first N rows', parseInteger)
  .option('--layout <NCHW|NHWC>', 'ONNX: input layout (default: inferred from the model)')
  .option('--input-name <name>', 'ONNX: input to feed')
  .option('--output-name <name>', 'ONNX: output holding the logits')
  .option('--backend <name>', 'auto, native, wasm or cpu (env DISTILL_BACKEND)')
  .addHelpText(
    'after',
    '\nExamples:\n  $ distill cache-teacher --teacher teacher/model.json --out teacher.logits\n  $ distill cache-teacher --teacher cnn.onnx --layout NCHW --validation-fraction 0.1 --seed 1 --out train.logits',
  )
  .action(
    action(async (opts: CacheTeacherOptions) => {
      const { rows, seconds } = await cacheTeacher(opts);
      process.stderr.write(`wrote the teacher's logits for ${rows} rows to ${opts.out} in ${seconds.toFixed(1)} s\n`);
    }),
  );

program
  .command('run')
  .description(
    'run an experiment from a YAML file: teacher, students, knowledge terms, scheme, seeds; checkpoints every epoch; a report per seed, a summary across seeds, the students exported',
  )
  .argument('[experiment]', 'the experiment file (see examples/)')
  .option(
    '--set <path=value>',
    'override a config value (YAML), repeatable: --set epochs=3 --set knowledge[0].kwargs.temperature=2',
    collect,
    [],
  )
  .option('--resume <dir>', 'continue an interrupted run from its folder (needs nothing else)')
  .option('--out <dir>', "run folder (default: the config's out, else runs/<name>)")
  .option('--backend <name>', 'auto, native, wasm or cpu (overrides the config and DISTILL_BACKEND)')
  .option('--json', 'one JSON object per epoch on stdout')
  .option('--quiet', 'no progress output')
  .addHelpText(
    'after',
    `
Examples:
  $ distill run examples/kd.yaml
  $ distill run examples/kd.yaml --set seeds=[1] --set epochs=2 --out runs/kd-try
  $ distill run --resume runs/kd            # after Ctrl-C or a crash: continues exactly

Ctrl-C stops at the end of the current batch, keeps the last checkpoint (one per epoch)
and prints the command that resumes; exit code 130.`,
  )
  .addHelpText(
    'after',
    () => `
Registered components (the \`key\` of each { key, kwargs } node):
  data sources     ${dataSources.keys().join(', ')}
  teacher sources  ${teacherSources.keys().join(', ')}
  models           ${models.keys().join(', ')}
  knowledge terms  ${knowledge.keys().join(', ')}
  schemes          ${schemes.keys().join(', ')}
  optimizers       ${optimizers.keys().join(', ')}`,
  )
  .action(
    action(
      async (
        file: string | undefined,
        opts: { set: string[]; resume?: string; out?: string; backend?: string; json?: boolean; quiet?: boolean },
      ) => {
        await runCommand(file, { ...opts, progress: defaultProgressMode(opts) });
      },
    ),
  );

program
  .command('train')
  .description(
    'train a zoo model (a teacher, or any model) from scratch on the labels; save it as model.json + weights.bin',
  )
  .requiredOption('--out <dir>', 'folder for model.json, weights.bin and training.json')
  .option('--model <kind>', 'zoo model: mlp, cnn, resnet, dwsep', 'cnn')
  .option('--width <w>', 'width multiplier', parseNumber)
  .option('--model-kwargs <yaml>', 'more builder options as a YAML mapping, e.g. "{blocks: [32, 64], dropout: 0.25}"')
  .option('--epochs <n>', 'epochs', parseInteger, 5)
  .option('--batch-size <n>', 'batch size', parseInteger, 64)
  .option('--optimizer <key>', 'adam, sgd, momentum or rmsprop', 'adam')
  .option('--lr <rate>', "learning rate (default: the optimizer's)", parseNumber)
  .option('--schedule <name>', 'constant or cosine', 'cosine')
  .option('--augment-shift <px>', 'random ±px translation of training images', parseInteger)
  .option('--seed <n>', 'seed (initial weights, data order, validation split)', parseInteger, 1)
  .option('--data <dir>', 'folder with the Fashion-MNIST IDX files (env DISTILL_DATA)')
  .option('--csv <file>', 'a CSV file of numeric features instead of Fashion-MNIST')
  .option('--label-column <name>', 'with --csv: the column holding the class')
  .option('--subset <n>', 'use only the first N training rows', parseInteger)
  .option('--validation-fraction <f>', 'hold out this fraction for per-epoch validation', parseNumber, 0.1)
  .option('--backend <name>', 'auto, native, wasm or cpu (env DISTILL_BACKEND)')
  .option('--json', 'one JSON object per epoch on stdout')
  .option('--quiet', 'no progress output')
  .addHelpText(
    'after',
    `
Examples:
  $ distill train --model cnn --epochs 10 --out teachers/cnn      # the Fashion-MNIST teacher
  $ distill train --model mlp --model-kwargs "{hidden: [1200, 1200]}" --out teachers/mlp
  $ distill train --csv iris.csv --label-column species --model mlp --out iris-mlp`,
  )
  .action(
    action(async (opts: Omit<TrainCommandOptions, 'progress'> & { json?: boolean; quiet?: boolean }) => {
      const r = await trainCommand({ ...opts, progress: defaultProgressMode(opts) });
      const val = r.valAccuracy === undefined ? '' : `, validation accuracy ${(100 * r.valAccuracy).toFixed(2)} %`;
      process.stderr.write(`trained in ${r.seconds.toFixed(1)} s${val}; saved ${r.path}\n`);
    }),
  );

program
  .command('eval')
  .description(
    'measure a saved model on a dataset: accuracy, ECE, size, latency; with --teacher, agreement and KL to it',
  )
  .argument('<model>', 'model.json (or its folder)')
  .option('--teacher <path>', 'a teacher (model.json, .onnx or logits cache for the same rows) to compare with')
  .option('--data <dir>', 'folder with the Fashion-MNIST IDX files (env DISTILL_DATA)')
  .option('--csv <file>', 'a CSV file of numeric features instead of Fashion-MNIST')
  .option('--label-column <name>', 'with --csv: the column holding the class')
  .option('--split <part>', 'test (Fashion-MNIST default), train or validation')
  .option('--validation-fraction <f>', 'with --split train/validation: the split the training run made', parseNumber)
  .option('--seed <n>', 'seed of that split', parseInteger)
  .option('--subset <n>', 'use only the first N rows', parseInteger)
  .option('--latency-runs <n>', 'timed passes per batch size (default 20)', parseInteger)
  .option('--backend <name>', 'auto, native, wasm or cpu (env DISTILL_BACKEND)')
  .option('--json', 'one JSON object instead of text')
  .addHelpText(
    'after',
    `
Examples:
  $ distill eval runs/kd/seed-1/students/small/model.json
  $ distill eval student/model.json --teacher teacher/model.json --json`,
  )
  .action(
    action(async (model: string, opts: EvalCommandOptions) => {
      await evalCommand(model, opts);
    }),
  );

program
  .command('export')
  .description(
    'write a saved model with float32, float16 or uint8-quantized weights (TF.js format: tf.loadLayersModel reads it in Node and browsers), or as ONNX (--format onnx)',
  )
  .argument('<model>', 'model.json (or its folder)')
  .requiredOption('--out <path>', 'tfjs: folder for model.json + weights.bin; onnx: the .onnx file')
  .option('--format <format>', 'tfjs or onnx', 'tfjs')
  .option('--dtype <type>', 'tfjs: float32, float16 or uint8', 'float32')
  .option('--layout <layout>', 'onnx: the input layout of image models, nhwc (as TF.js) or nchw', 'nhwc')
  .addHelpText(
    'after',
    `
Examples:
  $ distill export runs/kd/seed-1/students/small --out web/small --dtype uint8
  $ distill export teacher/model.json --out teacher-f16 --dtype float16
  $ distill export runs/kd/seed-1/students/small --format onnx --out small.onnx`,
  )
  .action(
    action(async (model: string, opts: ExportCommandOptions) => {
      await exportCommand(model, opts);
    }),
  );

program
  .command('students')
  .description(
    'derive student candidates from a teacher (narrower, shallower, depthwise-separable, MLP) and measure them untrained: params, float32/uint8 bytes, latency at batch 1 and 64 vs the teacher',
  )
  .argument(
    '<teacher>',
    'a zoo model (mlp, cnn, resnet, dwsep), a TF.js LayersModel (model.json or its folder), or an experiment YAML (its teacher and data)',
  )
  .option('--kwargs <yaml>', 'the zoo teacher\'s options as a YAML mapping, e.g. "{width: 1, convsPerBlock: 1}"')
  .option('--input-shape <dims>', "zoo teacher: one example's shape (default 28,28,1: Fashion-MNIST)", parseIntegerList)
  .option('--classes <n>', 'zoo teacher: number of classes (default 10)', parseInteger)
  .option(
    '--params-max <n>',
    'keep candidates with at most N params (and add width-fitted ones just under it)',
    parseNumber,
  )
  .option('--latency-runs <n>', 'timed passes per batch size (default 20)', parseInteger)
  .option(
    '--grid',
    'every family × depth × width (the candidates distill search starts from), not one change at a time',
  )
  .option('--backend <name>', 'auto, native, wasm or cpu (env DISTILL_BACKEND)')
  .option('--json', 'one JSON object instead of the table')
  .addHelpText(
    'after',
    `
Examples:
  $ distill students cnn --kwargs "{width: 1, blocks: [32, 64], convsPerBlock: 1, dense: 256, dropout: 0}" --params-max 200000
  $ distill students resnet --input-shape 32,32,3 --classes 10 --json
  $ distill students teachers/cnn/model.json --params-max 50000`,
  )
  .action(
    action(async (teacher: string, opts: StudentsCommandOptions) => {
      await studentsCommand(teacher, opts);
    }),
  );

/** The options every command that runs trials shares. */
function withExecutor(c: Command): Command {
  return c
    .option(
      '--executor <kind>',
      'local (default: child processes here) or bullmq (jobs on Redis, run by distill worker)',
    )
    .option('--workers <n>', 'local: trials at once (default: cores ÷ --threads)', parseInteger)
    .option('--threads <n>', 'native threads per trial (default 1)', parseInteger)
    .option('--redis <url>', 'bullmq: the Redis URL, e.g. redis://127.0.0.1:6379')
    .option('--shared <dir>', "where trials' folders live, seen by every worker (default: the output folder)")
    .option('--queue <name>', 'bullmq: the queue name (default distill-trials)')
    .option('--verbose', "show every trial's log lines");
}

withExecutor(
  program
    .command('sweep')
    .description(
      'run an experiment for every combination of --grid values (or --random N of them) as trials; one compare table',
    )
    .argument('[experiment]', 'the experiment file')
    .option(
      '--grid <path=[values]>',
      "values of one config path, repeatable: --grid 'knowledge[0].kwargs.temperature=[1,2,4]'",
      collect,
      [],
    )
    .option('--random <n>', 'run N random combinations of the grid instead of all', parseInteger)
    .option('--random-seed <n>', 'seed of --random (default 1)', parseInteger)
    .option('--set <path=value>', 'override a config value in every trial, repeatable', collect, [])
    .option('--out <dir>', 'the sweep folder (default runs/sweep)')
    .option('--resume <dir>', 'run the trials of an interrupted sweep that have no result yet')
    .option('--backend <name>', 'auto, native, wasm or cpu'),
)
  .addHelpText(
    'after',
    `
Examples:
  $ distill sweep examples/kd.yaml --grid 'knowledge[0].kwargs.temperature=[1,2,4]' --grid 'knowledge[0].kwargs.alpha=[0.5,0.9]' --out runs/sweep-kd
  $ distill sweep examples/kd.yaml --grid 'epochs=[4,8]' --executor bullmq --redis redis://10.0.0.5:6379 --shared /mnt/distill
  $ distill sweep --resume runs/sweep-kd`,
  )
  .action(
    action(async (file: string | undefined, opts: SweepCommandOptions) => {
      await sweepCommand(file, opts);
    }),
  );

withExecutor(
  program
    .command('search')
    .description(
      "find the most accurate student under a budget: candidates from the teacher's structure, measured, trained with the experiment's knowledge in halving rungs, the finalists beside their label-only baselines; a Pareto front",
    )
    .argument('[experiment]', 'the experiment file (its teacher, data, knowledge terms, epochs and seeds)')
    .option('--max-params <n>', 'at most N parameters', parseNumber)
    .option('--max-latency-ms <x>', 'at most X ms per forward pass at --latency-batch, on this backend', parseNumber)
    .option(
      '--max-latency-fraction <f>',
      "at most F × the teacher's latency at --latency-batch (e.g. 0.2), measured in the same run",
      parseNumber,
    )
    .option('--latency-batch <n>', 'the batch size of the latency budget: 1 or 64 (default 64)', parseInteger)
    .option('--max-bytes <b>', 'at most B bytes serialized as --dtype', parseNumber)
    .option('--dtype <type>', 'float32 or uint8, for --max-bytes (default float32)')
    .option('--trials <k>', 'at most K candidates enter the first rung (default 8)', parseInteger)
    .option('--latency-runs <n>', 'timed passes per batch size when measuring candidates (default 20)', parseInteger)
    .option('--set <path=value>', 'override a config value of the experiment, repeatable', collect, [])
    .option('--out <dir>', 'the search folder (default runs/search)')
    .option('--resume <dir>', 'continue an interrupted search (finished trials are kept)')
    .option('--backend <name>', 'auto, native, wasm or cpu'),
)
  .addHelpText(
    'after',
    `
Examples:
  $ distill quickstart --print-config > qs.yaml
  $ distill search qs.yaml --max-params 60000 --max-latency-ms 1.5 --latency-batch 64 --out runs/search-qs
  $ distill search qs.yaml --max-params 60000 --max-latency-fraction 0.2 --out runs/search-qs
  $ distill search qs.yaml --max-bytes 65536 --dtype uint8 --executor bullmq --redis redis://10.0.0.5:6379 --shared /mnt/distill/s1
  $ distill search --resume runs/search-qs`,
  )
  .action(
    action(async (file: string | undefined, opts: SearchCommandOptions) => {
      await searchCommand(file, opts);
    }),
  );

program
  .command('board')
  .description(
    'a local web page (127.0.0.1) over a runs folder: every run and its state, live per-epoch curves, reports, and a comparison of selected runs',
  )
  .argument('[dir]', 'the runs folder', 'runs')
  .option('--port <n>', 'the port (default 8080; 0: any free one)', parseInteger)
  .addHelpText('after', '\nExample:\n  $ distill board runs --port 8080     # then open http://127.0.0.1:8080/')
  .action(
    action(async (dir: string, opts: { port?: number }) => {
      const board = await startBoard({ dir, port: opts.port });
      process.stderr.write(`distill board: ${board.url} (runs in ${dir}; Ctrl-C to stop)\n`);
      await new Promise<void>((done) => process.once('SIGINT', () => void board.close().then(done)));
    }),
  );

program
  .command('worker')
  .description(
    'take trials (of distill sweep and distill search --executor bullmq) from a BullMQ queue on Redis and run them',
  )
  .requiredOption('--redis <url>', 'the Redis URL, e.g. redis://10.0.0.5:6379')
  .requiredOption('--shared <dir>', "the shared folder (this machine's path to it)")
  .option('--queue <name>', 'the queue name (default distill-trials)')
  .option('--concurrency <n>', 'trials at once on this worker (default 1)', parseInteger)
  .option('--lock-seconds <s>', "a dead worker's trial is taken over after about this long (default 30)", parseNumber)
  .addHelpText(
    'after',
    `
Example (on each machine; the shared folder mounted, e.g. over NFS):
  $ TFJS_DISTILL_THREADS=2 distill worker --redis redis://10.0.0.5:6379 --shared /mnt/distill`,
  )
  .action(
    action(async (opts: WorkerCommandOptions) => {
      await workerCommand(opts);
    }),
  );

program
  .command('compare')
  .description('compare finished runs: one table and one plot (accuracy ± std over seeds vs size)')
  .argument('<runs...>', 'run folders written by distill run')
  .requiredOption('--out <dir>', 'folder for compare.md, compare.json, compare.svg and compare.png')
  .addHelpText(
    'after',
    `
Example:
  $ distill compare runs/kd runs/dkd runs/hard --out runs/comparison`,
  )
  .action(
    action(async (runs: string[], opts: { out: string }) => {
      const r = await compareRuns({ runs, outDir: opts.out });
      process.stdout.write(r.markdown);
      process.stderr.write(`wrote ${r.files.markdown}, compare.json, compare.svg and compare.png\n`);
    }),
  );

await program.parseAsync();

#!/usr/bin/env node
import { Command } from 'commander';
import { cacheTeacher, type CacheTeacherOptions } from './commands/cache-teacher.js';
import { doctor } from './commands/doctor.js';
import { action, parseInteger } from './run-command.js';
import { defaultProgressMode } from './progress.js';
import { QUICKSTART_DEFAULTS, runQuickstart } from '../quickstart.js';

const program = new Command()
  .name('distill')
  .description('Knowledge distillation for TensorFlow.js: train a small student from a large teacher, and measure what it bought.')
  .showHelpAfterError('(add --help for usage)');

program.command('doctor')
  .description('show the backend in use and why, the data found, and versions')
  .option('--backend <name>', 'auto, native, wasm or cpu (env DISTILL_BACKEND)')
  .option('--data <dir>', 'folder with the Fashion-MNIST IDX files (env DISTILL_DATA)')
  .option('--json', 'one JSON object instead of text')
  .addHelpText('after', '\nExample:\n  $ distill doctor --backend wasm')
  .action(action(async (opts: { backend?: string; data?: string; json?: boolean }) => {
    await doctor(opts);
  }));

program.command('quickstart')
  .description('train a CNN teacher on Fashion-MNIST (cached), a student on labels and the same student with kd; measure all three; write the report and the student')
  .option('--out <dir>', 'report and exported student go here', 'runs/quickstart')
  .option('--cache <dir>', 'the trained teacher is kept here and reused', '.distill-cache')
  .option('--data <dir>', 'folder with the Fashion-MNIST IDX files (env DISTILL_DATA)')
  .option('--subset <n>', 'use only the first N training images', parseInteger)
  .option('--epochs <n>', `student epochs (default ${QUICKSTART_DEFAULTS.epochs})`, parseInteger)
  .option('--teacher-epochs <n>', `teacher epochs when not cached (default ${QUICKSTART_DEFAULTS.teacherEpochs})`, parseInteger)
  .option('--seed <n>', `seed (default ${QUICKSTART_DEFAULTS.seed})`, parseInteger)
  .option('--temperature <t>', `KD temperature (default ${QUICKSTART_DEFAULTS.temperature})`, parseFloat)
  .option('--alpha <a>', `weight of the soft-target term (default ${QUICKSTART_DEFAULTS.alpha})`, parseFloat)
  .option('--student-width <w>', `width multiplier of the student CNN (default ${QUICKSTART_DEFAULTS.studentWidth})`, parseFloat)
  .option('--backend <name>', 'auto, native, wasm or cpu (env DISTILL_BACKEND)')
  .option('--json', 'one JSON object per epoch on stdout')
  .option('--quiet', 'no progress output')
  .addHelpText('after', '\nExamples:\n  $ distill quickstart\n  $ distill quickstart --subset 6000 --epochs 2 --out /tmp/qs')
  .action(action(async (opts: Record<string, never>) => {
    await runQuickstart({
      outDir: opts.out, cacheDir: opts.cache, dataDir: opts.data, subset: opts.subset, epochs: opts.epochs,
      teacherEpochs: opts.teacherEpochs, seed: opts.seed, temperature: opts.temperature, alpha: opts.alpha,
      studentWidth: opts.studentWidth, backend: opts.backend,
      progress: defaultProgressMode({ json: opts.json, quiet: opts.quiet }),
    });
  }));

program.command('cache-teacher')
  .description("write a teacher's logits for every row of a dataset to a file; training reads them instead of running the teacher")
  .requiredOption('--teacher <path>', 'model.json (TF.js LayersModel or GraphModel) or .onnx file')
  .requiredOption('--out <file>', 'the cache file to write')
  .option('--data <dir>', 'folder with the Fashion-MNIST IDX files (env DISTILL_DATA)')
  .option('--csv <file>', 'a CSV file of numeric features instead of Fashion-MNIST')
  .option('--label-column <name>', 'with --csv: the column holding the class')
  .option('--split <part>', 'train, validation or test', 'train')
  .option('--validation-fraction <f>', 'split off this fraction of the training set first, as the training run will', parseFloat)
  .option('--seed <n>', 'seed of that split', parseInteger)
  .option('--subset <n>', 'use only the first N rows', parseInteger)
  .option('--layout <NCHW|NHWC>', 'ONNX: input layout (default: inferred from the model)')
  .option('--input-name <name>', 'ONNX: input to feed')
  .option('--output-name <name>', 'ONNX: output holding the logits')
  .option('--backend <name>', 'auto, native, wasm or cpu (env DISTILL_BACKEND)')
  .addHelpText('after', '\nExamples:\n  $ distill cache-teacher --teacher teacher/model.json --out teacher.logits\n  $ distill cache-teacher --teacher cnn.onnx --layout NCHW --validation-fraction 0.1 --seed 1 --out train.logits')
  .action(action(async (opts: CacheTeacherOptions) => {
    const { rows, seconds } = await cacheTeacher(opts);
    process.stderr.write(`wrote the teacher's logits for ${rows} rows to ${opts.out} in ${seconds.toFixed(1)} s\n`);
  }));

await program.parseAsync();

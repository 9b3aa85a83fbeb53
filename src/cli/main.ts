#!/usr/bin/env node
import { Command } from 'commander';
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

await program.parseAsync();

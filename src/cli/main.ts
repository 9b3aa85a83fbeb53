#!/usr/bin/env node
import { Command } from 'commander';
import { doctor } from './commands/doctor.js';
import { action } from './run-command.js';

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

await program.parseAsync();

// Import rules for src/ (issue #12: one home per concept, imports downward).
// `npm run lint:deps` checks them and `npm test` runs it first; every rule is an error.
//
// The layers, lowest first; a folder imports only from layers below it (and its own):
//   errors.ts, registry.ts        shared leaves
//   backend/ io/ data/ models/    building blocks: backends and kernels, files and weight
//   knowledge/ teachers/          encodings, datasets and data sources, the model zoo,
//   architecture/                 deriving and sizing students from the zoo,
//   config/                       knowledge terms, frozen teachers, the experiment file's format
//   train/                        the training loop, the Fit contract (createFit), progress output
//   eval/ → report/               measuring models; writing reports
//   distiller/                    the Keras-style Distiller (fit on tensors and tf.data) over train()
//   schemes/                      every distillation scheme, its types and the scheme registry
//   experiment/                   loading an experiment file against the registries; running it
//   trials/                       one experiment run as a trial; executors (local child processes, BullMQ)
//   search/                       sweeps and the student search, as lists of trials
//   board/                        distill board: a local web page over run folders (read-only)
//   index.ts                      the public API (the quickstart is a built-in experiment in experiment/)
//   cli/                          the `distill` bin (src/cli/main.ts); nothing imports it
// The rules name the boundaries; no-circular keeps the rest in order.

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      severity: 'error',
      comment: 'A cycle means two modules have no order between them; move the shared part down.',
      from: { path: '^src/' },
      to: { circular: true },
    },
    {
      name: 'building-blocks-import-down',
      severity: 'error',
      comment:
        'knowledge/, models/, architecture/, data/, io/ and backend/ are building blocks: they must not import ' +
        'the training loop, the schemes, the experiment runner or the CLI.',
      from: { path: '^src/(knowledge|models|architecture|data|io|backend)/' },
      to: { path: '^src/(train|schemes|experiment|cli)/' },
    },
    {
      name: 'teachers-import-down',
      severity: 'error',
      comment: 'teachers/ wraps frozen models for the training loop; it must not import the loop or anything above it.',
      from: { path: '^src/teachers/' },
      to: { path: '^src/(train|eval|report|schemes|experiment|cli)/' },
    },
    {
      name: 'config-is-the-file-format',
      severity: 'error',
      comment:
        'config/ is the experiment file\'s format (schema, YAML positions, kwargs schemas); loading a file ' +
        'against the registries is src/experiment/load.ts. Schemes use config/, so config/ must not import them.',
      from: { path: '^src/config/' },
      to: { path: '^src/(schemes|experiment|cli)/' },
    },
    {
      name: 'train-imports-down',
      severity: 'error',
      comment: 'train/ owns the training loop and the Fit contract; schemes, experiments and the CLI build on it.',
      from: { path: '^src/train/' },
      to: { path: '^src/(schemes|experiment|cli)/' },
    },
    {
      name: 'eval-report-import-down',
      severity: 'error',
      comment: 'eval/ and report/ measure and write what was trained; schemes and runs use them, not the reverse.',
      from: { path: '^src/(eval|report)/' },
      to: { path: '^src/(schemes|experiment|cli)/' },
    },
    {
      name: 'schemes-import-down',
      severity: 'error',
      comment: 'A scheme gets everything through its SchemeContext and Fit (src/schemes/types.ts, src/train/fit.ts); it must not import the runner.',
      from: { path: '^src/schemes/' },
      to: { path: '^src/(experiment|cli)/' },
    },
    {
      name: 'below-trials',
      severity: 'error',
      comment: 'trials/ and search/ build on runs; nothing below them imports them.',
      from: {
        path: '^src/(knowledge|models|architecture|data|io|backend|teachers|config|train|eval|report|schemes|experiment)/',
      },
      to: { path: '^src/(trials|search)/' },
    },
    {
      name: 'distiller-is-an-entry-point',
      severity: 'error',
      comment: 'distiller/ is an API over train/; nothing but index.ts (and the CLI) builds on it.',
      from: { path: '^src/', pathNot: '^src/(distiller|cli)/|^src/index\\.ts$' },
      to: { path: '^src/distiller/' },
    },
    {
      name: 'trials-below-search',
      severity: 'error',
      comment: 'An executor runs any list of trials; what the trials are for (a sweep, a search) is search/.',
      from: { path: '^src/trials/' },
      to: { path: '^src/search/' },
    },
    {
      name: 'board-is-an-entry-point',
      severity: 'error',
      comment: 'board/ (distill board) reads run folders; only the CLI starts it.',
      from: { path: '^src/', pathNot: '^src/(board|cli)/' },
      to: { path: '^src/board/' },
    },
    {
      name: 'nothing-imports-cli',
      severity: 'error',
      comment: 'cli/ is the entry point (src/cli/main.ts); code below it takes callbacks or options instead of importing it.',
      from: { path: '^src/', pathNot: '^src/cli/' },
      to: { path: '^src/cli/' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    // Type-only imports count: a type belongs to its concept's layer like any value.
    tsPreCompilationDeps: true,
    // NodeNext: `./x.js` in a .ts file resolves to ./x.ts.
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['import', 'require', 'node', 'default', 'types'],
    },
  },
};

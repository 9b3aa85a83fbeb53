/**
 * Self-distillation (the survey's third scheme: the network teaches itself): the methods,
 * callable from code, and the `byot`, `born-again` and `previous-epoch` schemes of an
 * experiment, each in its own file (`byot.ts` with `exits.ts`, `born-again.ts`,
 * `previous-epoch.ts`). Each scheme takes the experiment's one student as the network.
 * The registry is `index.ts`.
 *
 * The report's teacher column, when the experiment has no teacher (`teacher: {key: none}`):
 * the deepest classifier (`byot`), generation 0 (`born-again`), the last snapshot
 * (`previous-epoch`): the model that taught. With an external teacher, that teacher is the
 * column (a reference; these schemes do not learn from it) and those models are student rows.
 */
import { bornAgainScheme } from './born-again.js';
import { byotScheme } from './byot.js';
import { previousEpochScheme } from './previous-epoch.js';
import type { Scheme } from './types.js';

export { attachExits, type ExitSpec, type ExitModel, type AttachExitsOptions } from './exits.js';
export { beYourOwnTeacher, deepestTeaches, type ByotOptions } from './byot.js';
export { bornAgain, type BornAgainOptions, type Generation } from './born-again.js';
export {
  previousEpochTeacher,
  snapshotKeeper,
  type PreviousEpochOptions,
  type PreviousEpochResult,
} from './previous-epoch.js';

/** The self-distillation schemes by key. */
export const selfSchemes: Record<string, Scheme> = {
  byot: byotScheme,
  'born-again': bornAgainScheme,
  'previous-epoch': previousEpochScheme,
};

/**
 * The scheme registry (`scheme: { key, kwargs }`; what a scheme is: `types.ts`): `offline`
 * (`offline.ts`); teacher assistants — `assistant`, `residual` (`assistant.ts`, `residual.ts`); online — `dml`, `ensemble`, `streaming` (`dml.ts`, `ensemble.ts`,
 * `streaming.ts`); self-distillation — `byot`, `born-again`, `previous-epoch` (`byot.ts`,
 * `born-again.ts`, `previous-epoch.ts`).
 */
import { Registry } from '../registry.js';
import { assistantScheme } from './assistant.js';
import { bornAgainScheme } from './born-again.js';
import { byotScheme } from './byot.js';
import { dmlScheme } from './dml.js';
import { ensembleScheme } from './ensemble.js';
import { offlineScheme } from './offline.js';
import { previousEpochScheme } from './previous-epoch.js';
import { residualScheme } from './residual.js';
import { streamingScheme } from './streaming.js';
import type { Scheme } from './types.js';

export type { Scheme, SchemeContext, SchemeResult, SchemeReference, ProducedModel, StudentFactory } from './types.js';

export const schemes = new Registry<Scheme>('scheme')
  .register('offline', offlineScheme)
  .register('assistant', assistantScheme)
  .register('residual', residualScheme)
  .register('dml', dmlScheme)
  .register('ensemble', ensembleScheme)
  .register('streaming', streamingScheme)
  .register('byot', byotScheme)
  .register('born-again', bornAgainScheme)
  .register('previous-epoch', previousEpochScheme);

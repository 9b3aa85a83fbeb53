export { mlp, mlpOptions, type MlpOptions } from './mlp.js';
export { cnn, cnnOptions, type CnnOptions } from './cnn.js';
export { resnet, resnetOptions, type ResnetOptions } from './resnet.js';
export { dwsep, dwsepOptions, type DwsepOptions, type DwsepBlock } from './dwsep.js';
export { countParams, trainableParamCount, modelOptions, type ModelOptions, type ModelContext } from './common.js';
export {
  models,
  buildModel,
  defineModel,
  type BuildModelOptions,
  type ModelBuilder,
  type ModelEntry,
  type ModelKwargs,
} from './zoo.js';

export { mlp, type MlpOptions } from './mlp.js';
export { cnn, type CnnOptions } from './cnn.js';
export { resnet, type ResnetOptions } from './resnet.js';
export { dwsep, type DwsepOptions, type DwsepBlock } from './dwsep.js';
export { countParams, trainableParamCount, type ModelOptions } from './common.js';
export { models, buildModel, type BuildModelOptions, type ModelBuilder } from './zoo.js';

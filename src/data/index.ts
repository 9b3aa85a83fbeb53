export { readIdx, encodeIdx, writeIdx } from './idx.js';
export type { IdxArray, IdxData, IdxDtype, ReadIdxOptions, WriteIdxOptions } from './idx.js';
export { Rng } from './rng.js';
export type { RngState, MutableArrayLike } from './rng.js';
export { Dataset } from './dataset.js';
export { isBatchStream } from './batch-stream.js';
export type { BatchStream } from './batch-stream.js';
export type { Batch, BatchOptions, DatasetOptions, NormalizationStats } from './dataset.js';
export {
  locateFashionMnist,
  loadFashionMnist,
  FASHION_MNIST_CLASS_NAMES,
  DEBIAN_FASHION_MNIST_DIR,
} from './fashion-mnist.js';
export type { FashionMnistFiles, LocateFashionMnistOptions, LoadFashionMnistOptions } from './fashion-mnist.js';
export { loadCsv } from './csv.js';
export type { LoadCsvOptions } from './csv.js';

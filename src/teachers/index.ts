/** Teachers: frozen models (LayersModel, GraphModel, ONNX) and cached logits. */
export type { Teacher, TeacherOutput, TeacherPredictOptions } from './types.js';
export { layersTeacher, loadLayersTeacher } from './layers.js';
export { CachedTeacher } from './cached.js';
export type { CachedTeacherOptions } from './cached.js';
export { graphTeacher, loadGraphTeacher } from './graph.js';
export type { GraphTeacherOptions } from './graph.js';
export { loadOnnxTeacher } from './onnx.js';
export type { Layout, OnnxTeacherOptions } from './onnx.js';
export { datasetFingerprint, readTeacherCache, TEACHER_CACHE_MAGIC, writeTeacherCache } from './cache-file.js';
export type { TeacherCache, TeacherCacheHeader, WriteTeacherCacheOptions } from './cache-file.js';
export { loadTeacher } from './load.js';
export {
  ensembleTeacher,
  sampleWeights,
  combineLogits,
  normalizeWeights,
  TEACHER_WEIGHTINGS,
  type EnsembleTeacherOptions,
  type TeacherWeighting,
} from './ensemble.js';
export type { LoadTeacherOptions } from './load.js';

export type {
  ByteSizes,
  Compression,
  EpochRecord,
  LatencyPair,
  ModelEvaluation,
  ReportModel,
  RunReport,
} from './types.js';
export {
  accuracy,
  agreement,
  calibrationBins,
  classificationMetrics,
  ece,
  klToTeacher,
  predictLogits,
  type CalibrationBin,
  type ClassificationMetrics,
  type LabelledLogitsOptions,
  type LogitsOptions,
  type PredictFn,
  type PredictLogitsOptions,
  type TeacherLogitsOptions,
} from './metrics.js';
export { modelSize, type ModelSize, type ModelSizeOptions } from './size.js';
export {
  measureLatencies,
  measureLatency,
  type LatenciesOptions,
  type LatencyOptions,
  type LatencyResult,
  type LatencyStats,
} from './latency.js';
export { compression, speedup, type CompressionOptions, type SpeedupOptions } from './compare.js';
export {
  evaluateModels,
  modelPredictFn,
  teacherPredictFn,
  type EvaluateModelsOptions,
  type EvaluatedStudent,
  type EvaluatedTeacher,
  type EvaluationResult,
} from './evaluate.js';

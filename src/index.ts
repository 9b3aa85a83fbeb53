// tfjs-distill: the flat public API.
export { UserError } from './errors.js';
export { Registry } from './registry.js';

export { useBestBackend, BACKENDS } from './backend/index.js';
export type { BackendName, BackendChoice, BackendAttempt, UseBackendOptions } from './backend/index.js';
export { installWasmTrainingKernels } from './backend/wasm-training.js';
export { compileInference, type InferencePlan } from './backend/inference-plan.js';

export {
  Dataset,
  isBatchStream,
  Rng,
  readIdx,
  writeIdx,
  encodeIdx,
  loadFashionMnist,
  locateFashionMnist,
  loadCsv,
  FASHION_MNIST_CLASS_NAMES,
} from './data/index.js';
export type {
  Batch,
  BatchOptions,
  BatchStream,
  DatasetOptions,
  NormalizationStats,
  IdxArray,
  IdxDtype,
  RngState,
  LoadCsvOptions,
  LoadFashionMnistOptions,
  LocateFashionMnistOptions,
  FashionMnistFiles,
} from './data/index.js';

export { models, buildModel, mlp, cnn, resnet, dwsep, countParams, trainableParamCount } from './models/index.js';
export type {
  BuildModelOptions,
  ModelOptions,
  MlpOptions,
  CnnOptions,
  ResnetOptions,
  DwsepOptions,
} from './models/index.js';
export { tapModel, layerNames, layersAfter } from './models/taps.js';
export type { CopiedHead, CopiedLayer } from './models/taps.js';

export { fileSystem, registerFileRouters } from './io/index.js';
export { saveEncodedModel, encodeModelWeights, encodeModelArtifacts, WEIGHT_ENCODINGS } from './io/quantize.js';
export type { WeightEncoding, SaveEncodedModelOptions, EncodeModelOptions } from './io/quantize.js';

export {
  knowledge,
  createTerm,
  crossEntropyTerm,
  kdTerm,
  softCrossEntropyTerm,
  logitsMseTerm,
  logitsL1Term,
  hardTargetTerm,
  dkdTerm,
  distTerm,
  nkdTerm,
  ctkdTerm,
  pskdTerm,
  mlkdTerm,
  fitnetsTerm,
  atTerm,
  pktTerm,
  nstTerm,
  simkdTerm,
  reviewkdTerm,
  rkdTerm,
  spTerm,
  ccTerm,
  crdTerm,
  createAdapter,
  termParamCount,
  featureLoss,
  SIMILARITIES,
} from './knowledge/index.js';
export type {
  KnowledgeTerm,
  TermInputs,
  TermNeeds,
  TapShapes,
  CeOptions,
  KdOptions,
  SoftCeOptions,
  LogitsMseOptions,
  LogitsL1Options,
  HardOptions,
  DkdOptions,
  PskdOptions,
  MlkdOptions,
  FitnetsOptions,
  AtOptions,
  PktOptions,
  NstOptions,
  SimkdOptions,
  ReviewkdOptions,
  RkdOptions,
  SpOptions,
  CcOptions,
  CrdOptions,
  Adapter,
  AdapterKind,
  AdapterOptions,
  Similarity,
} from './knowledge/index.js';

export {
  layersTeacher,
  loadLayersTeacher,
  graphTeacher,
  loadGraphTeacher,
  loadOnnxTeacher,
  loadTeacher,
  CachedTeacher,
  readTeacherCache,
  writeTeacherCache,
  datasetFingerprint,
  ensembleTeacher,
  TEACHER_WEIGHTINGS,
} from './teachers/index.js';
export type {
  Teacher,
  TeacherOutput,
  TeacherPredictOptions,
  CachedTeacherOptions,
  GraphTeacherOptions,
  OnnxTeacherOptions,
  Layout,
  LoadTeacherOptions,
  TeacherCache,
} from './teachers/index.js';

export { train, evaluateAccuracy } from './train/trainer.js';
export { optimizers, createOptimizer } from './train/optimizers.js';
export type {
  Learner,
  WeightedTerm,
  EpochRecord,
  BatchLogs,
  TrainCallbacks,
  TrainOptions,
  TrainResult,
  TeacherSelector,
  OptimizerSpec,
} from './train/types.js';

export {
  evaluateModels,
  modelPredictFn,
  teacherPredictFn,
  predictLogits,
  classificationMetrics,
  accuracy,
  agreement,
  klToTeacher,
  ece,
  modelSize,
  measureLatency,
  measureLatencies,
  compression,
  speedup,
} from './eval/index.js';
export type {
  ModelEvaluation,
  RunReport,
  ReportModel,
  ByteSizes,
  LatencyPair,
  Compression,
  EvaluateModelsOptions,
  EvaluationResult,
  PredictFn,
  ModelSize,
  LatencyResult,
} from './eval/index.js';
export { writeReport, renderMarkdown, renderHtml } from './report/index.js';
export type { WriteReportOptions, WrittenReport } from './report/index.js';

export { runQuickstart, quickstartExperiment, quickstartYaml, QUICKSTART_DEFAULTS } from './experiment/quickstart.js';
export type { QuickstartOptions } from './experiment/quickstart.js';

export { experimentSchema, experimentYaml } from './config/experiment.js';
export type { ExperimentConfig, ComponentNode } from './config/experiment.js';
export { loadExperiment } from './experiment/load.js';
export type { LoadedExperiment, LoadExperimentOptions } from './experiment/load.js';
export { runExperiment, describeTerms } from './experiment/run.js';
export type { RunExperimentOptions, RunExperimentResult } from './experiment/run.js';
export { schemes } from './schemes/index.js';
export type { Scheme, SchemeContext, SchemeResult, ProducedModel, StudentFactory } from './schemes/types.js';
export { dataSources, defineDataSource } from './data/sources.js';
export type { DataSource, ExperimentData } from './data/sources.js';
export { teacherSources } from './experiment/teacher-sources.js';
export type {
  TeacherSource,
  PreparedTeacher,
  ObtainedTeacher,
  TeacherPrepareContext,
  TeacherRunContext,
} from './experiment/teacher-sources.js';
export { createFit, mergeCallbacks, Interrupted } from './train/fit.js';
export type { Fit, FitPhase, FitResult, FitSettings } from './train/fit.js';
export { summarizeReports, writeSummary, renderSummaryMarkdown } from './experiment/summary.js';
export type { RunSummary, SummaryModel, SummaryGain, Stat } from './experiment/summary.js';
export { compareRuns } from './experiment/compare.js';
export type { CompareRunsOptions, CompareResult, CompareRow } from './experiment/compare.js';
export {
  captureCheckpoint,
  writeCheckpoint,
  readCheckpoint,
  restoreModels,
  restoreTermVariables,
  restoreOptimizer,
} from './train/checkpoint.js';
export type { TrainingCheckpoint, SavedTensor, CaptureOptions } from './train/checkpoint.js';

export {
  deepMutualLearning,
  mutualSelector,
  onlineEnsemble,
  ensembleSelector,
  streamingDistillation,
  datasetChunks,
  watchChunks,
  onlineSchemes,
} from './schemes/online.js';
export type {
  CohortMember,
  DeepMutualLearningOptions,
  OnlineEnsembleOptions,
  StreamingOptions,
  StreamingResult,
  ChunkRecord,
  WatchChunksOptions,
} from './schemes/online.js';
export {
  attachExits,
  beYourOwnTeacher,
  deepestTeaches,
  bornAgain,
  previousEpochTeacher,
  snapshotKeeper,
  selfSchemes,
} from './schemes/self.js';
export type {
  ExitSpec,
  ExitModel,
  AttachExitsOptions,
  ByotOptions,
  BornAgainOptions,
  Generation,
  PreviousEpochOptions,
  PreviousEpochResult,
} from './schemes/self.js';
export { simpleFit, averageLogits, ensemblePredict, ensembleEvaluated } from './schemes/common.js';
export type { SimpleFitOptions } from './schemes/common.js';
export type { Teaching, TeachingSource } from './train/types.js';
export type { SchemeReference } from './schemes/types.js';
export type { ReportSection } from './eval/types.js';
export { deriveStudents, DEFAULT_WIDTHS, GRID_WIDTHS } from './architecture/factory.js';
export type { DeriveStudentsOptions, StudentCandidate } from './architecture/factory.js';
export { zooEquivalent } from './architecture/from-layers.js';
export type { ZooEquivalent } from './architecture/from-layers.js';
export type { ZooNode } from './architecture/size-search.js';
// Trials, executors, sweeps and the student search (distill search / sweep / worker).
export { runSearch, paretoFront, rungEpochs } from './search/search.js';
export type { SearchOptions } from './search/search.js';
export type { SearchResult, SearchCandidate, SearchChosen, SearchBudget, SearchRung } from './search/types.js';
export { runSweep, parseGrid, gridCombinations, randomCombinations } from './search/sweep.js';
export type { SweepOptions, SweepResult } from './search/sweep.js';
export { measureCandidates } from './search/candidates.js';
export type { MeasuredModel } from './search/candidates.js';
export { localExecutor, defaultWorkers } from './trials/local.js';
export { bullmqExecutor, startWorker } from './trials/bullmq.js';
export type { BullmqExecutorOptions, StartWorkerOptions, RunningWorker } from './trials/bullmq.js';
export { runTrial, readTrialResult } from './trials/run-trial.js';
export type { Executor, ExecutorRunOptions, TrialSpec, TrialResult, TrialEvent, TrialModel } from './trials/types.js';
// The Keras-style API: fit on tensors or tf.data, tfjs-layers callbacks.
export { Distiller } from './distiller/distiller.js';
export type {
  DistillerOptions,
  DistillerFitArgs,
  DistillerFitDatasetArgs,
  DistillerHistory,
  KnowledgeNode,
} from './distiller/distiller.js';
export { exportOnnx, ONNX_OPSET } from './io/onnx-export.js';
export type { OnnxExportOptions } from './io/onnx-export.js';

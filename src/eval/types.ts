import type { EpochRecord } from '../train/types.js';

/** One epoch of training, as the trainer logs it (defined by the trainer). */
export type { EpochRecord };

/** Bytes of a saved model (weights file + model.json) per weight encoding. */
export interface ByteSizes {
  float32: number;
  float16: number;
  uint8: number;
}

/** Median (and 90th-percentile) milliseconds per forward pass, at batch 1 and batch 64. */
export interface LatencyPair {
  batch1: number;
  batch64: number;
}

/** How much smaller a model is than the teacher (teacher ÷ model; > 1 = smaller). */
export interface Compression {
  /** teacher params ÷ model params. */
  params: number;
  /**
   * teacher float32 bytes ÷ model bytes in each encoding: the baseline is always the
   * teacher as usually shipped (float32), so `uint8` is what distilling and quantizing
   * bought together.
   */
  bytes: ByteSizes;
}

/** One row group of the report: a model measured on the test set. */
export interface ModelEvaluation {
  name: string;
  role: 'teacher' | 'student';
  /** All weights (trainable + non-trainable); null when the teacher has no LayersModel (ONNX, cached). */
  params: number | null;
  /** See `modelSize`; null when unknown. */
  bytes: ByteSizes | null;
  /** Top-1 accuracy on the test set, in [0, 1]. */
  accuracy: number;
  /** Fraction of test samples where the model's top-1 class equals the teacher's (teacher: 1). */
  agreement: number;
  /** Mean KL(p_teacher ‖ p_model) at T = 1, nats (teacher: 0). */
  klToTeacher: number;
  /** Expected calibration error, 15 equal-width confidence bins (Guo et al. 2017). */
  ece: number;
  /** Median ms per forward pass incl. reading the result back. */
  latencyMs: LatencyPair;
  /** 90th percentile of the same runs. */
  latencyP90Ms?: LatencyPair;
  /** Relative to the teacher; null when sizes are unknown. Teacher: params 1. */
  compression: Compression | null;
  /** teacher latency ÷ model latency, per batch size (teacher: 1). */
  speedup: LatencyPair;
}

/** One model of a run: its evaluation plus what the trainer knows. */
export type ReportModel = ModelEvaluation & {
  /** Wall-clock training seconds (absent for a pre-trained teacher). */
  trainSeconds?: number;
  history?: EpochRecord[];
  /** Short description of how it was trained, e.g. `kd (T=4, α=0.9)` or `labels only`. */
  method?: string;
  /**
   * Marks the student trained on labels only (same architecture, no teacher). When one
   * student is marked, the report says what distilling bought each other student.
   */
  baseline?: boolean;
};

/**
 * An extra table of a report: a scheme's own view of its models (accuracy after every chunk
 * of a stream, early exits, generations, a cohort against its members trained alone).
 */
export interface ReportSection {
  title: string;
  /** A sentence under the title: what the rows are. */
  note?: string;
  columns: string[];
  /** Formatted cells, one array per row, in column order. */
  rows: string[][];
  /** The same rows as raw values keyed by column (numbers as fractions, seconds, counts), for report.json readers. */
  data?: Array<Record<string, number | string | null>>;
}

/** Everything a run's report shows; `writeReport` validates it. */
export interface RunReport {
  title: string;
  /** ISO 8601 timestamp. */
  createdAt: string;
  /** TF.js backend all latencies were measured on, e.g. `cpu`, `wasm`, `native`. */
  backend: string;
  /** Dataset name and sample counts. */
  /** `labeled`: how many training rows have a label, when not all of them do (a transfer set). */
  dataset: { name: string; train: number; test: number; labeled?: number };
  settings: Record<string, unknown>;
  /** Teacher first, then students. */
  models: ReportModel[];
  /** Extra tables after the main one (schemes add theirs). */
  tables?: ReportSection[];
}

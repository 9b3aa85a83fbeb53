/** What a student search decides and writes (`search.json`); see `search.ts`. */
import type { ZooNode } from '../architecture/size-search.js';
import type { TrialResult } from '../trials/types.js';

export interface SearchBudget {
  maxParams?: number;
  /** With `maxLatencyFraction`, the smaller of the two (resolved once the teacher is measured). */
  maxLatencyMs?: number;
  /** At most this fraction of the teacher's latency at `latencyBatch`, measured beside the candidates. */
  maxLatencyFraction?: number;
  latencyBatch: 1 | 64;
  maxBytes?: number;
  dtype: 'float32' | 'uint8';
}

export interface SearchCandidate {
  name: string;
  family: string;
  /** Its structure regardless of width (family and depth), e.g. `cnn-1block`. */
  structure: string;
  derivation: string;
  node: ZooNode;
  params: number;
  bytes: { float32: number; uint8: number };
  latencyMs: { batch1: number; batch64: number };
  /** Why it was dropped before training (over which budget), else absent. */
  dropped?: string;
  /** Test accuracy of the distilled candidate at its last rung; null when not trained. */
  accuracy: number | null;
  /** Validation accuracy at its last rung (what ranks candidates); null when not trained. */
  valAccuracy: number | null;
  /** Epochs of its last rung (0: not trained). */
  epochs: number;
  onFront: boolean;
}

export interface SearchRung {
  epochs: number;
  candidates: string[];
  /** Those that went on. */
  kept: string[];
}

export interface SearchChosen {
  name: string;
  node: ZooNode;
  accuracy: number;
  baselineAccuracy: number;
  /** accuracy − baselineAccuracy (fraction), and what it means. */
  gain: number;
  verdict: string;
  params: number;
  latencyMs: { batch1: number; batch64: number };
  /** The final run's folder (report, students), relative to the search folder's shared folder. */
  dir: string;
}

export interface SearchResult {
  name: string;
  createdAt: string;
  backend: string;
  executor: string;
  budget: SearchBudget & { teacherLatencyMs: { batch1: number; batch64: number } };
  teacher: {
    params: number;
    bytes: { float32: number; uint8: number };
    latencyMs: { batch1: number; batch64: number };
  };
  epochs: number;
  seeds: number[];
  candidates: SearchCandidate[];
  rungs: SearchRung[];
  chosen: SearchChosen;
  /** Every trial: where it ran, how long, whether it resumed an earlier attempt. */
  trials: Array<Pick<TrialResult, 'id' | 'worker' | 'seconds' | 'resumed'>>;
  /** Wall-clock seconds of this invocation (a resumed search counts its own). */
  seconds: number;
}

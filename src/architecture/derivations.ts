/**
 * The structural derivations of the student factory (factory.ts): fewer layers along each depth
 * dimension of a zoo family, its depthwise-separable form, an MLP — each at the teacher's width,
 * which the factory then varies. `gridStructures` combines them for a student search.
 */
import type { ZooNode } from './size-search.js';
import { models } from '../models/zoo.js';

type Kwargs = Record<string, unknown>;
/** A derived student before sizing: its name, zoo node, what changed and its structure's name. */
export type Derived = { name: string; node: ZooNode; derivation: string; structure: string };

/**
 * For `grid`, beyond the teacher: its depth combinations, and each other family it converts to
 * (depthwise-separable, MLP) with that family's depth reductions — all at the teacher's width.
 */
export function gridStructures(key: string, given: Kwargs, parsed: Kwargs): Derived[] {
  const own = structuralDerivations(key, given, parsed, true);
  const converted = own.filter((d) => d.node.key !== key);
  const deeper = converted.flatMap((c) => {
    const entry = models.get(c.node.key);
    const fewer = structuralDerivations(c.node.key, c.node.kwargs, entry.kwargs.parse(c.node.kwargs), true).filter(
      (d) => d.node.key === c.node.key,
    );
    return fewer.map((d) => ({ ...d, derivation: `${c.derivation}, ${d.derivation}` }));
  });
  return [...own, ...deeper];
}

/**
 * The depth, depthwise-separable and MLP derivations of a zoo node (kwargs as given, and parsed);
 * with `combine`, also both depth reductions at once (cnn: fewer convs and blocks; resnet: fewer
 * blocks per stage and stages).
 */
export function structuralDerivations(key: string, given: Kwargs, parsed: Kwargs, combine: boolean): Derived[] {
  const at = (name: string, derivation: string, k: string, kwargs: Kwargs): Derived => ({
    name,
    derivation,
    node: { key: k, kwargs },
    structure: name,
  });
  // The teacher's width and init carry over to nodes of another family.
  const common: Kwargs = Object.fromEntries(Object.entries(given).filter(([k]) => k === 'width' || k === 'init'));
  const out: Derived[] = [];
  if (key === 'cnn') {
    const blocks = parsed.blocks as number[];
    const convs = parsed.convsPerBlock as number;
    out.push(
      ...depthDerivations(
        key,
        given,
        {
          option: 'convsPerBlock',
          n: convs,
          name: (k) => `${k}conv`,
          describe: (k) => `${plural(k, 'conv')} per block`,
        },
        { option: 'blocks', list: blocks, name: (k) => `${k}block`, word: 'block' },
        combine,
      ),
    );
    // The stem stands for the first conv; each later conv is a block, striding where the CNN pooled.
    // (One block of one conv leaves no block: the schema refuses it, and the candidate is left out.)
    const dw = blocks.flatMap((filters, b) =>
      Array.from({ length: convs }, (_, i) => ({ filters, stride: b > 0 && i === 0 ? 2 : 1 })),
    );
    out.push(
      at('dwsep', 'depthwise-separable', 'dwsep', {
        ...common,
        stemFilters: blocks[0],
        stemStride: 1,
        blocks: dw.slice(1),
      }),
    );
    out.push(
      at('mlp', 'MLP from CNN', 'mlp', {
        ...common,
        hidden: [parsed.dense],
        ...((parsed.dropout as number) > 0 && { dropout: parsed.dropout }),
      }),
    );
  } else if (key === 'resnet') {
    const stages = parsed.stages as number[];
    const perStage = parsed.blocksPerStage as number;
    out.push(
      ...depthDerivations(
        key,
        given,
        {
          option: 'blocksPerStage',
          n: perStage,
          name: (k) => `${k}perstage`,
          describe: (k) => `${plural(k, 'block')} per stage`,
        },
        { option: 'stages', list: stages, name: (k) => `${k}stage`, word: 'stage' },
        combine,
      ),
    );
    // Each residual block's two 3×3 convs → two dwsep blocks; the first of a later stage strides.
    const dw = stages.flatMap((filters, s) =>
      Array.from({ length: 2 * perStage }, (_, i) => ({ filters, stride: s > 0 && i === 0 ? 2 : 1 })),
    );
    out.push(
      at('dwsep', 'depthwise-separable', 'dwsep', {
        ...common,
        stemFilters: stages[0],
        stemStride: parsed.stemStride,
        blocks: dw,
      }),
    );
  } else if (key === 'mlp') {
    const hidden = parsed.hidden as number[];
    for (const n of fewer(hidden.length)) {
      out.push(
        at(`mlp-${n}hidden`, `first ${plural(n, 'hidden layer')} of ${hidden.length}`, 'mlp', {
          ...given,
          hidden: hidden.slice(0, n),
        }),
      );
    }
  } else if (key === 'dwsep') {
    const blocks = parsed.blocks as unknown[];
    for (const n of fewer(blocks.length)) {
      out.push(
        at(`dwsep-${n}block`, `first ${plural(n, 'block')} of ${blocks.length}`, 'dwsep', {
          ...given,
          blocks: blocks.slice(0, n),
        }),
      );
    }
  }
  return out;
}

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;

/**
 * Fewer layers along a family's two depth dimensions — `inner` units per group (convs per block,
 * blocks per stage) and `outer` groups (the first k blocks or stages) — one at a time and, with
 * `combine`, both at once.
 */
function depthDerivations(
  key: string,
  given: Kwargs,
  inner: { option: string; n: number; name: (k: number) => string; describe: (k: number) => string },
  outer: { option: string; list: unknown[]; name: (k: number) => string; word: string },
  combine: boolean,
): Derived[] {
  type Part = { name: string; describe: string; kwargs: Kwargs };
  const inners: Part[] = fewer(inner.n).map((k) => ({
    name: inner.name(k),
    describe: inner.describe(k),
    kwargs: { [inner.option]: k },
  }));
  const outers: Part[] = fewer(outer.list.length).map((k) => ({
    name: outer.name(k),
    describe: `first ${plural(k, outer.word)} of ${outer.list.length}`,
    kwargs: { [outer.option]: outer.list.slice(0, k) },
  }));
  const combos = [
    ...inners.map((i) => [i]),
    ...outers.map((o) => [o]),
    ...(combine ? inners.flatMap((i) => outers.map((o) => [i, o])) : []),
  ];
  return combos.map((parts) => {
    const name = `${key}-${parts.map((p) => p.name).join('-')}`;
    return {
      name,
      derivation: parts.map((p) => p.describe).join(', '),
      node: { key, kwargs: { ...given, ...Object.assign({}, ...parts.map((p) => p.kwargs)) } },
      structure: name,
    };
  });
}

/** Smaller counts to try for a depth of `n`: n − 1, ⌈n/2⌉ and 1 (distinct, below n). */
function fewer(n: number): number[] {
  return [...new Set([n - 1, Math.ceil(n / 2), 1])].filter((k) => k >= 1 && k < n).sort((a, b) => b - a);
}

/**
 * A YAML config file kept as a document, so every value can be traced back to its line:
 * errors say `exp.yaml:12: knowledge[1].kwargs.temperature must be > 0`. Parsed with the
 * YAML 1.2 core schema; no tag is honoured (a tag such as `!!js/function` or `!include` is
 * an error), so nothing in a config can execute code. `--set path=value` overrides are
 * applied to the document, and errors about them name the override instead of a line.
 */
import {
  isAlias,
  isMap,
  isPair,
  isScalar,
  isSeq,
  LineCounter,
  parseDocument,
  visit,
  type Document,
  type Node,
} from 'yaml';
import { UserError } from '../errors.js';

/** A path into a config: keys and list indices, e.g. `['knowledge', 1, 'kwargs', 'temperature']`. */
export type ConfigPath = ReadonlyArray<string | number>;

/** Tags that only restate what the core schema already infers. Everything else is refused. */
const PLAIN_TAGS = new Set(['str', 'int', 'float', 'bool', 'null', 'seq', 'map'].map((t) => `tag:yaml.org,2002:${t}`));

export interface ConfigSource {
  /** The file as named in messages (as the user gave it). */
  file: string;
  doc: Document.Parsed;
  lineCounter: LineCounter;
  /** `formatPath(path)` of every `--set` override → the override as typed. */
  overrides: Map<string, string>;
}

/** `knowledge[1].kwargs.temperature`; the empty path is `(top level)`. */
export function formatPath(path: ConfigPath): string {
  let out = '';
  for (const seg of path) out += typeof seg === 'number' ? `[${seg}]` : out === '' ? seg : `.${seg}`;
  return out === '' ? '(top level)' : out;
}

/** Parses `a.b[0].c` (or `a.b.0.c`) into a path. */
export function parseConfigPath(text: string): ConfigPath {
  const path: Array<string | number> = [];
  const re = /([^.[\]]+)|\[(\d+)\]/g;
  let consumed = '';
  for (const m of text.matchAll(re)) {
    if (m[2] !== undefined) path.push(Number(m[2]));
    else path.push(/^\d+$/.test(m[1]!) ? Number(m[1]) : m[1]!);
    consumed += m[0];
  }
  if (path.length === 0 || consumed.length !== text.replace(/\./g, '').length) {
    throw new UserError(`--set ${text}: not a config path; write it like knowledge[0].kwargs.temperature or epochs`);
  }
  return path;
}

function firstLine(text: string): string {
  return text.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '');
}

function refuseTags(doc: Document, where: (node: Node) => string): void {
  visit(doc, {
    Node(_key, node) {
      const tag = (node as { tag?: string }).tag;
      if (tag !== undefined && !PLAIN_TAGS.has(tag)) {
        throw new UserError(
          `${where(node)}: YAML tag \`${tag.replace('tag:yaml.org,2002:', '!!')}\` is not allowed; configs are plain data (remove the tag)`,
        );
      }
    },
  });
}

/** Parses YAML text into a located source; syntax errors and tags are one-line `UserError`s. */
export function parseConfigSource({ text, file }: { text: string; file: string }): ConfigSource {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { schema: 'core', lineCounter, prettyErrors: true, uniqueKeys: true, merge: false });
  const error = doc.errors[0];
  if (error) {
    const line = error.linePos?.[0]?.line ?? 1;
    throw new UserError(`${file}:${line}: YAML syntax error: ${firstLine(error.message)}`);
  }
  refuseTags(doc, (node) => `${file}:${node.range ? lineCounter.linePos(node.range[0]).line : 1}`);
  if (doc.contents !== null && !isMap(doc.contents)) {
    throw new UserError(
      `${file}:1: an experiment is a mapping of keys (name, data, students, …), not a ${isSeq(doc.contents) ? 'list' : 'single value'}`,
    );
  }
  return { file, doc, lineCounter, overrides: new Map() };
}

/**
 * Applies `--set path=value` overrides; values are YAML (`3`, `1e-3`, `true`, `[1, 2]`,
 * `{path: t.json}`), with the same no-tags rule.
 */
export function applyOverrides(source: ConfigSource, sets: readonly string[]): void {
  for (const set of sets) {
    const eq = set.indexOf('=');
    if (eq <= 0) throw new UserError(`--set ${set}: expected path=value, e.g. --set epochs=3`);
    const path = parseConfigPath(set.slice(0, eq).trim());
    const valueDoc = parseDocument(set.slice(eq + 1), { schema: 'core', uniqueKeys: true, merge: false });
    if (valueDoc.errors[0])
      throw new UserError(`--set ${set}: the value is not valid YAML: ${firstLine(valueDoc.errors[0].message)}`);
    refuseTags(valueDoc, () => `--set ${set}`);
    try {
      if (source.doc.contents === null) source.doc.contents = source.doc.createNode({}) as never;
      source.doc.setIn(path as unknown[], source.doc.createNode(valueDoc.toJS()));
    } catch {
      throw new UserError(
        `--set ${set}: ${formatPath(path.slice(0, -1))} is not a mapping or list that can hold \`${String(path[path.length - 1])}\``,
      );
    }
    source.overrides.set(formatPath(path), `--set ${set}`);
  }
}

/** Sets one value (already typed) at `path`; errors about it name `label`, e.g. `--out DIR`. */
export function setValue(source: ConfigSource, path: ConfigPath, value: unknown, label: string): void {
  if (source.doc.contents === null) source.doc.contents = source.doc.createNode({}) as never;
  source.doc.setIn(path as unknown[], source.doc.createNode(value));
  source.overrides.set(formatPath(path), label);
}

/** The config as plain data (aliases expanded, at most 100 of them). */
export function sourceData(source: ConfigSource): unknown {
  try {
    return source.doc.toJS({ maxAliasCount: 100 }) ?? {};
  } catch (e) {
    throw new UserError(`${source.file}: ${firstLine(String((e as Error).message))}`);
  }
}

/**
 * Where `path` comes from: `file:line` of its key (or of its nearest existing parent when it
 * is missing), or `--set …` when an override set it or one of its parents.
 */
export function locate(source: ConfigSource, path: ConfigPath): string {
  for (let n = path.length; n >= 1; n--) {
    const set = source.overrides.get(formatPath(path.slice(0, n)));
    if (set !== undefined) return set;
  }
  const { doc, lineCounter } = source;
  const lineOf = (node: { range?: [number, number, number] | null } | null | undefined) =>
    node?.range ? lineCounter.linePos(node.range[0]).line : undefined;
  let node: unknown = doc.contents;
  let line = lineOf(doc.contents as Node) ?? 1;
  for (const seg of path) {
    if (isAlias(node)) node = node.resolve(doc);
    if (isMap(node)) {
      const pair = node.items.find((p) => isPair(p) && isScalar(p.key) && String(p.key.value) === String(seg));
      if (!pair) break;
      line = lineOf(pair.key as Node) ?? line;
      node = pair.value;
    } else if (isSeq(node) && typeof seg === 'number') {
      const item = node.items[seg];
      if (item === undefined) break;
      line = lineOf(item as Node) ?? line;
      node = item;
    } else {
      break;
    }
  }
  return `${source.file}:${line}`;
}

/** A `UserError` located at `path`: `file:line: message`. */
export function configError(source: ConfigSource, path: ConfigPath, message: string): UserError {
  return new UserError(`${locate(source, path)}: ${message}`);
}

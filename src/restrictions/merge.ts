/**
 * The merged filesystem, as a container would see it, computed from layer facts alone: whiteouts
 * and opaque directories remove lower entries, an upper entry replaces a lower one at the same
 * path, a non-directory replacing a directory removes its tree. What a lower layer had and an upper
 * one removed is kept apart as `hidden`: not in the running filesystem, but still shipped.
 */
import type { FileFact, LayerFacts } from './layer-facts.js';

export interface PlacedFact extends FileFact {
  /** Index of the layer holding it (0 = bottom). */
  layer: number;
  digest: string;
}

export interface HiddenFact extends PlacedFact {
  /** The layer that deleted or replaced it. */
  hiddenBy: number;
}

export interface MergedFiles {
  visible: PlacedFact[];
  hidden: HiddenFact[];
  /** The topmost visible content of each captured file. */
  captured: LayerFacts['captured'];
}

export function mergeLayers(layers: LayerFacts[]): MergedFiles {
  const live = new Map<string, PlacedFact>();
  /** How many live notable entries sit under each directory: tree removals only scan when needed. */
  const under = new Map<string, number>();
  const hidden: HiddenFact[] = [];
  const captured = new Map<string, { layer: number; text: string }>();

  const ancestors = (path: string): string[] => {
    const out: string[] = [];
    for (let i = path.indexOf('/'); i !== -1; i = path.indexOf('/', i + 1)) out.push(path.slice(0, i));
    return out;
  };
  const add = (f: PlacedFact): void => {
    live.set(f.path, f);
    for (const a of ancestors(f.path)) under.set(a, (under.get(a) ?? 0) + 1);
  };
  const remove = (path: string, by: number): void => {
    const f = live.get(path);
    if (!f) return;
    live.delete(path);
    for (const a of ancestors(path)) under.set(a, under.get(a)! - 1);
    hidden.push({ ...f, hiddenBy: by });
  };
  /** Whether `p` lies under `dir` ('' is the root: an opaque marker at the top empties everything below). */
  const within = (p: string, dir: string): boolean => dir === '' || p.startsWith(`${dir}/`);
  const removeTree = (dir: string, by: number, self: boolean): void => {
    if (self) remove(dir, by);
    if (dir !== '' && !under.get(dir)) return;
    for (const p of [...live.keys()]) if (within(p, dir)) remove(p, by);
  };
  const dropCaptured = (path: string, tree: boolean): void => {
    for (const p of [...captured.keys()]) if (p === path || (tree && within(p, path))) captured.delete(p);
  };

  layers.forEach((facts, i) => {
    // A layer's whiteouts apply to the layers below it, before its own entries.
    for (const d of facts.opaque) {
      removeTree(d, i, false);
      dropCaptured(d, true);
    }
    for (const w of facts.whiteouts) {
      removeTree(w, i, true);
      dropCaptured(w, true);
    }
    for (const raw of facts.paths) {
      const isDir = raw.endsWith('/');
      const path = isDir ? raw.slice(0, -1) : raw;
      if (live.has(path)) remove(path, i);
      if (!isDir) removeTree(path, i, false);
      dropCaptured(path, !isDir);
    }
    for (const f of facts.notable) add({ ...f, layer: i, digest: facts.digest });
    for (const [p, text] of Object.entries(facts.captured)) captured.set(p, { layer: i, text });
  });
  return {
    visible: [...live.values()].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0)),
    hidden,
    captured: Object.fromEntries([...captured].map(([p, c]) => [p, c.text])),
  };
}

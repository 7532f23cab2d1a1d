/**
 * The rules that make a sequence of entries one well-formed layer, whatever reads it: Slipway's
 * extraction, the restrictions' layer facts, umoci, containerd, GNU tar, Python's tarfile. Each
 * rule closes a case where those readers would build different trees from the same bytes, or
 * where a path would land outside the target. The reader (reader.ts) applies them to every entry,
 * so `check`, the gate, admission, `image copy`, `slug pull` and unpack all judge the same thing.
 */
import { UnsafeArchiveError } from '../../errors.js';
import type { EntryType, TarHeader } from './header.js';
import { whiteoutOf } from './whiteout.js';

/** What a later hardlink must agree with. */
interface Placed {
  type: EntryType;
  mode: number;
  uid: number;
  gid: number;
  xattrs?: Record<string, Buffer>;
}

function sameXattrs(a: Record<string, Buffer> | undefined, b: Record<string, Buffer> | undefined): boolean {
  const ka = Object.keys(a ?? {}).sort();
  const kb = Object.keys(b ?? {}).sort();
  return ka.length === kb.length && ka.every((k, i) => k === kb[i] && a![k]!.equals(b![k]!));
}

export class LayerRules {
  /** Every path placed so far (whiteouts excluded), with what a hardlink to it must repeat. */
  private readonly placed = new Map<string, Placed>();
  /** Every directory some placed path lies under, declared or not. */
  private readonly parents = new Set<string>(['']);
  private readonly whiteouts = new Set<string>();
  private readonly symlinks = new Set<string>();

  constructor(private readonly where: string) {}

  /** Checks one entry (path already normalized) against the ones before it; throws if the layer is not well-formed. */
  accept(h: TarHeader): void {
    const label = `${this.where}: entry "${h.path}"`;
    if (this.placed.has(h.path) || this.whiteouts.has(h.path)) {
      throw new UnsafeArchiveError(`${label}: the path appears twice in one layer`, 'a layer must not contain duplicate paths: readers disagree on which one wins');
    }
    const parts = h.path.split('/');
    for (let i = 1; i < parts.length; i++) {
      const parent = parts.slice(0, i).join('/');
      if (this.symlinks.has(parent)) {
        throw new UnsafeArchiveError(`${label}: would be written through the symlink "${parent}" declared earlier in the archive`, 'the archive is refused');
      }
      const p = this.placed.get(parent);
      if (p !== undefined && p.type !== 'dir') {
        throw new UnsafeArchiveError(`${label}: its parent "${parent}" is a ${p.type} earlier in the layer`, 'readers disagree on whether the parent is replaced; the archive is refused');
      }
    }

    const wo = whiteoutOf(h.path, this.where);
    if (wo !== undefined) {
      if (h.type !== 'file' || h.size !== 0) {
        throw new UnsafeArchiveError(`${label}: a whiteout must be an empty regular file, not a ${h.type}${h.size ? ` of ${h.size} bytes` : ''}`, 'the archive is refused');
      }
      if (wo.kind === 'delete' && (this.placed.has(wo.victim) || this.parents.has(wo.victim))) {
        throw new UnsafeArchiveError(
          `${label}: deletes "${wo.victim}", which this same layer put in place before it`,
          'a whiteout applies to lower layers only, but Docker and containerd delete the earlier entry too; the archive is refused',
        );
      }
      this.whiteouts.add(h.path);
      this.addParents(parts);
      return;
    }

    if (h.type === 'symlink' && !h.linkTarget) throw new UnsafeArchiveError(`${label}: symlink without a target`);
    if (h.type === 'hardlink') this.checkHardlink(h, label);
    const placed: Placed = { type: h.type, mode: h.mode, uid: h.uid, gid: h.gid, ...(h.xattrs && { xattrs: h.xattrs }) };
    this.placed.set(h.path, h.type === 'hardlink' ? this.placed.get(h.linkTarget!)! : placed);
    if (h.type === 'symlink') this.symlinks.add(h.path);
    this.addParents(parts);
  }

  private addParents(parts: string[]): void {
    for (let i = parts.length - 1; i >= 1; i--) {
      const parent = parts.slice(0, i).join('/');
      if (this.parents.has(parent)) return;
      this.parents.add(parent);
    }
  }

  /**
   * A hardlink names an earlier regular file (or device) of this same layer and repeats its mode
   * and owner (and its xattrs, if it carries any): Slipway and GNU tar give the link its target's metadata, Python's tarfile
   * and Docker apply the link header's to the shared inode, and a target in a lower layer exists
   * for umoci but not for a reader of the layer alone.
   */
  private checkHardlink(h: TarHeader, label: string): void {
    const target = h.linkTarget ?? '';
    if (target === '') throw new UnsafeArchiveError(`${label}: hardlink without a target`);
    const tparts = target.split('/');
    for (let i = 1; i <= tparts.length; i++) {
      if (this.symlinks.has(tparts.slice(0, i).join('/'))) {
        throw new UnsafeArchiveError(`${label}: hardlink target "${target}" goes through a symlink`, 'the archive is refused');
      }
    }
    const t = this.placed.get(target);
    if (t === undefined) {
      throw new UnsafeArchiveError(
        `${label}: hardlink target "${target}" is not an earlier entry of this layer`,
        'a hardlink must follow the file it links to in the same layer; the archive is refused',
      );
    }
    if (t.type === 'dir' || t.type === 'symlink') throw new UnsafeArchiveError(`${label}: hardlink target "${target}" is a ${t.type}`, 'the archive is refused');
    if (t.mode !== h.mode || t.uid !== h.uid || t.gid !== h.gid || (h.xattrs !== undefined && !sameXattrs(t.xattrs, h.xattrs))) {
      const fmt = (x: { mode: number; uid: number; gid: number }): string => `mode ${x.mode.toString(8).padStart(4, '0')}, owner ${x.uid}:${x.gid}`;
      throw new UnsafeArchiveError(
        `${label}: hardlink says ${fmt(h)}${h.xattrs ? ' with xattrs' : ''} but its target "${target}" has ${fmt(t)}${t.xattrs ? ' with xattrs' : ''}`,
        'extractors disagree on which of the two the shared file gets; write the link with its target\'s mode, owner and xattrs',
      );
    }
  }
}

/**
 * The one evaluator behind every enforcement point (check, build, export, run, the gate): a
 * Restrictions document and a Subject in, a verdict and findings out. Pure: reading layers and
 * resolving stacks happen before, in subject.ts.
 */
import { RULE_IDS, type Restrictions, type RuleId, type RuleParams, type Waiver } from './document.js';
import { baseLayerCount, RULES, type RawFinding, type RuleContext, type Subject } from './rules.js';

export type FindingSeverity = 'deny' | 'warn' | 'info';
export type Verdict = 'allow' | 'warn' | 'deny';

export interface Finding {
  rule: RuleId;
  severity: FindingSeverity;
  /** Relative to the root, no leading slash. */
  path?: string;
  layer?: number;
  digest?: string;
  message: string;
}

export interface Report {
  restrictions: string;
  target: string;
  kind: Subject['kind'];
  verdict: Verdict;
  findings: Finding[];
}

function waiverFor(waivers: Waiver[], f: Finding, today: string): { waiver?: Waiver; expired?: Waiver } {
  for (const w of waivers) {
    if (w.rule !== f.rule) continue;
    if (w.path !== undefined) {
      const p = w.path.replace(/^\/+/, '');
      const covers = p.endsWith('/**') ? f.path !== undefined && (f.path === p.slice(0, -3) || f.path.startsWith(p.slice(0, -2))) : f.path === p;
      if (!covers) continue;
    }
    if (w.digest !== undefined && w.digest !== f.digest) continue;
    if (w.path === undefined && w.digest === undefined) continue;
    return w.expires < today ? { expired: w } : { waiver: w };
  }
  return {};
}

const SEVERITY_ORDER: Record<FindingSeverity, number> = { deny: 0, warn: 1, info: 2 };

/** deny if any finding denies, warn if any warns, else allow (info never counts). */
export function verdictOf(findings: Finding[]): Verdict {
  return findings.some((f) => f.severity === 'deny') ? 'deny' : findings.some((f) => f.severity === 'warn') ? 'warn' : 'allow';
}

export function evaluate(doc: Restrictions, subject: Subject, ctx: RuleContext, now = new Date()): Report {
  const findings: Finding[] = [];
  const rules = doc.rules as Partial<Record<RuleId, RuleParams<RuleId>>>;
  const base = baseLayerCount(subject, ctx);
  for (const id of RULE_IDS) {
    const params = rules[id];
    if (!params) continue;
    const def = RULES[id] as { files?: (p: unknown, f: unknown) => string | undefined; check?: (p: unknown, s: Subject, c: RuleContext) => RawFinding[] };
    const push = (raw: RawFinding, severity: FindingSeverity): void => {
      findings.push({ rule: id, severity, ...(raw.path !== undefined && { path: raw.path }), ...(raw.layer !== undefined && { layer: raw.layer }), ...(raw.digest !== undefined && { digest: raw.digest }), message: raw.message });
    };
    if (def.files && subject.files) {
      const from = (params as { scope?: string }).scope === 'app' ? base : 0;
      for (const f of subject.files.visible) {
        if (f.layer < from) continue;
        const msg = def.files(params, f);
        if (msg) push({ message: msg, path: f.path, layer: f.layer, digest: f.digest }, params.severity);
      }
      for (const f of subject.files.hidden) {
        if (f.layer < from) continue;
        const msg = def.files(params, f);
        if (msg) push({ message: `hidden-in-lower-layer: ${msg}; removed by layer ${f.hiddenBy}, but its bytes still ship in layer ${f.layer}`, path: f.path, layer: f.layer, digest: f.digest }, 'info');
      }
    }
    if (def.check) for (const raw of def.check(params, subject, ctx)) push(raw, params.severity);
  }
  const today = now.toISOString().slice(0, 10);
  const waivers = doc.waivers ?? [];
  for (const f of findings) {
    if (f.severity === 'info') continue;
    const { waiver, expired } = waiverFor(waivers, f, today);
    if (waiver) {
      f.message = `${f.message} (waived until ${waiver.expires}: ${waiver.reason})`;
      f.severity = 'info';
    } else if (expired) {
      f.message = `${f.message} (a waiver for this expired on ${expired.expires})`;
    }
  }
  findings.sort((a, b) => SEVERITY_ORDER[a.severity] - SEVERITY_ORDER[b.severity] || RULE_IDS.indexOf(a.rule) - RULE_IDS.indexOf(b.rule) || (a.path ?? '').localeCompare(b.path ?? ''));
  return { restrictions: doc.metadata.name, target: subject.name, kind: subject.kind, verdict: verdictOf(findings), findings };
}

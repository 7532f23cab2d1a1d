/** How build, export and run enforce a Restrictions document: judge, then refuse on deny. */
import { SlipwayError } from '../errors.js';
import type { Db } from '../store/db.js';
import type { Restrictions } from './document.js';
import { evaluate, type Report } from './evaluate.js';
import { reportText } from './report.js';
import type { Subject } from './rules.js';
import { resolveAllowedBases } from './subject.js';

/** Judges a subject with this host's stacks resolved for base.allowed. */
export async function judge(doc: Restrictions, subject: Subject, db: Db | undefined, home: string): Promise<Report> {
  return evaluate(doc, subject, { allowedBases: await resolveAllowedBases(doc, db, home) });
}

/** Throws (exit 1) with the grouped findings when the report denies; warnings are shown and pass. */
export function refuseIfDenied(report: Report, action: string, warn: (text: string) => void): void {
  if (report.verdict === 'warn') warn(reportText(report));
  if (report.verdict !== 'deny') return;
  throw new SlipwayError(`${action} refused by restrictions ${report.restrictions}:\n${reportText(report).trimEnd()}`, {
    hint: 'fix the findings, or ask the provider for a scoped waiver (rule, path or digest, reason, expiry); slipway check shows the same report',
  });
}

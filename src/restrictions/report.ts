/** A Report as text for people (grouped by rule, with counts and the fix), JSON, or SARIF 2.1.0. */
import { RULE_IDS, RuleSchemas } from './document.js';
import type { Finding, Report } from './evaluate.js';
import { RULES } from './rules.js';

const MAX_PER_RULE = 20;

export function reportText(r: Report): string {
  const counts = { deny: 0, warn: 0, info: 0 };
  for (const f of r.findings) counts[f.severity]++;
  const lines = [`${r.target} (${r.kind}) against ${r.restrictions}: ${r.verdict.toUpperCase()}`];
  const byRule = new Map<string, Finding[]>();
  for (const f of r.findings) byRule.set(f.rule, [...(byRule.get(f.rule) ?? []), f]);
  for (const [rule, fs] of byRule) {
    const sev = fs.some((f) => f.severity === 'deny') ? 'deny' : fs.some((f) => f.severity === 'warn') ? 'warn' : 'info';
    lines.push('', `${sev.padEnd(4)}  ${rule}: ${fs.length} finding${fs.length === 1 ? '' : 's'}`);
    for (const f of fs.slice(0, MAX_PER_RULE)) {
      const where = [f.path !== undefined ? `/${f.path}` : undefined, f.layer !== undefined ? `layer ${f.layer}` : undefined].filter(Boolean).join(', ');
      lines.push(`  ${f.severity === sev ? '' : `[${f.severity}] `}${where ? `${where}: ` : ''}${f.message}`);
    }
    if (fs.length > MAX_PER_RULE) lines.push(`  ... and ${fs.length - MAX_PER_RULE} more (--format json lists all)`);
    if (sev !== 'info') lines.push(`  fix: ${RULES[rule as keyof typeof RULES].fix}`);
  }
  lines.push('', `${counts.deny} denied, ${counts.warn} warnings, ${counts.info} notes`);
  return `${lines.join('\n')}\n`;
}

export function reportJson(r: Report): object {
  return { verdict: r.verdict, target: r.target, kind: r.kind, restrictions: r.restrictions, findings: r.findings };
}

const SARIF_LEVEL = { deny: 'error', warn: 'warning', info: 'note' } as const;

export function reportSarif(r: Report, version: string): object {
  return {
    $schema: 'https://json.schemastore.org/sarif-2.1.0.json',
    version: '2.1.0',
    runs: [{
      tool: {
        driver: {
          name: 'slipway',
          version,
          informationUri: 'https://slipway.dev/docs/restrictions',
          rules: RULE_IDS.map((id) => ({
            id,
            shortDescription: { text: RuleSchemas[id].description ?? id },
            fullDescription: { text: RULES[id].why },
            help: { text: RULES[id].fix },
          })),
        },
      },
      properties: { verdict: r.verdict, restrictions: r.restrictions, target: r.target },
      results: r.findings.map((f) => ({
        ruleId: f.rule,
        ruleIndex: RULE_IDS.indexOf(f.rule),
        level: SARIF_LEVEL[f.severity],
        message: { text: f.message },
        ...(f.path !== undefined && {
          locations: [{ physicalLocation: { artifactLocation: { uri: encodeURI(f.path), ...(f.digest && { uriBaseId: 'LAYER' }) } } }],
        }),
        ...((f.layer !== undefined || f.digest) && { properties: { ...(f.layer !== undefined && { layer: f.layer }), ...(f.digest && { digest: f.digest }) } }),
      })),
    }],
  };
}

import type { Command } from 'commander';
import { SlipwayError, UsageError } from '../errors.js';
import { RegistryGate } from '../gate/gate.js';
import { resolveAllowedBases } from '../restrictions/subject.js';
import { parseCredsFlag } from '../transport/registry/auth.js';
import { restrictionsFor } from './check.js';
import type { Globals } from './main.js';
import { withDb } from './shared.js';

export function registerGateCommand(program: Command, globals: () => Globals): void {
  program
    .command('gate')
    .description('a reverse proxy in front of a registry that refuses pushes the restrictions deny')
    .requiredOption('--upstream <url>', 'the registry, e.g. http://127.0.0.1:5000')
    .option('--listen <addr>', 'HOST:PORT to listen on', '127.0.0.1:5001')
    .option('-r, --restrictions <file|preset>', 'the document (default: the host\'s)')
    .option('--token <token>', 'require this token from clients (Bearer, or as the Basic password)')
    .option('--upstream-creds <user:password>', 'credentials the gate uses upstream')
    .action(async (o: { upstream: string; listen: string; restrictions?: string; token?: string; upstreamCreds?: string }) => {
      const g = globals();
      let upstream: URL;
      try {
        upstream = new URL(o.upstream);
      } catch {
        throw new UsageError(`--upstream ${o.upstream}: not a URL`, 'e.g. http://127.0.0.1:5000');
      }
      const m = /^(.*):(\d+)$/.exec(o.listen);
      if (!m) throw new UsageError(`--listen ${o.listen}: use HOST:PORT`);
      const doc = restrictionsFor(g.home, o.restrictions);
      if (!doc) throw new SlipwayError('no restrictions for the gate', { hint: 'give --restrictions FILE|PRESET or set a host default' });
      const allowedBases = await withDb(g, (db) => resolveAllowedBases(doc, db, g.home));
      const gate = new RegistryGate({
        upstream,
        restrictions: doc,
        home: g.home,
        allowedBases,
        ...(o.token && { token: o.token }),
        ...(o.upstreamCreds && { upstreamRegistry: { credentials: parseCredsFlag(o.upstreamCreds) } }),
        log: (line) => process.stderr.write(`${new Date().toISOString()} slipway[gate]: ${line}\n`),
      });
      const port = await gate.listen(Number(m[2]), m[1]);
      process.stdout.write(g.json ? `${JSON.stringify({ listening: `${m[1]}:${port}`, upstream: upstream.origin, restrictions: doc.metadata.name })}\n` : `gate on http://${m[1]}:${port} → ${upstream.origin}, judging pushes with ${doc.metadata.name}\n`);
      const stop = (): void => void gate.close().then(() => process.exit(0));
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
      await new Promise(() => undefined);
    });
}

import type { Command } from 'commander';
import { UsageError } from '../errors.js';
import { RegistryGate } from '../gate/gate.js';
import { parseCredsFlag } from '../transport/registry/auth.js';
import type { Globals } from './main.js';
import { enforcedRestrictions, listenAddress, print, serveUntilSignalled, serverLog } from './shared.js';

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
      const at = listenAddress(o.listen);
      const { doc, allowedBases } = await enforcedRestrictions(g, o.restrictions, 'gate');
      const gate = new RegistryGate({
        upstream,
        restrictions: doc,
        home: g.home,
        allowedBases,
        ...(o.token && { token: o.token }),
        ...(o.upstreamCreds && { upstreamRegistry: { credentials: parseCredsFlag(o.upstreamCreds) } }),
        log: serverLog('gate'),
      });
      const port = await gate.listen(at.port, at.host);
      print(g, { listening: `${at.host}:${port}`, upstream: upstream.origin, restrictions: doc.metadata.name }, `gate on http://${at.host}:${port} → ${upstream.origin}, judging pushes with ${doc.metadata.name}`);
      await serveUntilSignalled(() => gate.close());
    });
}

import type { Command } from 'commander';
import { SlipwayError, UsageError } from '../errors.js';
import { AdmissionWebhook } from '../admission/server.js';
import { resolveAllowedBases } from '../restrictions/subject.js';
import { restrictionsFor } from './check.js';
import type { Globals } from './main.js';
import { registryOptions, withDb } from './shared.js';

export function registerAdmissionCommand(program: Command, globals: () => Globals): void {
  program
    .command('admission')
    .description('a Kubernetes validating admission webhook (POST /validate) judging pods with the restrictions')
    .option('--listen <addr>', 'HOST:PORT', '0.0.0.0:8443')
    .requiredOption('--tls-cert <file>', 'PEM certificate the API server trusts')
    .requiredOption('--tls-key <file>', 'its PEM key')
    .option('-r, --restrictions <file|preset>', 'the document (default: the host\'s)')
    .option('--require-digests', 'deny images not pinned by digest')
    .option('--creds <user:password>', 'registry credentials for judging images')
    .option('--insecure', 'allow plain HTTP to non-loopback registries')
    .action(async (o: { listen: string; tlsCert: string; tlsKey: string; restrictions?: string; requireDigests?: boolean; creds?: string; insecure?: boolean }) => {
      const g = globals();
      const m = /^(.*):(\d+)$/.exec(o.listen);
      if (!m) throw new UsageError(`--listen ${o.listen}: use HOST:PORT`);
      const doc = restrictionsFor(g.home, o.restrictions);
      if (!doc) throw new SlipwayError('no restrictions for the webhook', { hint: 'give --restrictions FILE|PRESET or set a host default' });
      const allowedBases = await withDb(g, (db) => resolveAllowedBases(doc, db, g.home));
      const hook = new AdmissionWebhook({
        restrictions: doc,
        home: g.home,
        tlsCert: o.tlsCert,
        tlsKey: o.tlsKey,
        allowedBases,
        registry: registryOptions(o),
        requireDigests: o.requireDigests === true,
        log: (line) => process.stderr.write(`${new Date().toISOString()} slipway[admission]: ${line}\n`),
      });
      const port = await hook.listen(Number(m[2]), m[1]);
      process.stdout.write(g.json ? `${JSON.stringify({ listening: `${m[1]}:${port}`, restrictions: doc.metadata.name })}\n` : `admission webhook on https://${m[1]}:${port}/validate, judging with ${doc.metadata.name}\n`);
      const stop = (): void => void hook.close().then(() => process.exit(0));
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
      await new Promise(() => undefined);
    });
}

import type { Command } from 'commander';
import { AdmissionWebhook } from '../admission/server.js';
import type { Globals } from './main.js';
import { enforcedRestrictions, listenAddress, print, registryOptions, serveUntilSignalled, serverLog } from './shared.js';

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
      const at = listenAddress(o.listen);
      const { doc, allowedBases } = await enforcedRestrictions(g, o.restrictions, 'webhook');
      const hook = new AdmissionWebhook({
        restrictions: doc,
        home: g.home,
        tlsCert: o.tlsCert,
        tlsKey: o.tlsKey,
        allowedBases,
        registry: registryOptions(o),
        requireDigests: o.requireDigests === true,
        log: serverLog('admission'),
      });
      const port = await hook.listen(at.port, at.host);
      print(g, { listening: `${at.host}:${port}`, restrictions: doc.metadata.name }, `admission webhook on https://${at.host}:${port}/validate, judging with ${doc.metadata.name}`);
      await serveUntilSignalled(() => hook.close());
    });
}

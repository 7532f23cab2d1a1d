/** Starting and stopping the project's HTTP servers (router, gate, admission webhook) the same way. */
import type { Server as HttpServer } from 'node:http';
import type { Server as HttpsServer } from 'node:https';

type Server = HttpServer | HttpsServer;

/** Listens and resolves with the port actually bound (port 0 picks a free one). */
export function listenOn(server: Server, port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      const a = server.address();
      resolve(typeof a === 'object' && a ? a.port : port);
    });
  });
}

/** Drops open connections (kept-alive ones too) and waits until the server is closed. */
export function closeServer(server: Server | undefined): Promise<void> {
  if (!server) return Promise.resolve();
  server.closeAllConnections();
  return new Promise((r) => server.close(() => r()));
}

/** Starting and stopping the project's HTTP servers (router, gate, admission webhook) the same way, and reading bounded bodies. */
import type { IncomingMessage, Server as HttpServer } from 'node:http';
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

/**
 * A request body of at most `max` bytes (a declared Content-Length over it is refused before any
 * byte is read), or undefined when it is bigger. What is past the limit is never kept: node reads
 * and drops the rest once the answer is sent, so a huge body costs time, not memory.
 */
export function readCapped(req: IncomingMessage, max: number): Promise<Buffer | undefined> {
  if (Number(req.headers['content-length'] ?? 0) > max) return Promise.resolve(undefined);
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (c: Buffer): void => {
      size += c.length;
      if (size <= max) return void chunks.push(c);
      chunks.length = 0;
      req.off('data', onData);
      req.off('end', onEnd);
      // Still flowing with no listener: the rest is read and dropped.
      resolve(undefined);
    };
    const onEnd = (): void => resolve(Buffer.concat(chunks, size));
    req.on('data', onData);
    req.once('end', onEnd);
    req.once('error', reject);
  });
}

const topics = new Set((process.env.SLIPWAY_DEBUG ?? '').split(',').filter(Boolean));
const started = performance.now();

/** `SLIPWAY_DEBUG=http` (or `all`) traces a topic on stderr with milliseconds since start. */
export function debug(topic: string, message: () => string): void {
  if (!topics.has(topic) && !topics.has('all')) return;
  process.stderr.write(`[${(performance.now() - started).toFixed(1).padStart(7)} ms ${topic}] ${message()}\n`);
}

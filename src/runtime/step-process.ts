import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import type { StepResult } from '../buildpack/step.js';

/**
 * Spawns one build step (already wrapped by STEP_WRAPPER) and streams its output by line.
 * Its stdin is a pipe held open until the step ends: if slipway dies, the pipe closes and
 * the wrapper kills the step.
 */
export function spawnStep(cmd: string, args: string[], opts: { env: Record<string, string>; cwd?: string; onLine: (line: string) => void; captureStdout: boolean }): Promise<StepResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: opts.env, cwd: opts.cwd, stdio: ['pipe', 'pipe', 'pipe'], detached: true });
    let stdout = '';
    createInterface({ input: child.stdout }).on('line', (line) => {
      if (opts.captureStdout) stdout += `${line}\n`;
      else opts.onLine(line);
    });
    createInterface({ input: child.stderr }).on('line', opts.onLine);
    // Ctrl-C or SIGTERM to slipway ends the step's whole process group too.
    const stop = (): void => {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // already gone
      }
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      child.stdin.destroy();
      resolve({ code: code ?? (signal ? 128 + 9 : 1), stdout });
    });
  });
}

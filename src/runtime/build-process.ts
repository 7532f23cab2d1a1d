import { join } from 'node:path';
import { STEP_WRAPPER, type BuildRuntime, type StepRequest, type StepResult } from '../buildpack/step.js';
import { hostNetworkEnv } from './build-container.js';
import { spawnStep } from './step-process.js';

/** Build steps as plain processes on the host: the fallback where no container runtime works. */
export class ProcessBuildRuntime implements BuildRuntime {
  readonly name = 'process' as const;

  constructor(
    readonly appDir: string,
    readonly cacheDir: string,
    readonly envDir: string,
    private readonly buildpacksDir: string,
  ) {}

  buildpackDir(index: number): string {
    return join(this.buildpacksDir, String(index));
  }

  run(step: StepRequest): Promise<StepResult> {
    const script = join(this.buildpackDir(step.buildpack), 'bin', step.script);
    const args = step.script === 'compile' ? [this.appDir, this.cacheDir, this.envDir] : [this.appDir];
    return spawnStep('/bin/sh', ['-c', STEP_WRAPPER, 'slipway-step', script, ...args], {
      env: { ...hostNetworkEnv(), ...step.env, SLIPWAY_EXPORTS: step.exports.join(' ') },
      cwd: this.appDir,
      onLine: step.onLine,
      captureStdout: step.captureStdout,
    });
  }

  async close(): Promise<void> {}
}

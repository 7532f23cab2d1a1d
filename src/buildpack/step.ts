/**
 * Where buildpack steps run. The build orchestrator only knows this interface; the edge
 * picks the implementation (a runc build container on the stack, or plain processes).
 */
export interface StepResult {
  code: number;
  /** Everything the step wrote to stdout (detect's name, release's YAML). */
  stdout: string;
}

export interface StepRequest {
  /** Index of the buildpack, as mounted for this build. */
  buildpack: number;
  script: 'detect' | 'compile' | 'release';
  env: Record<string, string>;
  /** Export files of earlier buildpacks, sourced before the script runs. */
  exports: string[];
  /** Live output, line by line (stdout only when `captureStdout` is false). */
  onLine: (line: string) => void;
  captureStdout: boolean;
}

export interface BuildRuntime {
  readonly name: 'container' | 'process';
  /** Paths as the scripts see them. */
  readonly appDir: string;
  readonly cacheDir: string;
  readonly envDir: string;
  buildpackDir(index: number): string;
  run(step: StepRequest): Promise<StepResult>;
  close(): Promise<void>;
}

/**
 * The shell every step runs under: sources earlier buildpacks' export files, runs the script,
 * and kills the whole step the moment its stdin closes, i.e. when slipway dies, so a killed
 * build never leaves a container or compiler running. (Background jobs of a script get
 * /dev/null as stdin, hence the watcher reads a saved copy on fd 3.)
 */
export const STEP_WRAPPER = `
exec 3<&0
for f in $SLIPWAY_EXPORTS; do [ -f "$f" ] && . "$f"; done
unset SLIPWAY_EXPORTS
"$@" </dev/null 3<&- &
step=$!
{ while read -r _ <&3; do :; done; kill -KILL 0; } &
wait $step
`;

import { Command, CommanderError } from 'commander';
import pkg from '../../package.json' with { type: 'json' };
import { errorMessage, SlipwayError } from '../errors.js';
import { slipwayHome } from '../home.js';
import { registerImageCommands } from './image.js';
import { registerStackCommands } from './stack.js';
import { registerAppCommands } from './apps.js';
import { registerSlugCommands } from './slug.js';
import { registerExportCommand } from './export.js';
import { registerRebaseCommand } from './rebase.js';
import { registerCheckCommands } from './check.js';
import { registerDynoCommands } from './dynos.js';
import { registerGateCommand } from './gate.js';
import { registerAdmissionCommand } from './admission.js';

export interface Globals {
  json: boolean;
  quiet: boolean;
  home: string;
}

/** Parses argv, runs one command, and turns every failure into a message and an exit code (0, 1, 2). */
export async function main(argv: string[]): Promise<number> {
  const program = new Command('slipway')
    .description('Ship apps, not containers: build slugs on shared stacks, release, restrict, rebase, run anywhere.')
    .version(pkg.version)
    .option('--json', 'machine-readable output on stdout')
    .option('-q, --quiet', 'no progress output')
    .option('--home <dir>', 'state directory (default $SLIPWAY_HOME or ~/.local/share/slipway)')
    .showHelpAfterError()
    .exitOverride();
  const globals = (): Globals => {
    const o = program.opts<{ json?: boolean; quiet?: boolean; home?: string }>();
    return { json: o.json === true, quiet: o.quiet === true, home: o.home ?? slipwayHome() };
  };
  registerImageCommands(program, globals);
  registerStackCommands(program, globals);
  registerAppCommands(program, globals);
  registerSlugCommands(program, globals);
  registerExportCommand(program, globals);
  registerRebaseCommand(program, globals);
  registerCheckCommands(program, globals);
  registerDynoCommands(program, globals);
  registerGateCommand(program, globals);
  registerAdmissionCommand(program, globals);
  for (const c of program.commands) c.exitOverride().showHelpAfterError();
  for (const c of program.commands.flatMap((c) => c.commands)) c.exitOverride();

  try {
    await program.parseAsync(argv);
    // A command may end in a verdict rather than an error (check's deny is exit 1).
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') return 0;
      return 2;
    }
    const json = process.argv.includes('--json');
    if (err instanceof SlipwayError) {
      if (json) process.stdout.write(`${JSON.stringify({ error: err.message, ...(err.hint && { hint: err.hint }) })}\n`);
      process.stderr.write(`error: ${err.message}\n${err.hint ? `hint: ${err.hint}\n` : ''}`);
      return err.exitCode;
    }
    const e = err as NodeJS.ErrnoException;
    process.stderr.write(`error: ${errorMessage(err)}\n`);
    if (process.env.SLIPWAY_DEBUG) process.stderr.write(`${e.stack ?? ''}\n`);
    else process.stderr.write('hint: SLIPWAY_DEBUG=all shows the stack and a trace\n');
    return 1;
  }
}

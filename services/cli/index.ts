/**
 * The `vcp` command: runs vcp's parts and talks to its API.
 */
import { type CommandSpec, UsageError, parse } from './args.ts';
import { clientCommands } from './client-commands.ts';
import { controlPlaneCommand, nodeCommand, simHostCommand, upCommand } from './run-commands.ts';

const commands: CommandSpec[] = [upCommand, controlPlaneCommand, simHostCommand, nodeCommand, ...clientCommands];

function usage(): string {
  const width = Math.max(...commands.map((c) => c.name.length));
  return [
    'vcp: an event-sourced control plane for virtual machines',
    '',
    'Usage: vcp <command> [options]     (vcp <command> --help for its options)',
    '',
    ...commands.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    '',
    'Client commands talk to VCP_URL (default http://127.0.0.1:8080).',
  ].join('\n');
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(`${usage()}\n`);
    return name === undefined ? 2 : 0;
  }
  const command = commands.find((c) => c.name === name);
  if (!command) {
    process.stderr.write(`vcp: unknown command "${name}" (vcp --help lists them)\n`);
    return 2;
  }
  try {
    const { values, positionals } = parse(command, rest);
    if (values.help) {
      process.stdout.write(`vcp ${command.name}: ${command.summary}\n\n${command.help}\n`);
      return 0;
    }
    return await command.run(values, positionals);
  } catch (error) {
    if (error instanceof UsageError) {
      process.stderr.write(`vcp ${command.name}: ${error.message}\n`);
      return 2;
    }
    process.stderr.write(`vcp ${command.name}: ${error instanceof Error ? error.message : String(error)}\n`);
    return 1;
  }
}

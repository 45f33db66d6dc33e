import { parseArgs } from 'node:util';
import type { Config } from '../config.ts';
import { parseSettings, SETTINGS, type SettingKey } from '../settings.ts';
import { resolveTaskModules } from '../tasks/task-modules.ts';
import { builtInTaskModules } from '../../workers/tasks/index.ts';

/** What the command line asks for. */
export type Command =
  | { kind: 'help'; text: string }
  | { kind: 'version' }
  | { kind: 'serve' | 'openapi'; config: Config; taskModules: URL[] };

/** A command line that cannot be run: the message says what to change. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

const COMMANDS = ['openapi'] as const;

/**
 * Reads the command line and the environment (a flag wins over its variable): which task
 * modules to load and every setting of the configuration table, each as `--flag` or
 * `VARIABLE`. A bad value throws a ConfigError naming the flag or variable it came from.
 */
export function parseCommandLine(argv: readonly string[], env: Record<string, string | undefined>, cwd = process.cwd()): Command {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      allowPositionals: true,
      strict: true,
      options: {
        ...Object.fromEntries(SETTINGS.map((setting) => [setting.flag, { type: 'string' as const }])),
        tasks: { type: 'string', multiple: true },
        'with-examples': { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean', short: 'v' },
      },
    });
  } catch (error) {
    throw new UsageError(`${(error as Error).message}\nSee taskstream --help.`);
  }
  const { values, positionals } = parsed;
  if (values.help) return { kind: 'help', text: helpText() };
  if (values.version) return { kind: 'version' };
  const [command = 'serve', ...extra] = positionals;
  if (command !== 'serve' && !(COMMANDS as readonly string[]).includes(command)) {
    throw new UsageError(`Unknown command "${command}"; the commands are: ${COMMANDS.join(', ')}.\nSee taskstream --help.`);
  }
  if (extra.length > 0) throw new UsageError(`Unexpected argument "${extra[0]}".\nSee taskstream --help.`);

  const settings: Partial<Record<SettingKey, string>> = {};
  const fromFlag = new Set<SettingKey>();
  for (const setting of SETTINGS) {
    const given = (values as Record<string, unknown>)[setting.flag] as string | string[] | undefined;
    // --tasks is repeatable: its values join as TASK_MODULES's list does.
    const flag = Array.isArray(given) ? given.join(',') : given;
    const variable = env[setting.env];
    if (flag !== undefined) {
      settings[setting.env] = flag;
      fromFlag.add(setting.env);
    } else if (variable?.trim()) {
      // A blank variable means "use the default", as in most shells' `VAR= cmd`.
      settings[setting.env] = variable;
    }
  }
  const flagOf = new Map(SETTINGS.map((setting) => [setting.env, `--${setting.flag}`]));
  const config = parseSettings(settings, (key) => (fromFlag.has(key) ? flagOf.get(key)! : key));

  const taskModules =
    config.taskModules.length === 0
      ? [...builtInTaskModules]
      : [...(values['with-examples'] ? builtInTaskModules : []), ...resolveTaskModules(config.taskModules, cwd)];
  return { kind: command as 'serve' | 'openapi', config, taskModules };
}

const shown = (value: unknown) => (value === undefined || value === '' ? 'none' : String(value));

/** `--help`: the commands, the task options, then every setting with its variable and default. */
export function helpText(): string {
  const settings = SETTINGS.filter((setting) => setting.env !== 'TASK_MODULES').map(
    (setting) =>
      `  --${setting.flag} <value>\n      ${setting.description}\n      env ${setting.env}, default ${shown(setting.defaultValue)}`,
  );
  return [
    'Usage: taskstream [openapi] [--tasks <file|directory>]... [--with-examples] [settings]',
    '',
    'Runs task types in a pool of worker threads and streams their progress over Server-Sent Events,',
    'with a dashboard at / and the API reference at /docs.',
    '',
    'Commands:',
    '  (none)     serve the API, the dashboard and the docs',
    '  openapi    write the OpenAPI spec of the loaded task types (YAML) to stdout',
    '',
    'Task types:',
    '  --tasks <file|directory>',
    '      A task module, or a directory whose .js, .mjs and .ts files are task modules (its',
    '      subdirectories are not read: shared code goes there); repeatable.',
    '      Each module default-exports defineTask(...) from taskstream/task. TypeScript needs no build.',
    '      env TASK_MODULES (comma-separated); default: the built-in examples (sample, primes, batch, csv_stats)',
    '  --with-examples',
    '      Load the built-in examples as well as the named modules',
    '',
    'Settings (a flag wins over its environment variable):',
    ...settings,
    '',
    '  -h, --help       this text',
    '  -v, --version    the version',
    '',
  ].join('\n');
}

import type { z } from 'zod';
import { ConfigError, ConfigSchema, EnvSchema, type Config } from './config.ts';

/** A setting's name in the environment: `MAX_WORKERS`. */
export type SettingKey = keyof typeof EnvSchema.shape;

type Pascal<S extends string> = S extends `${infer Head}_${infer Tail}`
  ? `${Capitalize<Lowercase<Head>>}${Pascal<Tail>}`
  : Capitalize<Lowercase<S>>;
/** `MAX_WORKERS` → `maxWorkers`. */
type Camel<S extends string> = S extends `${infer Head}_${infer Tail}` ? `${Lowercase<Head>}${Pascal<Tail>}` : Lowercase<S>;

/**
 * Every setting as a library option (`maxWorkers`), typed from its schema; all optional.
 * TASK_MODULES is not among them: the library takes `tasks`, which may also be URLs.
 */
export type SettingOptions = {
  [K in Exclude<SettingKey, 'TASK_MODULES'> as Camel<K>]?: z.output<(typeof EnvSchema.shape)[K]>;
};

/** One row of the configuration table, in each of the forms it is given in. */
export interface Setting {
  /** Environment variable: `MAX_WORKERS`. */
  readonly env: SettingKey;
  /** Command-line flag, without dashes: `max-workers`. */
  readonly flag: string;
  /** Library option: `maxWorkers`. */
  readonly option: string;
  readonly description: string;
  /** Undefined when the setting has none (it is then off or derived from another). */
  readonly defaultValue: unknown;
}

const camel = (env: string) => env.toLowerCase().replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());

/** The configuration table, derived from the schema: nothing here is written twice. */
export const SETTINGS: readonly Setting[] = Object.entries(EnvSchema.shape).map(([env, schema]) => ({
  env: env as SettingKey,
  // The one setting whose flag is not its variable's name: `--tasks`, given once per module.
  flag: env === 'TASK_MODULES' ? 'tasks' : env.toLowerCase().replaceAll('_', '-'),
  option: camel(env),
  description: schema.description ?? '',
  defaultValue: schema.parse(undefined),
}));

const byOption = new Map(SETTINGS.filter((setting) => setting.env !== 'TASK_MODULES').map((setting) => [setting.option, setting]));

/**
 * Validates settings with the configuration schema. `values` is keyed by environment name;
 * `nameOf` says how the user gave each one (`--max-workers`, `maxWorkers`), so every message
 * names what the user wrote, including in the cross-setting rules.
 */
export function parseSettings(values: Partial<Record<SettingKey, unknown>>, nameOf: (key: SettingKey) => string): Config {
  const parsed = ConfigSchema.safeParse(values);
  if (parsed.success) return parsed.data;
  const rename = (text: string) => text.replace(/\b[A-Z][A-Z0-9_]+\b/g, (word) => (word in EnvSchema.shape ? nameOf(word as SettingKey) : word));
  const lines = parsed.error.issues.map((issue) => {
    const key = issue.path[0] as SettingKey | undefined;
    if (key === undefined || !(key in EnvSchema.shape)) return rename(issue.message);
    return `${nameOf(key)}=${JSON.stringify(values[key] ?? '')}: ${rename(issue.message)}`;
  });
  throw new ConfigError(`Invalid configuration:\n  ${lines.join('\n  ')}`);
}

/**
 * The configuration from library options (`{ maxWorkers: 4 }`): the schema's defaults for
 * what is not given, and nothing read from the environment. A bad value or an unknown
 * option throws a ConfigError naming the option.
 */
export function configFromOptions(options: Record<string, unknown>): Config {
  const values: Partial<Record<SettingKey, unknown>> = {};
  const unknown: string[] = [];
  for (const [option, value] of Object.entries(options)) {
    const setting = byOption.get(option);
    if (!setting) unknown.push(option);
    else if (value !== undefined) values[setting.env] = value;
  }
  if (unknown.length > 0) {
    throw new ConfigError(`Unknown option${unknown.length > 1 ? 's' : ''} ${unknown.join(', ')}; expected one of ${[...byOption.keys()].join(', ')}`);
  }
  return parseSettings(values, (key) => camel(key));
}

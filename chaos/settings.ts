import { z } from 'zod';

const count = (min: number, max: number) => z.coerce.number().int().min(min).max(max);

/** What a chaos run reads from its environment, with its defaults. */
const SettingsSchema = z.object({
  CHAOS_TASKS: count(1, 1_000_000).default(2000).describe('Tasks the service must accept (creates and manual retries)'),
  CHAOS_SEED: count(0, 4_294_967_295).optional().describe('Seed of every random choice; a fresh one is printed when unset'),
  CHAOS_LANES: count(1, 500).default(16).describe('Scenarios run at once'),
  CHAOS_DEADLINE_MS: count(1000, 3_600_000).optional().describe('Longest the run may take; 120 s + 400 ms per task when unset'),
  CHAOS_REPORT: z.string().optional().describe('A file to write the figures and violations to, as JSON'),
  CHAOS_INSTANCES: count(1, 4)
    .default(1)
    .describe('Instances of the service run side by side; more than one needs REDIS_URL (they share it)'),
});

export interface ChaosSettings {
  tasks: number;
  seed: number;
  lanes: number;
  deadlineMs: number;
  reportFile: string | undefined;
  instances: number;
}

export function loadSettings(env: Record<string, string | undefined> = process.env): ChaosSettings {
  const relevant = Object.fromEntries(Object.keys(SettingsSchema.shape).map((key) => [key, env[key]?.trim() || undefined]));
  const parsed = SettingsSchema.safeParse(relevant);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((issue) => `${String(issue.path[0])}=${JSON.stringify(env[String(issue.path[0])])}: ${issue.message}`);
    throw new Error(`Invalid chaos settings:\n  ${lines.join('\n  ')}`);
  }
  const settings = parsed.data;
  if (settings.CHAOS_INSTANCES > 1 && !env.REDIS_URL?.trim()) {
    throw new Error(`Invalid chaos settings:\n  CHAOS_INSTANCES=${settings.CHAOS_INSTANCES}: several instances share a Redis: set REDIS_URL`);
  }
  return {
    tasks: settings.CHAOS_TASKS,
    seed: settings.CHAOS_SEED ?? Math.floor(Math.random() * 4_294_967_296),
    lanes: settings.CHAOS_LANES,
    deadlineMs: settings.CHAOS_DEADLINE_MS ?? 120_000 + 400 * settings.CHAOS_TASKS,
    reportFile: settings.CHAOS_REPORT,
    instances: settings.CHAOS_INSTANCES,
  };
}

import type { Redis } from 'ioredis';

/** Commands a Redis has processed so far (INFO stats): every client counts, so only meaningful on a quiet one. */
export async function redisCommands(redis: Redis): Promise<number> {
  const info = await redis.info('stats');
  return Number(/^total_commands_processed:(\d+)/m.exec(info)?.[1] ?? 0);
}

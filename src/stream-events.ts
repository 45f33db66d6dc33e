import { z } from 'zod';
import { TaskEventSchema } from './events.ts';
import { TaskSnapshotSchema } from './task-record.ts';

/**
 * Events only the all-tasks stream carries: they tell a page about tasks that someone
 * else created or that went away. They are not part of a task's own sequence (seq 0).
 */
export const TaskCreatedEventSchema = z
  .object({
    event_type: z.literal('task_created'),
    task_id: z.uuid(),
    seq: z.literal(0),
    timestamp: z.iso.datetime(),
    data: z.object({ task: TaskSnapshotSchema }),
  })
  .meta({ id: 'TaskCreatedEvent' });

export const TaskRemovedEventSchema = z
  .object({
    event_type: z.literal('task_removed'),
    task_id: z.uuid(),
    seq: z.literal(0),
    timestamp: z.iso.datetime(),
    data: z.object({
      reason: z.enum(['deleted', 'evicted']).describe('`deleted` by a client, or `evicted` when its retention ran out'),
    }),
  })
  .meta({ id: 'TaskRemovedEvent' });

/** What the broker fans out to multiplexed streams: every task event, plus task_created and task_removed. */
export const StreamEventSchema = z.discriminatedUnion('event_type', [
  ...TaskEventSchema.options,
  TaskCreatedEventSchema,
  TaskRemovedEventSchema,
]);
export type StreamEvent = z.infer<typeof StreamEventSchema>;
export type TaskCreatedEvent = z.infer<typeof TaskCreatedEventSchema>;
export type TaskRemovedEvent = z.infer<typeof TaskRemovedEventSchema>;

/** Sent on the all-tasks stream when the resume point is older than what is retained. */
export const RESYNC_EVENT = 'resync';

/** Carries no `id:`: it is no position in the stream, only a warning that some were missed. */
export const ResyncEventSchema = z
  .object({ event_type: z.literal(RESYNC_EVENT) })
  .describe('Some events were missed (the resume point is no longer retained): reload the task list, then carry on')
  .meta({ id: 'ResyncEvent' });

export const RESYNC_FRAME = `event: ${RESYNC_EVENT}\ndata: ${JSON.stringify({ event_type: RESYNC_EVENT })}\n\n`;

/** What a client reads on the multiplexed stream: the broker's events, and resync. */
export const MultiplexedEventSchema = z
  .discriminatedUnion('event_type', [...StreamEventSchema.options, ResyncEventSchema])
  .meta({ id: 'StreamEvent' });

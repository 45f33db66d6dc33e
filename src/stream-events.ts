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

/** What the multiplexed stream carries: every task event, plus task_created and task_removed. */
export const StreamEventSchema = z
  .discriminatedUnion('event_type', [...TaskEventSchema.options, TaskCreatedEventSchema, TaskRemovedEventSchema])
  .meta({ id: 'StreamEvent' });
export type StreamEvent = z.infer<typeof StreamEventSchema>;
export type TaskCreatedEvent = z.infer<typeof TaskCreatedEventSchema>;
export type TaskRemovedEvent = z.infer<typeof TaskRemovedEventSchema>;

/** Sent on the all-tasks stream when the resume point is older than what is retained. */
export const RESYNC_EVENT = 'resync';

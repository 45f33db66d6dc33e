import { RESPONSE_ALREADY_SENT } from '@hono/node-server/utils/response';
import { createRoute, OpenAPIHono } from '@hono/zod-openapi';
import { z } from 'zod';
import type { StreamTokens } from '../auth/stream-tokens.ts';
import type { LoggedEvent, Subscriber, Subscription } from '../broker/broker.ts';
import { AppError } from '../errors.ts';
import { isTerminalEvent, TaskEventSchema } from '../events.ts';
import { refuseHead } from '../http/allowed-methods.ts';
import { assertStreamScope, type AuthEnv } from '../http/auth.ts';
import { problemDoc as problem, retryLaterDoc as retryLater } from '../http/problem.ts';
import { frameOf, type SseHub, type SseStream } from '../http/sse.ts';
import type { TaskService } from '../service.ts';
import { MultiplexedEventSchema, RESYNC_EVENT, RESYNC_FRAME, type TaskCreatedEvent } from '../stream-events.ts';
import { TaskIdParams } from './responses.ts';
import { presentSnapshot } from './task-presenter.ts';
import { validationHook } from './validation.ts';

export interface EventRoutesOptions {
  service: TaskService;
  hub: SseHub;
  /** Set when authentication is on: the snapshot in task_created then carries a stream token. */
  streamTokens?: StreamTokens | undefined;
}

const EVENT_ID = /^\d{1,16}$/;
const EVENT_STREAM = 'text/event-stream';
const MAX_FILTER_IDS = 100;

const UNSENT_ID = 'Last-Event-ID must be an event id this stream sent';

/** Where a client asks to resume, and which of the two places it said so. */
interface ResumePoint {
  after: number;
  pointer: '/last-event-id' | '/last_event_id';
}

/** The id to resume after: the Last-Event-ID header, else the last_event_id query parameter. */
function resumeAfter(header: string | undefined, query: string | undefined): ResumePoint | undefined {
  const raw = header ?? query;
  if (raw === undefined || raw === '') return undefined;
  const pointer = header !== undefined ? '/last-event-id' : '/last_event_id';
  if (!EVENT_ID.test(raw)) {
    throw new AppError('invalid_request', UNSENT_ID, {
      errors: [{ pointer, detail: `expected a non-negative integer, got ${JSON.stringify(raw)}` }],
    });
  }
  return { after: Number(raw), pointer };
}

/**
 * Refuses a resume point past the newest id the stream has sent: the client did not get it
 * from this stream, and resuming there would skip every event up to it.
 */
function assertSent(resume: ResumePoint | undefined, subscription: Subscription): void {
  if (resume === undefined || resume.after <= subscription.newest) return;
  subscription.unsubscribe();
  throw new AppError('invalid_request', UNSENT_ID, {
    errors: [{ pointer: resume.pointer, detail: `this stream has sent ids up to ${subscription.newest}, not ${resume.after}` }],
  });
}

const resumeHeaders = z.object({
  'last-event-id': z.string().optional().describe('Resume after this event id'),
});
/** A key, or instead a stream token in `?token=` (EventSource cannot send headers), or neither with keys off. */
const streamSecurity: Record<string, string[]>[] = [{ apiKey: [] }, { streamToken: [] }, {}];

/**
 * The stream, or 204 when nothing more will come. The 204 is an empty event stream, typed
 * like the 200 so a generated client's events are of one type, with no `void` among them.
 */
const streamResponses = <T extends z.ZodType>(schema: T, emptyDescription: string) => ({
  200: { description: 'The event stream', content: { [EVENT_STREAM]: { schema } } },
  204: { description: `${emptyDescription}: an empty stream, so EventSource stops reconnecting`, content: { [EVENT_STREAM]: { schema } } },
  429: retryLater('MAX_STREAMS or MAX_STREAMS_PER_OWNER streams are open', ['too_many_streams']),
  503: retryLater('The service is shutting down', ['shutting_down']),
});
const lastEventIdQuery = z
  .string()
  .optional()
  .describe('Same as the Last-Event-ID header, for clients that cannot set headers');

const sendFrame = (stream: SseStream, logged: LoggedEvent, frame: string) =>
  stream.send(frame, logged.task_id, logged.event_type === 'progress_update');
const sendEvent = (stream: SseStream, logged: LoggedEvent, kind: 'task' | 'multiplexed') =>
  sendFrame(stream, logged, frameOf(logged, kind));

/** Per-task and multiplexed Server-Sent Events streams. */
export function eventRoutes({ service, hub, streamTokens }: EventRoutesOptions) {
  const app = new OpenAPIHono<AuthEnv>({ defaultHook: validationHook });

  /**
   * task_created carries a snapshot, presented like every other one: its stream_url gets the
   * mount path and, with authentication on, a stream token. The service's own frame serves
   * when neither applies. Otherwise a frame is made once per event and mount path: only the
   * task's owner sees the event, so one token serves every stream that carries it; it is
   * minted again once half its life is gone.
   */
  const presented = new WeakMap<LoggedEvent, Map<string, { frame: string; renewAt: number }>>();
  const multiplexedFrame = (logged: LoggedEvent, basePath: string): string => {
    if (logged.event_type !== 'task_created') return frameOf(logged, 'multiplexed');
    const tokened = streamTokens !== undefined && logged.owner !== null;
    if (basePath === '' && !tokened) return frameOf(logged, 'multiplexed');
    const now = Date.now();
    let frames = presented.get(logged);
    const cached = frames?.get(basePath);
    if (cached && cached.renewAt > now) return cached.frame;
    const event = logged.event as TaskCreatedEvent;
    const { snapshot, tokenExpiresAt } = presentSnapshot(event.data.task, { basePath, streamTokens, owner: logged.owner });
    const frame = `id: ${logged.position}\nevent: ${event.event_type}\ndata: ${JSON.stringify({ ...event, data: { ...event.data, task: snapshot } })}\n\n`;
    if (!frames) presented.set(logged, (frames = new Map()));
    frames.set(basePath, { frame, renewAt: now + (tokenExpiresAt - now) / 2 });
    return frame;
  };
  const sendMultiplexed = (stream: SseStream, logged: LoggedEvent, basePath: string) =>
    sendFrame(stream, logged, multiplexedFrame(logged, basePath));
  // A stream is written straight to the socket: HEAD would answer it twice.
  app.use('/events', refuseHead);
  app.use('/tasks/:task_id/events', refuseHead);

  app.openapi(
    createRoute({
      method: 'get',
      path: '/tasks/{task_id}/events',
      operationId: 'streamTaskEvents',
      summary: 'Stream a task\'s events (Server-Sent Events)',
      description: [
        'First the retained history, then live events. Each frame has `id:` (the event\'s `seq`),',
        '`event:` (its `event_type`) and one `data:` line holding the JSON envelope. The last event',
        'is always exactly one of `task_completed`, `task_failed` or `task_cancelled`; then the',
        'response ends. Resume with `Last-Event-ID` (or `last_event_id`): no duplicates, no gaps',
        '(a flood of progress may have been thinned to its most recent events). Heartbeat',
        'comments keep idle connections open.',
      ].join(' '),
      request: {
        params: TaskIdParams,
        headers: resumeHeaders,
        query: z.object({ last_event_id: lastEventIdQuery }),
      },
      security: streamSecurity,
      responses: {
        ...streamResponses(TaskEventSchema, 'The resume point is already the terminal event'),
        400: problem('Bad Last-Event-ID'),
        401: problem('No valid API key or stream token for this task'),
        404: problem('No such task (or evicted)'),
      },
    }),
    async (c) => {
      const { task_id: taskId } = c.req.valid('param');
      const resume = resumeAfter(c.req.header('last-event-id'), c.req.query('last_event_id'));
      const afterSeq = resume?.after ?? 0;
      const caller = c.get('caller');
      assertStreamScope(caller, [taskId]);
      hub.assertCapacity(caller.owner);

      let stream: SseStream | undefined;
      // Live events that arrive while the subscription opens wait here, behind the history.
      const early: LoggedEvent[] = [];
      let removedEarly = false;
      const deliver = (logged: LoggedEvent) => {
        if (!stream) return void early.push(logged);
        sendEvent(stream, logged, 'task');
        if (isTerminalEvent(logged)) stream.end();
      };
      const removed = () => (stream ? stream.end() : (removedEarly = true));
      // `lost`: the broker may have missed events (Redis went away): end, and the client resumes.
      const { subscription } = await service.subscribe(taskId, afterSeq, { deliver, removed, lost: removed }, caller.owner);
      assertSent(resume, subscription);

      if (subscription.ended) {
        // The client already has the terminal event: 204 stops EventSource reconnecting.
        subscription.unsubscribe();
        return c.body(null, 204, { 'content-type': EVENT_STREAM });
      }
      stream = hub.open(c.env.outgoing, caller.owner);
      stream.onClose(subscription.unsubscribe);
      stream.replay(early.length === 0 ? subscription.history : [...subscription.history, ...early], deliver);
      if (removedEarly) stream.end();
      return RESPONSE_ALREADY_SENT as never;
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/events',
      operationId: 'streamEvents',
      summary: 'Stream the events of many tasks on one connection (Server-Sent Events)',
      description: [
        'With `task_id` (repeatable), the events of those tasks: first their retained history',
        'merged in publish order, then live events; the response ends once every one of them has',
        'ended (unknown ids are skipped; 404 if none is known). Without `task_id`, every task\'s',
        'live events, plus `task_created` and `task_removed`; with a resume point, first what',
        'was published after it. Frames are those of the per-task streams, but `id:` is a',
        'service-wide position, so `Last-Event-ID` resumes the whole stream with no duplicates',
        'and no gaps while the events are retained. If they are not, the all-tasks stream first',
        `sends a \`${RESYNC_EVENT}\` event: reload the task list, then carry on.`,
      ].join(' '),
      request: {
        headers: resumeHeaders,
        query: z.object({
          task_id: z
            .union([z.string(), z.array(z.string()).max(MAX_FILTER_IDS)])
            .optional()
            .describe(`Tasks to follow (up to ${MAX_FILTER_IDS}); every task when absent`),
          last_event_id: lastEventIdQuery,
        }),
      },
      security: streamSecurity,
      responses: {
        ...streamResponses(MultiplexedEventSchema, 'Every chosen task has ended and the client has all of their events'),
        400: problem('Bad Last-Event-ID or task_id'),
        401: problem('No valid API key or stream token for these tasks'),
        404: problem('None of the chosen tasks exists'),
      },
    }),
    async (c) => {
      const { task_id } = c.req.valid('query');
      const resume = resumeAfter(c.req.header('last-event-id'), c.req.query('last_event_id'));
      const afterPosition = resume?.after;
      const caller = c.get('caller');
      // A token for chosen tasks streams those when the request names none.
      const taskIds = task_id === undefined ? caller.scope?.taskIds ?? undefined : [task_id].flat();
      assertStreamScope(caller, taskIds);
      hub.assertCapacity(caller.owner);

      let stream: SseStream | undefined;
      // Live events that arrive while the subscription opens wait here, behind the history.
      const early: LoggedEvent[] = [];
      // The broker may have missed events (Redis went away): end, and the client resumes.
      let lostEarly = false;
      const lost = () => (stream ? stream.end() : (lostEarly = true));
      if (taskIds === undefined) {
        const basePath = c.get('basePath');
        const send = (logged: LoggedEvent) => sendMultiplexed(stream!, logged, basePath);
        const subscription = await service.subscribeAll(
          afterPosition,
          { deliver: (logged) => (stream ? send(logged) : early.push(logged)), removed: () => {}, lost },
          caller.owner,
        );
        assertSent(resume, subscription);
        stream = hub.open(c.env.outgoing, caller.owner);
        stream.onClose(subscription.unsubscribe);
        if (!subscription.complete) stream.write(RESYNC_FRAME);
        stream.replay([...subscription.history, ...early], send);
        if (lostEarly) stream.end();
        return RESPONSE_ALREADY_SENT as never;
      }

      // A chosen set of tasks: the stream ends when each has sent its terminal event.
      const open = new Set<string>();
      const deliver = (logged: LoggedEvent) => {
        if (!stream) return void early.push(logged);
        sendEvent(stream, logged, 'multiplexed');
        if (isTerminalEvent(logged) || logged.event_type === 'task_removed') {
          open.delete(logged.task_id);
          if (open.size === 0) stream.end();
        }
      };
      const subscriber: Subscriber = { deliver, removed: deliver, lost };
      const { records, subscription, ended } = await service.subscribeMany(
        taskIds,
        afterPosition ?? 0,
        subscriber,
        caller.owner,
      );
      assertSent(resume, subscription);
      // Tasks whose terminal event the client already has are done from the start.
      for (const record of records) if (!ended.has(record.task_id)) open.add(record.task_id);
      if (open.size === 0) {
        subscription.unsubscribe();
        return c.body(null, 204, { 'content-type': EVENT_STREAM });
      }
      stream = hub.open(c.env.outgoing, caller.owner);
      stream.onClose(subscription.unsubscribe);
      stream.replay([...subscription.history, ...early], deliver);
      if (lostEarly) stream.end();
      return RESPONSE_ALREADY_SENT as never;
    },
  );

  return app;
}

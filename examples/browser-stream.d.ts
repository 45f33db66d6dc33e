// Types for browser-stream.js, which stays plain JavaScript so the README can show it as is.
import type { components } from '../client/schema.d.ts';

type Schemas = components['schemas'];
type TerminalEvent = Exclude<Schemas['TaskEvent'], { event_type: 'task_started' | 'progress_update' }>;

export interface WatchHandlers {
  onProgress(data: Schemas['Progress']): void;
  onEnd(type: TerminalEvent['event_type'], data: TerminalEvent['data']): void;
  /** The stream closed for good without a terminal event (e.g. 404: unknown or evicted task). */
  onError?(): void;
}

/** The part of the EventSource interface the snippet uses. */
export interface EventSourceLike {
  readonly readyState: number;
  readonly CLOSED: number;
  addEventListener(type: string, listener: (event: MessageEvent) => void): void;
  close(): void;
}

export function watchTask<Source extends EventSourceLike>(
  streamUrl: string,
  handlers: WatchHandlers,
  EventSourceImpl?: new (url: string) => Source,
): Source;

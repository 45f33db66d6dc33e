import type { StreamEvent } from '../stream-events.ts';

/**
 * An event as a broker keeps it: serialized once at publish, however many streams carry
 * it, with the few fields that routing and replay read. It keeps no object form: a task's
 * events live as long as the task, and their objects (a snapshot in task_created) would
 * multiply what every retained task holds and what each garbage collection copies.
 */
export class LoggedEvent {
  readonly event_type: StreamEvent['event_type'];
  readonly task_id: string;
  /** The event's number in its task's stream; 0 for task_created and task_removed. */
  readonly seq: number;
  readonly json: string;
  /**
   * The event's place in the service-wide order of events: the multiplexed stream's SSE id.
   * Increases across restarts too (it starts from the boot time), so an id from an earlier
   * run is always older than anything retained.
   */
  readonly position: number;
  /** The owner of the event's task (not sent): streams show each caller only its own. */
  readonly owner: string | null;

  constructor(event: Pick<StreamEvent, 'event_type' | 'task_id' | 'seq'>, json: string, position: number, owner: string | null) {
    this.event_type = event.event_type;
    this.task_id = event.task_id;
    this.seq = event.seq;
    this.json = json;
    this.position = position;
    this.owner = owner;
  }

  /** The event as an object, parsed again at each call: for the rare reader of every field. */
  get event(): StreamEvent {
    return JSON.parse(this.json) as StreamEvent;
  }
}

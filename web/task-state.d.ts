// Types of web/task-state.js, for the tests that import it.
export declare const STATUSES: string[];
export declare const TERMINAL: Set<string>;
export declare const SEQ_UNKNOWN: -1;
export interface TaskEntry {
  task: Record<string, any>;
  lastSeq: number;
}
export declare function entryOf(snapshot: Record<string, unknown>, lastSeq?: number): TaskEntry;
export declare function applyTaskEvent(entry: TaskEntry, event: { event_type: string; seq: number; timestamp: string; data: any }): boolean;

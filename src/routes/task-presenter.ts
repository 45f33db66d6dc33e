import type { StreamTokens } from '../auth/stream-tokens.ts';
import type { Caller } from '../http/auth.ts';
import { toSnapshot, type TaskRecord, type TaskSnapshot } from '../task-record.ts';

/** A task as a caller gets it. */
export type Present = (caller: Caller, record: TaskRecord) => TaskSnapshot;

/**
 * Snapshots for callers. With authentication on (`streamTokens` given), each stream_url
 * carries a stream token, so it opens with no headers (EventSource cannot send any).
 */
export function taskPresenter(streamTokens: StreamTokens | undefined): Present {
  return (caller, record) => {
    const snapshot = toSnapshot(record);
    if (!streamTokens || caller.owner === undefined) return snapshot;
    const { token } = streamTokens.mint(caller.owner, [record.task_id]);
    return { ...snapshot, stream_url: `${snapshot.stream_url}?token=${token}` };
  };
}

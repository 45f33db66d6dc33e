import type { StreamTokens } from '../auth/stream-tokens.ts';
import type { Caller } from '../http/auth.ts';
import { toSnapshot, type TaskRecord, type TaskSnapshot } from '../task-record.ts';

/** A task as a caller gets it, from an app mounted at `basePath` (`` at the root). */
export type Present = (caller: Caller, record: TaskRecord, basePath: string) => TaskSnapshot;

/**
 * Snapshots for callers. With authentication on (`streamTokens` given), each stream_url
 * carries a stream token, so it opens with no headers (EventSource cannot send any).
 */
export function taskPresenter(streamTokens: StreamTokens | undefined): Present {
  return (caller, record, basePath) => {
    const plain = toSnapshot(record);
    const snapshot = { ...plain, stream_url: `${basePath}${plain.stream_url}` };
    if (!streamTokens || caller.owner === undefined) return snapshot;
    const { token } = streamTokens.mint(caller.owner, [record.task_id]);
    return { ...snapshot, stream_url: `${snapshot.stream_url}?token=${token}` };
  };
}

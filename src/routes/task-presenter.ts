import type { StreamTokens } from '../auth/stream-tokens.ts';
import type { Caller } from '../http/auth.ts';
import { joinPath } from '../http/base-path.ts';
import { toSnapshot, type TaskRecord, type TaskSnapshot } from '../task-record.ts';

/** A task as a caller gets it, from an app mounted at `basePath` (`` at the root). */
export type Present = (caller: Caller, record: TaskRecord, basePath: string) => TaskSnapshot;

export interface PresentSnapshotOptions {
  /** Where the app is mounted (`/jobs`), `` at the root. */
  basePath: string;
  /** Set when authentication is on: the stream_url then carries a stream token for `owner`. */
  streamTokens?: StreamTokens | undefined;
  /** Who the snapshot is for; no token without one (authentication off, or an unowned task). */
  owner?: string | null | undefined;
}

export interface PresentedSnapshot {
  snapshot: TaskSnapshot;
  /** When the stream token in its stream_url expires (ms since the epoch); Infinity without one. */
  tokenExpiresAt: number;
}

/**
 * The one place a snapshot is made ready to leave the service, in an answer or in the
 * task_created event alike. The service makes snapshots with a stream_url relative to the
 * app (`/api/tasks/{id}/events`): it knows neither where the app is mounted nor who asks.
 * Here the stream_url gets the mount path and, with authentication on, a stream token, so it
 * opens with no headers (EventSource cannot send any).
 */
export function presentSnapshot(snapshot: TaskSnapshot, options: PresentSnapshotOptions): PresentedSnapshot {
  const { basePath, streamTokens, owner } = options;
  const streamUrl = joinPath(basePath, snapshot.stream_url);
  if (!streamTokens || owner === undefined || owner === null) {
    return { snapshot: { ...snapshot, stream_url: streamUrl }, tokenExpiresAt: Infinity };
  }
  const { token, expiresAt } = streamTokens.mint(owner, [snapshot.task_id]);
  return { snapshot: { ...snapshot, stream_url: `${streamUrl}?token=${token}` }, tokenExpiresAt: expiresAt };
}

/** Snapshots of records for callers, through presentSnapshot. */
export function taskPresenter(streamTokens: StreamTokens | undefined): Present {
  return (caller, record, basePath) => presentSnapshot(toSnapshot(record), { basePath, streamTokens, owner: caller.owner }).snapshot;
}

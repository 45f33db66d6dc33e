// Types of web/stream-connection.js, for the tests that import its pure rules.
export declare const TASK_EVENTS: string[];
export declare const RECONNECT_MIN_MS: number;
export declare const RECONNECT_MAX_MS: number;
export declare const nextReconnectDelayMs: (delayMs: number) => number;
export declare const renewalDelayMs: (lifetimeMs: number) => number;
export declare function tokenLifetimeMs(expiresAt: string, dateHeader: string | null, localNow: number): number;
export declare function resumeUrl(streamUrl: string, lastEventId: string, baseUrl: string): string;
export declare class StreamConnection {
  constructor(api: unknown, handlers: Record<string, (...args: any[]) => void>);
  stop(): void;
  forgetResumePoint(): void;
  connect(): Promise<void>;
  close(): void;
}

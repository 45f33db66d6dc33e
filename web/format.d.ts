// Types of web/format.js, for the tests that import it.
export declare const STATUS_LABELS: Record<string, string>;
export declare function formatDuration(ms: number, options?: { precise?: boolean }): string;
export declare const shortId: (taskId: string) => string;
export declare const percent: (value: number) => string;
export declare const formatTime: (iso: string | null | undefined) => string;
export declare function timing(task: Record<string, any>, now: number): { text: string; label: string };
export declare function noteOf(task: Record<string, any>): { text: string; kind: 'error' | 'muted' | 'result' };
export declare function progressLabel(task: Record<string, any>): string;

// Types of web/schema-form.js, for the tests that import it.
export type ControlKind = 'enum' | 'number' | 'checkbox' | 'text' | 'textarea' | 'list' | 'json';
export declare const SAFE_LIMIT: number;
export declare function humanize(name: string): string;
export declare function simpleSchema(schema: Record<string, any>): Record<string, any>;
export declare function rangeHint(schema: Record<string, any>): string;
export declare function controlKind(schema: Record<string, any>, example?: unknown): ControlKind;

// Types of web/schema-form.js, for the tests that import it.
export type ControlKind = 'enum' | 'number' | 'checkbox' | 'text' | 'textarea' | 'list' | 'json';
export declare const SAFE_LIMIT: number;
export declare function humanize(name: string): string;
export declare function simpleSchema(schema: Record<string, any>): Record<string, any>;
export declare function rangeHint(schema: Record<string, any>): string;
export declare function controlKind(schema: Record<string, any>, example?: unknown): ControlKind;
export declare function fieldOfPointer(pointer: string | null | undefined): string | null;
export interface PlacedError {
  at: 'type' | 'json' | 'field';
  field?: string;
  message: string;
}
export declare function placeErrors(
  errors: { pointer?: string; detail: string }[],
  options: { jsonMode: boolean; hasField: (name: string) => boolean },
): { placed: PlacedError[]; unplaced: string[] };

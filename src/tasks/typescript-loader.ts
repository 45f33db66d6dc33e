// Registers tsx's loader in this thread, so TypeScript task modules import with no build step.
let registered: Promise<void> | undefined;

/**
 * Idempotent. Running from source (this file is .ts), a loader is already active; compiled,
 * tsx's ESM hooks are registered once for the rest of the process.
 */
export function registerTypeScriptLoader(): Promise<void> {
  if (import.meta.url.endsWith('.ts')) return Promise.resolve();
  return (registered ??= import('tsx/esm/api').then(({ register }) => {
    register();
  }));
}

/**
 * A task module that cannot be used: it failed to import, exports no `defineTask(...)`, or
 * declares a task type another module already declared. Startup stops on it, naming the file.
 */
export class TaskModuleError extends Error {
  override readonly name = 'TaskModuleError';

  constructor(
    /** The module's path (or URL, when it is not a file). */
    readonly file: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`${file}: ${message}`, options);
  }
}

import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { resolveTaskModules } from '../src/tasks/task-modules.ts';
import { TaskModuleError } from '../src/tasks/task-module-error.ts';

const names = (urls: URL[]) => urls.map((url) => fileURLToPath(url).split('/test/fixtures/modules/')[1]);

describe('task module sources', () => {
  it('takes the module files directly inside a directory, sorted, and leaves its subdirectories (shared code) alone', () => {
    expect(names(resolveTaskModules(['test/fixtures/modules/user']))).toEqual(['user/double.js', 'user/greet.ts']);
  });

  it('takes a file as itself, even in a subdirectory, and keeps the order of the sources', () => {
    const urls = resolveTaskModules(['test/fixtures/modules/user/greet.ts', 'test/fixtures/modules/duplicate']);
    expect(names(urls)).toEqual(['user/greet.ts', 'duplicate/greet-again.ts']);
  });

  it('refuses a missing path and a directory with no module, naming it', () => {
    expect(() => resolveTaskModules(['test/fixtures/modules/nowhere'])).toThrow(TaskModuleError);
    expect(() => resolveTaskModules(['test/fixtures/modules/nowhere'])).toThrow(/nowhere/);
    expect(() => resolveTaskModules(['test/fixtures'])).not.toThrow();
    expect(() => resolveTaskModules(['test/fixtures/modules'])).toThrow(/holds no \.js, \.mjs or \.ts task module/);
  });
});

// The package's main entry: `import { createTaskstream } from 'taskstream'`.
export {
  createTaskstream,
  type AnyTaskDefinition,
  type CreateTaskstreamOptions,
  type ListOptions,
  type NodeRequestHandler,
  type StartOptions,
  type TaskInput,
  type TaskstreamInstance,
  type TaskTypeName,
} from './create-taskstream.ts';
export { ConfigError } from './config.ts';
export { AppError, type ErrorCode } from './errors.ts';
export type { TaskEvent, TaskStatus } from './events.ts';
export type { SettingOptions } from './settings.ts';
export type { TaskSnapshot } from './task-record.ts';
export { TaskModuleError } from './tasks/task-module-error.ts';
export type { TaskModuleSource } from './tasks/task-modules.ts';
export { defineTask, type TaskContext, type TaskDefinition } from '../workers/define.ts';

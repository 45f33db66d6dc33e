import { openApiDocument } from './app.ts';
import { ConfigSchema, type Config } from './config.ts';
import { toOpenApiYaml } from './openapi-yaml.ts';
import { buildTaskstream } from './server.ts';
import { builtInTaskModules } from '../workers/tasks/index.ts';

/**
 * The OpenAPI document of some task types (the built-in ones by default) under a
 * configuration (the default one), as YAML. Builds the service without listening.
 */
export async function renderOpenApiYaml(
  taskModules: readonly URL[] = builtInTaskModules,
  config: Config = ConfigSchema.parse({}),
): Promise<string> {
  const taskstream = await buildTaskstream({ ...config, maxWorkers: 1, logLevel: 'silent' }, { taskModules });
  try {
    return toOpenApiYaml(openApiDocument(taskstream.app));
  } finally {
    await taskstream.close();
  }
}

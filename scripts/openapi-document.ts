import { stringify } from 'yaml';
import { openApiDocument } from '../src/app.ts';
import { ConfigSchema } from '../src/config.ts';
import { startTaskstream } from '../src/server.ts';

/** The OpenAPI document of the built-in task types under the default configuration, as YAML. */
export async function renderOpenApiYaml(): Promise<string> {
  const config = ConfigSchema.parse({ PORT: '0', MAX_WORKERS: '1', LOG_LEVEL: 'silent' });
  const taskstream = await startTaskstream(config);
  try {
    const document = openApiDocument(taskstream.app);
    return stringify(document, { aliasDuplicateObjects: false, lineWidth: 0 });
  } finally {
    await taskstream.close();
  }
}

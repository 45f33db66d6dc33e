// Regenerates the committed openapi.yaml from the route schemas.
import { writeFileSync } from 'node:fs';
import { renderOpenApiYaml } from './openapi-document.ts';

const target = new URL('../openapi.yaml', import.meta.url);
writeFileSync(target, await renderOpenApiYaml());
console.log(`wrote ${target.pathname}`);

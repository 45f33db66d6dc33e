// The committed openapi.yaml is the spec of the built-in task types.
export { renderOpenApiYaml } from '../src/openapi-spec.ts';

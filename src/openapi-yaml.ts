import { stringify } from 'yaml';

/** An OpenAPI document as YAML, in the stable form of the committed openapi.yaml. */
export const toOpenApiYaml = (document: object): string => stringify(document, { aliasDuplicateObjects: false, lineWidth: 0 });

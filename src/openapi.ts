import type { OpenAPIHono } from '@hono/zod-openapi';
import { AllowedMethods } from './http/allowed-methods.ts';
import { PROBLEM_CONTENT_TYPE } from './http/problem.ts';

export const OPENAPI_INFO = {
  openapi: '3.1.0',
  info: {
    title: 'taskstream',
    version: '0.1.0',
    description: [
      'Runs long tasks in a worker-thread pool and streams their progress over Server-Sent Events.',
      '',
      'Every error is `application/problem+json` (RFC 9457) with a stable `code`. A method a path',
      'does not list is answered `405` with `Allow` naming the methods it does (the',
      '`MethodNotAllowed` response; under `/api`, with keys on, a request with no valid key gets',
      'the `Unauthorized` response first). Every `429` and `503` carries `Retry-After`.',
    ].join('\n'),
  },
  // The first is where the document was read from, so Swagger UI at /docs calls its own
  // origin; generators that want an absolute URL find the service's default in the second.
  servers: [
    { url: '/', description: 'The service that serves this document' },
    { url: 'http://127.0.0.1:3000', description: 'A service on its default HOST and PORT' },
  ],
};

const problemContent = { [PROBLEM_CONTENT_TYPE]: { schema: { $ref: '#/components/schemas/Problem' } } };

/** Response headers with one meaning everywhere, referenced as `#/components/headers/<name>`. */
const HEADERS = {
  Location: { description: 'The task\'s URL', required: true, schema: { type: 'string' } },
  RetryAfter: {
    description: 'Seconds to wait before trying again',
    required: true,
    schema: { type: 'integer', minimum: 0 },
  },
  WWWAuthenticate: {
    description: 'The scheme that would be accepted: `Bearer realm="taskstream"`',
    required: true,
    schema: { type: 'string' },
  },
  Allow: {
    description: 'The methods this path answers, comma-separated (RFC 9110)',
    required: true,
    schema: { type: 'string' },
  },
} as const;

/** Answers the middleware gives on any route, whatever the handler. */
const RESPONSES = {
  Unauthorized: {
    description: 'With API keys on: no key, a wrong key, or a stream token where it does not reach',
    headers: { 'WWW-Authenticate': { $ref: '#/components/headers/WWWAuthenticate' } },
    content: problemContent,
  },
  MethodNotAllowed: {
    description: 'The path does not answer this method; `Allow` lists those it does',
    headers: { Allow: { $ref: '#/components/headers/Allow' } },
    content: problemContent,
  },
} as const;

const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'] as const;

type Operation = {
  operationId?: string;
  parameters?: { in?: string }[];
  responses: Record<string, { headers?: Record<string, unknown> }> };
type PathItem = Partial<Record<(typeof METHODS)[number], Operation>>;

/**
 * The OpenAPI document of an app, as committed in openapi.yaml: the routes' own entries, plus
 * what middleware answers for every route under `/api` (401 with keys on) and the 405 of
 * HEAD where a GET route refuses it.
 */
export function openApiDocument(app: OpenAPIHono<any>) {
  const registry = app.openAPIRegistry;
  registry.registerComponent('securitySchemes', 'apiKey', {
    type: 'http',
    scheme: 'bearer',
    description: 'An API key from API_KEYS, when the service has keys configured (otherwise no authentication)',
  });
  registry.registerComponent('securitySchemes', 'streamToken', {
    type: 'apiKey',
    in: 'query',
    name: 'token',
    description:
      'A stream token (from a task\'s `stream_url` or `POST /api/stream-tokens`): opens event streams only, for clients that cannot send Authorization',
  });
  for (const [name, header] of Object.entries(HEADERS)) registry.registerComponent('headers', name, header);
  for (const [name, response] of Object.entries(RESPONSES)) registry.registerComponent('responses', name, response);

  // `{}` keeps every operation usable with no credentials, as when no keys are configured.
  const document = app.getOpenAPI31Document({ ...OPENAPI_INFO, security: [{ apiKey: [] }, {}] });
  const allowed = new AllowedMethods(app.routes);
  const paths = document.paths as Record<string, PathItem>;
  for (const [path, item] of Object.entries(paths)) {
    const get = item.get;
    const methods = allowed.of(path.replaceAll(/\{[^}]+\}/g, 'x'));
    if (get && methods.includes('GET') && !methods.includes('HEAD')) {
      item.head = {
        operationId: `${get.operationId}Head`,
        parameters: get.parameters?.filter((parameter) => parameter.in === 'path'),
        summary: 'Refused: this GET is an event stream, written as it happens, so it has no HEAD',
        responses: { 405: { $ref: '#/components/responses/MethodNotAllowed' } },
      } as Operation;
    }
    if (!path.startsWith('/api/')) continue;
    for (const method of METHODS) {
      const operation = item[method];
      if (!operation) continue;
      const unauthorized = operation.responses[401];
      if (unauthorized) unauthorized.headers = { ...RESPONSES.Unauthorized.headers, ...unauthorized.headers };
      else operation.responses[401] = { $ref: '#/components/responses/Unauthorized' } as never;
    }
  }
  return document;
}

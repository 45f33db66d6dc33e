import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import { createParser } from 'eventsource-parser';

// ajv-formats is CommonJS: its default export arrives wrapped under Node's ESM loader.
type FormatsPlugin = (ajv: Ajv2020) => unknown;
const addFormats: FormatsPlugin =
  (addFormatsModule as unknown as { default?: FormatsPlugin }).default ?? (addFormatsModule as unknown as FormatsPlugin);

/** One answer as the client saw it: body read whole (an event stream up to where it stopped). */
export interface RecordedResponse {
  status: number;
  headers: Headers;
  body: string;
}

type Json = Record<string, any>;

/** Headers whose presence means something: sending one the spec does not describe is drift. */
const MEANINGFUL_HEADERS = ['location', 'retry-after', 'www-authenticate', 'allow'];
const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];

/**
 * Checks real responses against an OpenAPI 3.1 document with ajv (JSON Schema 2020-12): the
 * status is documented for the operation, the content type is one it lists (or there is no
 * body), documented required headers are present and valid, no meaningful header is sent
 * undocumented, and the body (each frame's data, for an event stream) matches the schema.
 * A method a path does not list must be the document's `MethodNotAllowed` answer, with
 * `Allow` naming exactly the methods it lists (or, under /api, its `Unauthorized` answer).
 */
export class SpecValidator {
  readonly #document: Json;
  readonly #ajv: Ajv2020;
  readonly #compiled = new Map<object, ValidateFunction>();
  readonly #paths: { template: string; pattern: RegExp; params: number }[];
  /** `METHOD template status` of every answer validated. */
  readonly seen = new Set<string>();

  constructor(document: Json) {
    // Component refs point into one registered schema, so ajv resolves them itself.
    this.#document = JSON.parse(JSON.stringify(document).replaceAll('"#/components/schemas/', '"spec#/$defs/'));
    this.#ajv = new Ajv2020({ strict: true, allErrors: true });
    addFormats(this.#ajv);
    // OpenAPI's own keywords: annotations for tools, no constraint of their own.
    this.#ajv.addKeyword('discriminator');
    this.#ajv.addKeyword('example');
    this.#ajv.addSchema({ $id: 'spec', $defs: this.#document.components?.schemas ?? {} });
    this.#paths = Object.keys(this.#document.paths).map((template) => ({
      template,
      pattern: new RegExp(`^${template.replaceAll(/\{[^}]+\}/g, '[^/]+')}$`),
      params: template.split('{').length - 1,
    }));
  }

  /** Every `METHOD template status` the document describes. */
  get documented(): string[] {
    const keys: string[] = [];
    for (const [template, item] of Object.entries(this.#document.paths as Json)) {
      for (const method of METHODS) {
        for (const status of Object.keys(item[method]?.responses ?? {})) keys.push(`${method.toUpperCase()} ${template} ${status}`);
      }
    }
    return keys;
  }

  /** The problems with one answer to `method path` (a path with its query); empty when it conforms. */
  check(method: string, path: string, response: RecordedResponse): string[] {
    try {
      return this.#check(method, path, response);
    } catch (error) {
      return [(error as Error).message]; // a $ref the document lacks
    }
  }

  #check(method: string, path: string, response: RecordedResponse): string[] {
    const pathname = new URL(path, 'http://x').pathname;
    const candidates = this.#paths.filter(({ pattern }) => pattern.test(pathname)).sort((a, b) => a.params - b.params);
    if (candidates.length === 0) return [`no path of the spec matches ${pathname}`];
    const lower = method.toLowerCase();
    const match = candidates.find(({ template }) => this.#document.paths[template][lower]) ?? candidates[0]!;
    const item = this.#document.paths[match.template];
    let operation = item[lower];
    let headOfGet = false;
    if (!operation && lower === 'head' && item.get) {
      // HTTP: HEAD is GET without content; the document lists HEAD only where it differs.
      operation = item.get;
      headOfGet = true;
    }
    if (!operation) return this.#checkMethodNotAllowed(method, match.template, response);

    const entry = operation.responses[String(response.status)] ?? operation.responses[`${String(response.status)[0]}XX`];
    if (!entry) {
      const listed = Object.keys(operation.responses).join(', ');
      return [`${method} ${match.template} answered ${response.status}, which the spec does not list (${listed})`];
    }
    this.seen.add(`${method.toUpperCase()} ${match.template} ${response.status}`);
    return this.#checkResponse(this.#resolve(entry), response, headOfGet || lower === 'head');
  }

  #checkMethodNotAllowed(method: string, template: string, response: RecordedResponse): string[] {
    if (response.status === 401 && template.startsWith('/api/')) {
      // Authentication comes first under /api: with keys on, no key is a 401 whatever the method.
      this.seen.add(`* ${template} 401`);
      return this.#checkResponse(this.#resolve({ $ref: '#/components/responses/Unauthorized' }), response, method === 'HEAD');
    }
    const item = this.#document.paths[template];
    const listed = METHODS.filter((name) => item[name] && name !== 'head').map((name) => name.toUpperCase());
    // HEAD comes with GET unless the path lists its own HEAD (a refusal).
    if (item.get && !item.head) listed.push('HEAD');
    const problems: string[] = [];
    if (response.status !== 405) problems.push(`${method} ${template}: the spec lists no ${method} here, yet it answered ${response.status}`);
    const allow = response.headers.get('allow');
    if (allow !== listed.sort().join(', ')) problems.push(`Allow is ${JSON.stringify(allow)}; the spec lists ${listed.join(', ')}`);
    this.seen.add(`* ${template} 405`);
    return [...problems, ...this.#checkResponse(this.#resolve({ $ref: '#/components/responses/MethodNotAllowed' }), response, method === 'HEAD')];
  }

  #checkResponse(entry: Json, response: RecordedResponse, head: boolean): string[] {
    const problems: string[] = [];
    const documentedHeaders = new Map(
      Object.entries((entry.headers ?? {}) as Json).map(([name, header]) => [name.toLowerCase(), this.#resolve(header)]),
    );
    for (const [name, header] of documentedHeaders) {
      const value = response.headers.get(name);
      if (value === null) {
        if (header.required) problems.push(`header ${name} is documented as always sent, but is missing`);
        continue;
      }
      const typed = header.schema?.type === 'integer' && /^-?\d+$/.test(value) ? Number(value) : value;
      problems.push(...this.#validate(header.schema ?? {}, typed, `header ${name}`));
    }
    for (const name of MEANINGFUL_HEADERS) {
      if (response.headers.has(name) && !documentedHeaders.has(name)) {
        problems.push(`header ${name} was sent (${response.headers.get(name)}) but the spec does not describe it here`);
      }
    }

    const content = entry.content as Json | undefined;
    const mediaType = response.headers.get('content-type')?.split(';')[0]!.trim().toLowerCase();
    if (!content) {
      if (response.body !== '') problems.push(`the spec describes no body, but one came: ${response.body.slice(0, 200)}`);
      return problems;
    }
    if (!mediaType || !(mediaType in content)) {
      problems.push(`content type ${JSON.stringify(mediaType ?? null)} is not one the spec lists (${Object.keys(content).join(', ')})`);
      return problems;
    }
    if (head) {
      if (response.body !== '') problems.push('HEAD answered with a body');
      return problems;
    }
    const schema = content[mediaType].schema ?? {};
    if (mediaType === 'text/event-stream') return [...problems, ...this.#checkEventStream(schema, response.body)];
    if (mediaType.endsWith('json')) {
      let body: unknown;
      try {
        body = JSON.parse(response.body);
      } catch {
        return [...problems, `the body is not JSON: ${response.body.slice(0, 200)}`];
      }
      return [...problems, ...this.#validate(schema, body, 'body')];
    }
    return [...problems, ...this.#validate(schema, response.body, 'body')];
  }

  /** Each frame: `event:` names the data's `event_type`, and the data matches the schema. */
  #checkEventStream(schema: Json, text: string): string[] {
    const problems: string[] = [];
    let frames = 0;
    const parser = createParser({
      onEvent: ({ event, data, id }) => {
        frames++;
        let json: any;
        try {
          json = JSON.parse(data);
        } catch {
          problems.push(`frame ${frames} (${event}) data is not JSON: ${data.slice(0, 200)}`);
          return;
        }
        if (json?.event_type !== event) problems.push(`frame ${frames}: event: ${event} but event_type ${json?.event_type}`);
        if (id !== undefined && !/^\d+$/.test(id)) problems.push(`frame ${frames}: id ${JSON.stringify(id)} is not a number`);
        problems.push(...this.#validate(schema, json, `frame ${frames} (${event})`));
      },
    });
    parser.feed(text);
    return problems;
  }

  #validate(schema: Json, value: unknown, what: string): string[] {
    let validate = this.#compiled.get(schema);
    if (!validate) {
      validate = this.#ajv.compile(schema);
      this.#compiled.set(schema, validate);
    }
    if (validate(value)) return [];
    return [`${what} does not match the spec: ${this.#ajv.errorsText(validate.errors, { dataVar: what })}; value ${JSON.stringify(value)?.slice(0, 300)}`];
  }

  /** Follows a `$ref` to a component (responses, headers) of the document. */
  #resolve(node: Json): Json {
    const ref = node.$ref as string | undefined;
    if (!ref) return node;
    const target = ref
      .replace(/^#\//, '')
      .split('/')
      .reduce<any>((at, part) => at?.[part.replaceAll('~1', '/').replaceAll('~0', '~')], this.#document);
    if (!target) throw new Error(`the spec has no ${ref}`);
    return this.#resolve(target);
  }
}

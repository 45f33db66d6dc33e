import { request, type IncomingHttpHeaders } from 'node:http';
import { connect } from 'node:net';
import fc from 'fast-check';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { isTerminal } from '../src/events.ts';
import type { TaskRecord } from '../src/task-record.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';
import { SseClient } from './helpers/sse.ts';
import { until, withTimeout } from './helpers/timeout.ts';

/*
 * Property-based fuzzing of every route in the README's Endpoints table, against one real
 * server. Whatever arrives, the service never answers 5xx, every 4xx is a problem+json whose
 * `status` is the HTTP status and which carries a string `code`, nothing fails inside the HTTP
 * layer, and afterwards a normal task still runs end to end.
 *
 * The queue is held paused the whole time, so tasks the fuzzer manages to create never run:
 * before each request, `tidy()` cancels them (and anything a fuzzed `resume` let start) and
 * keeps one queued task alive, so the routes also meet a task that has not ended.
 */

/** Fixed so a failure reproduces; fast-check prints it with the counterexample. */
const SEED = Number(process.env.FUZZ_SEED ?? 20_261_125);
/** Runs per property: 2,800 requests in all, before any shrinking. */
const RUNS = { create: 600, taskRoutes: 600, collections: 500, others: 500, raw: 600 } as const;
/** How long one request may take before the run fails, naming the request. */
const ANSWER_MS = 10_000;

// Keys on, so authentication and per-owner scoping are fuzzed too; most requests carry alice's.
const KEYS = { alice: 'alice-fuzz-key-0123456789', bob: 'bob-fuzz-key-0123456789ab' } as const;
const ENV = {
  API_KEYS: `alice:${KEYS.alice},bob:${KEYS.bob}`,
  ADMIN_OWNERS: 'alice',
  CANCEL_GRACE_MS: '50',
};
const asAlice = { authorization: `Bearer ${KEYS.alice}` };

const tally = { requests: 0, fiveXx: 0, problems: 0, rejectedBeforeApp: 0, unanswered: 0 };
/** How many answers had each status, for the summary line. */
const statuses = new Map<number, number>();
const countStatus = (status: number) => statuses.set(status, (statuses.get(status) ?? 0) + 1);

let server: TestServer;
let port: number;
/** Error-level log lines of the service and console.error calls (node-server reports there). */
const serverErrors: string[] = [];
/** A task that stays queued (the queue is paused); re-created whenever the fuzzer ends it. */
let liveTaskId = '';
/** Every task as of the last tidy(), newest first. */
let knownRecords: TaskRecord[] = [];
/** Ended tasks made at the start: a completed, a failed and a cancelled one. */
const endedTaskIds: string[] = [];
/** Stream tokens minted at the start (alice's, alice's for one task, bob's), and forgeries. */
const tokens: string[] = [];
const cancelling = new Set<string>();
const prototypeKeys = Object.getOwnPropertyNames(Object.prototype).sort();

beforeAll(async () => {
  vi.spyOn(console, 'error').mockImplementation((...args: unknown[]) => {
    serverErrors.push(args.map((arg) => (arg instanceof Error ? (arg.stack ?? arg.message) : String(arg))).join(' '));
  });
  const logger = pino({ level: 'error' }, { write: (line: string) => void serverErrors.push(line) });
  server = await startTestServer(ENV, { logger });
  port = Number(new URL(server.url).port);

  const completed = await createAsAlice({ type: 'sample', input: { steps: 1, step_ms: 0 } });
  const failed = await createAsAlice({ type: 'throws', input: {} });
  for (const task of [completed, failed]) {
    await server.api(`/api/tasks/${task.task_id}/wait?timeout_ms=10000`, { headers: asAlice });
  }
  await server.service.pause();
  const cancelled = await createAsAlice({ type: 'sample', input: { steps: 1, step_ms: 0 } });
  await server.service.cancel(cancelled.task_id);
  endedTaskIds.push(completed.task_id, failed.task_id, cancelled.task_id);

  const mint = async (key: string, body: unknown) => {
    const response = await server.api('/api/stream-tokens', {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    expect(response.status).toBe(201);
    return ((await response.json()) as { token: string }).token;
  };
  const alices = await mint(KEYS.alice, {});
  tokens.push(alices, await mint(KEYS.alice, { task_ids: [completed.task_id] }), await mint(KEYS.bob, {}));
  tokens.push(`${alices.slice(0, -2)}AA`, alices.split('.').slice(0, 2).join('.'), `${alices}.x`, 'st1..', 'st1.e30.x');
  await tidy();
});

async function createAsAlice(body: unknown): Promise<{ task_id: string; stream_url: string }> {
  const response = await server.api('/api/tasks', {
    method: 'POST',
    headers: { ...asAlice, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  expect(response.status).toBe(201);
  return (await response.json()) as { task_id: string; stream_url: string };
}

afterAll(async () => {
  console.log(
    `fuzz: ${tally.requests} requests, ${tally.fiveXx} 5xx (seed ${SEED}); ` +
      `${tally.problems} problem+json answers, ${tally.rejectedBeforeApp} requests refused by Node's HTTP layer before the app, ` +
      `${tally.unanswered} raw CONNECT requests closed unanswered (as Node does); statuses ` +
      [...statuses].sort(([a], [b]) => a - b).map(([status, count]) => `${status}×${count}`).join(' '),
  );
  vi.restoreAllMocks();
  await server?.close();
});

/**
 * Puts the service back in its fuzzing state and returns the task ids requests may name:
 * the queue paused, nothing running, one queued task, and every other task ended.
 */
async function tidy(): Promise<string[]> {
  const { service } = server;
  if (!(await service.stats()).paused) await service.pause();
  for (const status of ['running', 'queued'] as const) {
    for (const task of (await service.list({ status, limit: 1000 })).tasks) {
      if (task.task_id === liveTaskId && status === 'queued') continue;
      if (cancelling.has(task.task_id)) continue;
      cancelling.add(task.task_id);
      // Resolves at once: a running task stops during its grace period, while requests go on.
      await service.cancel(task.task_id).catch(() => {});
    }
  }
  const queued = (await service.list({ status: 'queued', limit: 1000 })).tasks;
  if (liveTaskId === '' || !queued.some((task) => task.task_id === liveTaskId)) {
    liveTaskId = (await service.create({ type: 'block', input: { progress: 0 } }, { owner: 'alice' })).record.task_id;
  }
  knownRecords = (await service.list({ limit: 1000 })).tasks;
  const newest = knownRecords.slice(0, 30).map((task) => task.task_id);
  return [...new Set([liveTaskId, ...endedTaskIds, ...newest])];
}

// ---------------------------------------------------------------------------------------------
// Requests and answers

interface FuzzRequest {
  method: string;
  /** Path and query exactly as sent: ASCII 0x21-0x7e only. */
  path: string;
  headers: Record<string, string>;
  body?: Buffer | undefined;
}

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  /** Undefined for an event stream (not read) and for HEAD. */
  body: string | undefined;
}

function describeRequest(req: FuzzRequest): string {
  const body = req.body === undefined ? '' : ` body(${req.body.length} B)=${JSON.stringify(req.body.subarray(0, 300).toString('latin1'))}`;
  return `${req.method} ${req.path.slice(0, 500)}${req.path.length > 500 ? '…' : ''} headers=${JSON.stringify(req.headers).slice(0, 500)}${body}`;
}

function send(req: FuzzRequest): Promise<Answer> {
  return new Promise((resolve, reject) => {
    // An explicit length: Node would send a GET or DELETE body with no framing at all.
    const headers = req.body === undefined ? req.headers : { ...req.headers, 'content-length': String(req.body.length) };
    // A connection of its own (agent: false): a request can never be answered on another's socket.
    const outgoing = request(
      { host: '127.0.0.1', port, method: req.method, path: req.path, headers, agent: false },
      (response) => {
        const status = response.statusCode ?? 0;
        if ((response.headers['content-type'] ?? '').startsWith('text/event-stream')) {
          // An open stream: its status and headers are what is checked. Hang up.
          resolve({ status, headers: response.headers, body: undefined });
          outgoing.destroy();
          return;
        }
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () =>
          resolve({
            status,
            headers: response.headers,
            body: req.method === 'HEAD' ? undefined : Buffer.concat(chunks).toString('utf8'),
          }),
        );
        response.on('error', reject);
      },
    );
    outgoing.on('error', reject);
    outgoing.end(req.body);
  });
}

/** Node's default limit on a request's head (request line and headers): 16 KiB. */
const MAX_HEAD_BYTES = 16 * 1024;

/** About the size of the head Node's client writes for `req`. */
const headBytes = (req: FuzzRequest) =>
  `${req.method} ${req.path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nConnection: close\r\nContent-Length: 0000000\r\n`.length +
  Object.entries(req.headers).reduce((sum, [name, value]) => sum + name.length + value.length + 4, 0);

/** The properties every answer must have; counts what was seen. */
function check(req: FuzzRequest, answer: Answer, errorsBefore: number): void {
  tally.requests++;
  countStatus(answer.status);
  const where = describeRequest(req);
  if (answer.status >= 500) {
    tally.fiveXx++;
    throw new Error(`answered ${answer.status} to ${where}: ${answer.body?.slice(0, 500)}`);
  }
  if (answer.status === 431 && answer.headers['content-type'] === undefined && headBytes(req) > MAX_HEAD_BYTES - 512) {
    // Node's parser refused a head over its limit before the app saw the request.
    tally.rejectedBeforeApp++;
  } else if (answer.status >= 400) {
    checkProblem(where, answer);
  }
  if (serverErrors.length > errorsBefore) {
    throw new Error(`the HTTP layer failed on ${where}:\n${serverErrors.slice(errorsBefore).join('\n').slice(0, 2000)}`);
  }
}

function checkProblem(where: string, answer: Answer): void {
  const type = answer.headers['content-type'] ?? '';
  if (!/^application\/problem\+json(;|$)/.test(type)) {
    throw new Error(`answered ${answer.status} with content-type ${JSON.stringify(type)} to ${where}`);
  }
  tally.problems++;
  if (answer.body === undefined) return; // HEAD: headers only
  let problem: any;
  try {
    problem = JSON.parse(answer.body);
  } catch {
    throw new Error(`answered ${answer.status} with a problem that is not JSON to ${where}: ${answer.body.slice(0, 300)}`);
  }
  if (problem?.status !== answer.status || typeof problem?.code !== 'string') {
    throw new Error(`answered ${answer.status} with problem ${answer.body.slice(0, 300)} to ${where}`);
  }
}

async function exchange(req: FuzzRequest): Promise<void> {
  const errorsBefore = serverErrors.length;
  const answer = await withTimeout(send(req), `an answer to ${describeRequest(req)}`, ANSWER_MS);
  check(req, answer, errorsBefore);
}

/**
 * Runs a property over fuzzed requests, one at a time against the shared server. `examples`
 * run first, every time: requests that once broke a property stay checked whatever the seed.
 */
async function fuzz<T>(
  arbitrary: fc.Arbitrary<T>,
  build: (spec: T, known: string[]) => FuzzRequest,
  numRuns: number,
  examples: T[] = [],
) {
  await fc.assert(
    fc.asyncProperty(arbitrary, async (spec) => {
      await exchange(build(spec, await tidy()));
    }),
    { seed: SEED, numRuns, examples: examples.map((example): [T] => [example]) },
  );
}

// ---------------------------------------------------------------------------------------------
// JSON with what JSON.stringify cannot write: raw number literals, duplicate and __proto__ keys

class Num {
  constructor(readonly text: string) {}
}
class Obj {
  constructor(readonly entries: [string, Json][]) {}
}
type Json = null | boolean | string | Num | Obj | Json[];

function serialize(value: Json): string {
  if (value instanceof Num) return value.text;
  if (value instanceof Obj) return `{${value.entries.map(([key, item]) => `${JSON.stringify(key)}:${serialize(item)}`).join(',')}}`;
  if (Array.isArray(value)) return `[${value.map(serialize).join(',')}]`;
  return JSON.stringify(value);
}

const POLLUTING_KEYS = ['__proto__', 'constructor', 'prototype', 'toString', 'valueOf', 'hasOwnProperty', '__defineGetter__'];
const FIELD_NAMES = ['type', 'input', 'timeout_ms', 'priority', 'max_attempts', 'retry_backoff_ms', 'labels'];
const INPUT_NAMES = ['steps', 'step_ms', 'fail_at_step', 'limit', 'csv', 'delimiter', 'header', 'items', 'operation', 'item_ms', 'count', 'progress', 'message'];
const TASK_TYPES = ['sample', 'primes', 'csv_stats', 'batch', 'block', 'spin', 'ignore-cancel', 'throws', 'exits', 'bad-result', 'flood'];

const text = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc.string({ unit: 'grapheme', maxLength: 40 }),
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.constantFrom('', ' ', '\u0000', '\uFEFF', 'é', '💥', '\u202Eevil', 'a'.repeat(300), '../../etc/passwd', '<script>', "'; DROP TABLE tasks; --"),
);

const numberLiteral = fc
  .oneof(
    fc.integer().map(String),
    fc.integer({ min: -2, max: 1002 }).map(String),
    fc.double({ noNaN: true, noDefaultInfinity: true }).map((value) => JSON.stringify(value)),
    fc.bigInt({ min: -(10n ** 30n), max: 10n ** 30n }).map(String),
    fc.constantFrom(
      '1e309', '-1e309', '1e-400', '-0', '0.0', '1.0', '1E2', '2e3', '1.5', '9007199254740993', '-9007199254740993',
      '123456789012345678901234567890', '2147483648', '3600001', '600001', '100000000001', '1000000', '0.0000001',
    ),
  )
  .map((literal) => new Num(literal));

const key = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(...FIELD_NAMES, ...INPUT_NAMES) },
  { weight: 2, arbitrary: fc.constantFrom(...POLLUTING_KEYS) },
  { weight: 2, arbitrary: text },
);

const leaf: fc.Arbitrary<Json> = fc.oneof(fc.constant(null), fc.boolean(), numberLiteral, text, fc.constantFrom(...TASK_TYPES));

const { json } = fc.letrec<{ json: Json; array: Json[]; object: Obj }>((tie) => ({
  json: fc.oneof({ depthSize: 'small', withCrossShrink: true }, leaf, tie('array'), tie('object')),
  array: fc.array(tie('json'), { maxLength: 5 }),
  object: fc.array(fc.tuple(key, tie('json')), { maxLength: 6 }).map((entries) => new Obj(entries)),
}));

/** An object that tries to reach Object.prototype through __proto__ or constructor.prototype. */
const pollution: fc.Arbitrary<Obj> = fc.constantFrom(
  new Obj([['__proto__', new Obj([['polluted', 'yes'], ['type', 'sample']])]]),
  new Obj([['constructor', new Obj([['prototype', new Obj([['polluted', 'yes']])]])]]),
  new Obj([['__proto__', new Obj([['__proto__', new Obj([['polluted', 'yes']])]])]]),
  new Obj([['prototype', new Obj([['polluted', 'yes']])]]),
);

const labels: fc.Arbitrary<Json> = fc.oneof(
  json,
  pollution,
  fc
    .array(
      fc.tuple(
        fc.oneof(fc.constantFrom('env', 'a.b', 'x/y', 'A-1', '_x', '-x', '', 'k'.repeat(64), 'k'.repeat(63), ...POLLUTING_KEYS), text),
        fc.oneof(text, numberLiteral, json, fc.constant('v'.repeat(257))),
      ),
      { maxLength: 24 },
    )
    .map((entries) => new Obj(entries)),
);

const taskInput: fc.Arbitrary<Json> = fc.oneof(
  json,
  pollution,
  fc.constantFrom(
    new Obj([]),
    new Obj([['steps', new Num('1')], ['step_ms', new Num('0')]]),
    new Obj([['count', new Num('1')]]),
    new Obj([['limit', new Num('100')]]),
    new Obj([['items', ['a']], ['operation', 'length']]),
    new Obj([['csv', 'a\n1']]),
  ),
  fc.array(fc.tuple(fc.constantFrom(...INPUT_NAMES, ...POLLUTING_KEYS), fc.oneof(numberLiteral, json)), { maxLength: 5 }).map((entries) => new Obj(entries)),
);

/** A create body: each field right, wrong-typed or absent, plus stray and polluting keys. */
const createBody: fc.Arbitrary<Obj> = fc
  .record(
    {
      type: fc.oneof({ weight: 3, arbitrary: fc.constantFrom(...TASK_TYPES, 'SAMPLE', 'sample ', '', ...POLLUTING_KEYS) }, { weight: 1, arbitrary: json }),
      input: taskInput,
      timeout_ms: fc.oneof(numberLiteral, json),
      priority: fc.oneof(numberLiteral, json),
      max_attempts: fc.oneof(numberLiteral, json),
      retry_backoff_ms: fc.oneof(numberLiteral, json),
      labels,
      extra: fc.array(fc.tuple(key, json), { maxLength: 3 }),
    },
    { requiredKeys: [] },
  )
  .map(({ extra = [], ...fields }) => new Obj([...(Object.entries(fields) as [string, Json][]), ...extra]));

const NON_JSON = [
  '', ' ', 'null', 'NaN', 'Infinity', 'undefined', "{'type':'sample'}", '{"type":"sample",}', '{"type":"sample"', '{"type":"sample"}}',
  '{"type":"sample","input":{}}garbage', '[', ']', '{', '}', '"', '\\', '{"a":"\\ud800"}', '{"a":"\\u00"}', '\uFEFF{"type":"sample","input":{}}',
  'type=sample&input=1', '<xml/>', '--x\r\nContent-Disposition: form-data; name="type"\r\n\r\nsample\r\n--x--',
];

/** A create body that is valid, so creation, options and Idempotency-Key reuse are reached. */
const validCreateBody: fc.Arbitrary<Buffer> = fc
  .record(
    {
      task: fc.constantFrom(
        { type: 'sample', input: { steps: 1, step_ms: 0 } },
        { type: 'flood', input: { count: 1 } },
        { type: 'block', input: {} },
        { type: 'primes', input: { limit: 100 } },
        { type: 'batch', input: { items: ['a', 'é'], operation: 'length' } },
        { type: 'csv_stats', input: { csv: 'a,b\n1,2' } },
      ),
      timeout_ms: fc.integer({ min: 1, max: 3_600_000 }),
      priority: fc.integer({ min: -1000, max: 1000 }),
      max_attempts: fc.integer({ min: 1, max: 20 }),
      retry_backoff_ms: fc.integer({ min: 0, max: 3_600_000 }),
      labels: fc.dictionary(fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9_.\/-]{0,10}$/), fc.string({ unit: 'grapheme', maxLength: 20 }), {
        maxKeys: 5,
      }),
    },
    { requiredKeys: ['task'] },
  )
  .map(({ task, ...options }) => Buffer.from(JSON.stringify({ ...task, ...options })));

/** A request body as bytes. */
const body: fc.Arbitrary<Buffer> = fc.oneof(
  { weight: 6, arbitrary: createBody.map((value) => Buffer.from(serialize(value))) },
  { weight: 8, arbitrary: validCreateBody },
  { weight: 3, arbitrary: json.map((value) => Buffer.from(serialize(value))) },
  { weight: 1, arbitrary: pollution.map((value) => Buffer.from(serialize(value))) },
  { weight: 2, arbitrary: fc.constantFrom(...NON_JSON).map((value) => Buffer.from(value)) },
  { weight: 1, arbitrary: text.map((value) => Buffer.from(value)) },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 200 }).map((bytes) => Buffer.from(bytes)) },
  { weight: 1, arbitrary: createBody.map((value) => Buffer.from(serialize(value), 'utf16le')) },
  {
    weight: 1,
    arbitrary: createBody.chain((value) => {
      const serialized = serialize(value);
      return fc.nat({ max: serialized.length }).map((cut) => Buffer.from(serialized.slice(0, cut)));
    }),
  },
  {
    // Deeply nested, inside the body limit: arrays, objects, and inside `input` or `labels`.
    weight: 1,
    arbitrary: fc
      .tuple(fc.integer({ min: 1_000, max: 300_000 }), fc.constantFrom('array', 'object', 'input', 'labels'))
      .map(([depth, where]) => {
        if (where === 'array') return Buffer.from('['.repeat(depth) + ']'.repeat(depth));
        const nested = '{"a":'.repeat(depth) + '1' + '}'.repeat(depth);
        if (where === 'object') return Buffer.from(nested);
        return Buffer.from(`{"type":"sample","input":${where === 'input' ? nested : '{}'}${where === 'labels' ? `,"labels":${nested}` : ''}}`);
      }),
  },
  {
    // Over the 1 MiB body limit.
    weight: 1,
    arbitrary: fc.constantFrom(1_048_577, 1_200_000).map((size) => {
      const padding = 'x'.repeat(size);
      return Buffer.from(`{"type":"sample","input":{},"labels":{"a":"${padding}"}}`);
    }),
  },
);

// ---------------------------------------------------------------------------------------------
// Ids, query strings, headers

/** Makes any text a path segment or query value of visible ASCII only. */
const encode = (value: string) => encodeURIComponent(value).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);

/** A path segment as the router reads it, when it decodes at all. */
const decoded = (segment: string) => {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
};

/** A task id as written in a path; `known` picks one of the service's tasks at run time. */
type IdSpec = { known: number; form: 'plain' | 'encoded' | 'upper' } | { segment: string };

const resolveId = (spec: IdSpec, known: string[]): string => {
  if ('segment' in spec) return spec.segment;
  const id = known[spec.known % known.length]!;
  if (spec.form === 'upper') return id.toUpperCase();
  if (spec.form === 'encoded') return [...id].map((c) => `%${c.charCodeAt(0).toString(16).padStart(2, '0')}`).join('');
  return id;
};

const PATH_TRICKS = [
  '..', '.', '../..', '..%2F..%2Fpackage.json', '%2e%2e', '%2e%2e%2f%2e%2e%2fetc%2fpasswd', '..%5C..%5Cwindows', '%00', '%', '%zz', '%E0%A4%A',
  '%C0%AE%C0%AE', '%252e%252e', '', '%20', 'null', 'undefined', '0', '-1', '1e309', 'stats', 'events', '*', '~', ';', ',', '!', '$', '&', '+', '=',
  '@', ':', '%2F', '%3F', '%23', 'a%2Fb', '..;', 'x/..', '%uD83D', '%FF%FE',
];

const idSpec: fc.Arbitrary<IdSpec> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ known: fc.nat(), form: fc.constant<'plain'>('plain') }) },
  { weight: 1, arbitrary: fc.record({ known: fc.nat(), form: fc.constantFrom<'encoded' | 'upper'>('encoded', 'upper') }) },
  { weight: 2, arbitrary: fc.uuid().map((segment) => ({ segment })) },
  { weight: 2, arbitrary: fc.uuid({ version: 7 }).map((segment) => ({ segment })) },
  { weight: 2, arbitrary: text.map((value) => ({ segment: encode(value) })) },
  { weight: 2, arbitrary: fc.constantFrom(...PATH_TRICKS).map((segment) => ({ segment })) },
  {
    weight: 1,
    arbitrary: fc
      .tuple(fc.integer({ min: 64, max: 8_000 }), fc.constantFrom('a', '0', '%41', encode('é'), '-'))
      .map(([length, unit]) => ({ segment: unit.repeat(Math.ceil(length / unit.length)) })),
  },
);

/** A query value: literal (already encoded), a known task id, a cursor, or a stream token. */
type ValueSpec = { literal: string } | { knownId: number } | { cursorOf: number } | { token: number };

const resolveValue = (spec: ValueSpec, known: string[]): string => {
  if ('literal' in spec) return spec.literal;
  if ('knownId' in spec) return known[spec.knownId % known.length]!;
  if ('token' in spec) return tokens[spec.token % tokens.length]!;
  return Buffer.from(known[spec.cursorOf % known.length]!).toString('base64url');
};

const QUERY_KEYS = ['status', 'type', 'label', 'limit', 'cursor', 'task_id', 'last_event_id', 'timeout_ms', 'token'];
const QUERY_VALUES = [
  '', '+', 'null', 'undefined', 'true', '[]', '{}', '0', '-0', '-1', '1', '1.5', '1e3', '1e309', '-1e309', 'NaN', 'Infinity', '0x10', '0b1',
  '9007199254740993', '99999999999999999999999', '1000', '1001', '600000', '600001', '50', 'completed', 'failed', 'cancelled', 'queued',
  'running', 'COMPLETED', 'sample', 'flood', 'k%3Av', '%3Av', 'k%3A', 'env%3Aprod', '__proto__%3Ax', 'constructor%3Ay', 'toString%3Az',
  'a'.repeat(300), '%', '%zz', '%E0%A4%A', '%00', '..%2F..', '%2B', '+', '%20', 'a%26b%3Dc', 'abc', 'AAAA', 'MDE5', '____',
];

const queryValue: fc.Arbitrary<ValueSpec> = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(...QUERY_VALUES).map((literal) => ({ literal })) },
  { weight: 2, arbitrary: text.map((value) => ({ literal: encode(value) })) },
  { weight: 1, arbitrary: fc.bigInt({ min: -(10n ** 20n), max: 10n ** 20n }).map((value) => ({ literal: String(value) })) },
  { weight: 2, arbitrary: fc.nat().map((knownId) => ({ knownId })) },
  { weight: 1, arbitrary: fc.nat().map((cursorOf) => ({ cursorOf })) },
  { weight: 1, arbitrary: fc.nat().map((token) => ({ token })) },
  { weight: 1, arbitrary: fc.uuid().map((id) => ({ literal: Buffer.from(id).toString('base64url') })) },
  { weight: 1, arbitrary: fc.base64String({ maxLength: 60 }).map((value) => ({ literal: encode(value) })) },
);

type QuerySpec = { pairs: [string, ValueSpec][]; tail: string };

const query: fc.Arbitrary<QuerySpec> = fc.record({
  pairs: fc.oneof(
    {
      weight: 8,
      arbitrary: fc.array(
        fc.tuple(
          fc.oneof(
            { weight: 6, arbitrary: fc.constantFrom(...QUERY_KEYS) },
            { weight: 1, arbitrary: fc.constantFrom(...QUERY_KEYS).map((name) => `${name}%5B%5D`) },
            { weight: 1, arbitrary: fc.constantFrom(...QUERY_KEYS).map((name) => `${name}[]`) },
            { weight: 1, arbitrary: fc.constantFrom('__proto__', 'constructor', '', '%', 'a%00b') },
            { weight: 1, arbitrary: text.map(encode) },
          ),
          queryValue,
        ),
        { maxLength: 6 },
      ),
    },
    {
      // Many repeats of one parameter: over the 20 labels and 100 task ids allowed.
      weight: 1,
      arbitrary: fc
        .tuple(fc.constantFrom('task_id', 'label', 'status', 'limit'), fc.integer({ min: 2, max: 130 }), queryValue)
        .map(([name, count, value]) => Array.from({ length: count }, () => [name, value] as [string, ValueSpec])),
    },
  ),
  tail: fc.constantFrom('', '', '', '&', '&&', '=', '&=', '%', '%zz=1', '#fragment', '?', '&a', ';a=b'),
});

const resolveQuery = (spec: QuerySpec, known: string[]): string => {
  const parts = spec.pairs.map(([name, value]) => `${name}=${resolveValue(value, known)}`);
  const joined = parts.join('&') + spec.tail;
  return joined === '' ? '' : `?${joined}`;
};

/** Header values as Node can send them: bytes 0x20-0xff (UTF-8 text arrives as its bytes). */
const headerSafe = (value: string) => Buffer.from(value, 'utf8').toString('latin1').replace(/[^\t\x20-\x7e\x80-\xff]/g, '?');

const CONTENT_TYPES = [
  'application/json', 'application/json; charset=utf-8', 'application/json;charset=UTF-8', 'APPLICATION/JSON', 'Application/Json',
  'application/problem+json', 'application/merge-patch+json', 'application/vnd.api+json', 'application/json;', 'application/json; foo',
  'application/json; charset=', 'application/json ; charset=utf-8', 'application/json; charset="utf-8"', 'application/json;;',
  'application/json, text/plain', 'application/jsonx', 'application/x-json', 'application/foo_bar+json', 'application/1+json',
  'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'text/plain', 'text/json', 'text/event-stream', '*/*', '',
  'application/', 'json',
];

const contentType = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(...CONTENT_TYPES) },
  { weight: 1, arbitrary: text.map((value) => `application/json${value}`) },
  { weight: 1, arbitrary: text.map((value) => `application/json; ${value}`) },
  { weight: 1, arbitrary: text },
);

const headerValue = (specials: readonly string[]) =>
  fc.oneof(
    { weight: 3, arbitrary: fc.constantFrom(...specials) },
    { weight: 1, arbitrary: fc.bigInt({ min: 0n, max: 10n ** 22n }).map(String) },
    { weight: 2, arbitrary: text },
  );

/** Mostly alice's key; sometimes bob's (another owner), none, or a malformed or wrong one. */
const authorization = fc.oneof(
  { weight: 12, arbitrary: fc.constant(`Bearer ${KEYS.alice}`) },
  { weight: 2, arbitrary: fc.constant(`Bearer ${KEYS.bob}`) },
  { weight: 2, arbitrary: fc.constant(undefined) },
  {
    weight: 2,
    arbitrary: fc.oneof(
      fc.constantFrom(
        'Bearer', 'Bearer ', `bearer ${KEYS.alice}`, `BEARER   ${KEYS.alice}  `, `Bearer ${KEYS.alice} extra`, `Bearer ${KEYS.alice}x`,
        `Basic ${Buffer.from(`alice:${KEYS.alice}`).toString('base64')}`, `Bearer ${KEYS.alice.slice(0, -1)}`, 'Bearer st1.e30.x', '',
        `Token ${KEYS.alice}`, `Bearer\t${KEYS.alice}`,
      ),
      text.map((value) => `Bearer ${value}`),
      text,
    ),
  },
);

const headers = fc.record(
  {
    'content-type': contentType,
    accept: headerValue(['text/event-stream', 'application/json', 'application/problem+json', '*/*', 'text/html', '', 'garbage;;;q=x', 'application/yaml']),
    'last-event-id': headerValue(['', '0', '1', '2', '-1', '1.5', '1e3', ' 1', '1 ', '0x1', '9999999999999999', '99999999999999999', 'null', 'abc']),
    'idempotency-key': headerValue(['k1', 'k2', 'same-key', '', ' ', 'x'.repeat(255), 'x'.repeat(256), 'é', 'a b', '"quoted"']),
    'x-request-id': headerValue(['abc', '', 'x'.repeat(200), '../../etc']),
    origin: headerValue(['http://evil.example', 'null', 'http://127.0.0.1']),
    authorization,
  },
  { requiredKeys: ['authorization'] },
);

const resolveHeaders = (spec: Partial<Record<string, string>>): Record<string, string> =>
  Object.fromEntries(
    Object.entries(spec)
      .filter((entry): entry is [string, string] => entry[1] !== undefined)
      .map(([name, value]) => [name, headerSafe(value)]),
  );

const METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS', 'TRACE'] as const;
/** The method the route is declared with, mostly; sometimes any other. */
const methodFor = (declared: string) =>
  fc.oneof(
    { weight: 8, arbitrary: fc.constant(declared) },
    // HEAD is what a GET route most often meets besides GET (curl -I, link checkers).
    { weight: declared === 'GET' ? 1 : 0, arbitrary: fc.constant('HEAD') },
    { weight: 2, arbitrary: fc.constantFrom(...METHODS) },
  );

/** A body or none; with a body, the content type from `headers` or, if absent, JSON. */
const optionalBody = fc.option(body, { freq: 3, nil: undefined });

/** A body given as bytes, or a stream-token request naming known tasks (resolved at run time). */
type BodySpec = { bytes: Buffer } | { taskIds: ({ known: number } | { json: Json })[] | { json: Json }; extra: [string, Json][] };

const resolveBody = (spec: BodySpec, known: string[]): Buffer => {
  if ('bytes' in spec) return spec.bytes;
  const ids: Json = Array.isArray(spec.taskIds)
    ? spec.taskIds.map((item) => ('known' in item ? known[item.known % known.length]! : item.json))
    : spec.taskIds.json;
  return Buffer.from(serialize(new Obj([['task_ids', ids], ...spec.extra])));
};

const streamTokenBody: fc.Arbitrary<BodySpec | undefined> = fc.oneof(
  fc.constant(undefined),
  body.map((bytes) => ({ bytes })),
  fc.record({
    taskIds: fc.oneof(
      { weight: 4, arbitrary: fc.array(fc.oneof(fc.nat().map((known) => ({ known })), json.map((value) => ({ json: value }))), { maxLength: 6 }) },
      { weight: 1, arbitrary: fc.integer({ min: 95, max: 130 }).map((count) => Array.from({ length: count }, (_, known) => ({ known }))) },
      { weight: 1, arbitrary: json.map((value) => ({ json: value })) },
    ),
    extra: fc.array(fc.tuple(key, json), { maxLength: 2 }),
  }),
);

// ---------------------------------------------------------------------------------------------

describe('fuzzing every route', () => {
  it('POST /api/tasks: any body, content type and Idempotency-Key is answered 2xx or as a problem', { timeout: 60_000 }, async () => {
    const spec = fc.record({
      body,
      headers,
      // Mostly JSON, so most fuzzed bodies get past the media type check to validation.
      contentType: fc.oneof(
        { weight: 6, arbitrary: fc.constant<'json' | 'fuzzed' | 'none'>('json') },
        { weight: 3, arbitrary: fc.constant<'json' | 'fuzzed' | 'none'>('fuzzed') },
        { weight: 1, arbitrary: fc.constant<'json' | 'fuzzed' | 'none'>('none') },
      ),
    });
    await fuzz(
      spec,
      ({ body, headers, contentType }) => {
        const resolved = resolveHeaders(headers);
        if (contentType === 'json' || resolved['content-type'] === undefined) resolved['content-type'] = 'application/json';
        if (contentType === 'none') delete resolved['content-type'];
        return { method: 'POST', path: '/api/tasks', headers: resolved, body };
      },
      RUNS.create,
      // Content types the app's own check lets through but the route's media type check refuses.
      ['application/json; foo', 'application/json;', 'application/foo_bar+json'].map((type) => ({
        body: Buffer.from('{"type":"sample","input":{}}'),
        headers: { 'content-type': type, authorization: `Bearer ${KEYS.alice}` },
        contentType: 'fuzzed' as const,
      })),
    );
    expect(Object.getOwnPropertyNames(Object.prototype).sort()).toEqual(prototypeKeys);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('/api/tasks/{id}[/events|/wait|/cancel|/retry]: any id, method, query and headers', { timeout: 60_000 }, async () => {
    const ROUTES = [
      { method: 'GET', suffix: '' },
      { method: 'DELETE', suffix: '' },
      { method: 'GET', suffix: '/events' },
      { method: 'GET', suffix: '/wait' },
      { method: 'POST', suffix: '/cancel' },
      { method: 'POST', suffix: '/retry' },
    ] as const;
    const spec = fc
      .constantFrom(...ROUTES)
      .chain((route) =>
        fc.record({ route: fc.constant(route), method: methodFor(route.method), id: idSpec, query, headers, body: optionalBody }),
      );
    await fuzz(
      spec,
      ({ route, method, id, query: querySpec, headers, body }, known) => {
        const taskId = resolveId(id, known);
        let search = resolveQuery(querySpec, known);
        const record = knownRecords.find((task) => task.task_id === decoded(taskId));
        if (route.suffix === '/wait' && record && !isTerminal(record.status)) {
          // Long-polling a task that will not end would hold the run for timeout_ms.
          search = `?timeout_ms=${querySpec.pairs.length % 20}`;
        }
        return {
          method,
          path: `/api/tasks/${taskId}${route.suffix}${search}`,
          headers: resolveHeaders(headers),
          body: method === 'GET' || method === 'HEAD' ? undefined : body,
        };
      },
      RUNS.taskRoutes,
      // HEAD on the stream of the queued task (known[0]).
      [{ route: ROUTES[2], method: 'HEAD', id: { known: 0, form: 'plain' }, query: { pairs: [], tail: '' }, headers: { authorization: `Bearer ${KEYS.alice}` }, body: undefined }],
    );
  });

  it('GET and DELETE /api/tasks, GET /api/events: any query string, Last-Event-ID and Accept', { timeout: 60_000 }, async () => {
    const ROUTES = [
      { method: 'GET', path: '/api/tasks' },
      { method: 'DELETE', path: '/api/tasks' },
      { method: 'GET', path: '/api/events' },
    ] as const;
    const spec = fc
      .constantFrom(...ROUTES)
      .chain((route) => fc.record({ route: fc.constant(route), method: methodFor(route.method), query, headers, body: optionalBody }));
    await fuzz(
      spec,
      ({ route, method, query: querySpec, headers, body }, known) => ({
        method,
        path: `${route.path}${resolveQuery(querySpec, known)}`,
        headers: resolveHeaders(headers),
        body: method === 'GET' || method === 'HEAD' || method === 'POST' ? undefined : body,
      }),
      RUNS.collections,
      [{ route: ROUTES[2], method: 'HEAD', query: { pairs: [], tail: '' }, headers: { authorization: `Bearer ${KEYS.alice}` }, body: undefined }],
    );
  });

  it('every other route: any method, query, headers and body', { timeout: 60_000 }, async () => {
    const ROUTES = [
      { method: 'GET', path: '/api/tasks/stats' },
      { method: 'POST', path: '/api/queue/pause' },
      { method: 'POST', path: '/api/queue/resume' },
      { method: 'GET', path: '/api/reaper' },
      { method: 'POST', path: '/api/reaper/run' },
      { method: 'POST', path: '/api/stream-tokens' },
      { method: 'POST', path: '/api/stream-tokens' },
      { method: 'GET', path: '/api/task-types' },
      { method: 'GET', path: '/openapi.yaml' },
      { method: 'GET', path: '/healthz' },
      { method: 'GET', path: '/readyz' },
      { method: 'GET', path: '/metrics' },
      { method: 'GET', path: '/' },
      { method: 'GET', path: '/docs' },
      { method: 'GET', path: '/docs/' },
      { method: 'GET', path: '/api' },
      { method: 'GET', path: '/api/' },
      { method: 'GET', path: '/api/tasks/' },
      { method: 'GET', path: '//api//tasks' },
      { method: 'GET', path: '/API/TASKS' },
      { method: 'GET', path: '/api/tasks/stats/' },
      { method: 'GET', path: '/app.js' },
      { method: 'GET', path: '/..%2fpackage.json' },
      { method: 'GET', path: '/docs/..%2f..%2fpackage.json' },
      { method: 'GET', path: '/docs/swagger-ui.css' },
      { method: 'GET', path: '/.env' },
    ] as const;
    const spec = fc.constantFrom(...ROUTES).chain((route) =>
      fc.record({
        route: fc.constant(route),
        method: methodFor(route.method),
        query,
        headers,
        body: route.path === '/api/stream-tokens' ? streamTokenBody : optionalBody.map((bytes) => bytes && { bytes }),
      }),
    );
    await fuzz(
      spec,
      ({ route, method, query: querySpec, headers, body }, known) => {
        const resolved = resolveHeaders(headers);
        if (body && 'taskIds' in body && resolved['content-type'] === undefined) resolved['content-type'] = 'application/json';
        return {
          method,
          path: `${route.path}${resolveQuery(querySpec, known)}`,
          headers: resolved,
          body: method === 'GET' || method === 'HEAD' || body === undefined ? undefined : resolveBody(body, known),
        };
      },
      RUNS.others,
      // A body that is not declared JSON, on a route whose body is optional.
      [undefined, 'text/plain'].map((type) => ({
        route: ROUTES[5]!,
        method: 'POST',
        query: { pairs: [], tail: '' },
        headers: { authorization: `Bearer ${KEYS.alice}`, ...(type ? { 'content-type': type } : {}) },
        body: { bytes: Buffer.from('{}') },
      })),
    );
  });

  it('malformed HTTP on a raw socket: never a 5xx, and every answer from the app is a problem', { timeout: 60_000 }, async () => {
    await fc.assert(
      fc.asyncProperty(rawRequest, async (spec) => {
        const known = await tidy();
        const bytes = buildRaw(spec, known);
        const errorsBefore = serverErrors.length;
        const answer = await rawExchange(bytes);
        tally.requests++;
        if (answer) countStatus(answer.status);
        const where = JSON.stringify(bytes.subarray(0, 600).toString('latin1'));
        if (answer === undefined) {
          // Node hands CONNECT to the server's 'connect' listener and, with none, closes the
          // socket: no HTTP answer is the expected outcome there, and only there.
          if (spec.method !== 'CONNECT') throw new Error(`no answer within ${ANSWER_MS} ms to ${where}`);
          tally.unanswered++;
          return;
        }
        if (answer.status >= 500) {
          tally.fiveXx++;
          throw new Error(`answered ${answer.status} to ${where}: ${answer.body.slice(0, 300)}`);
        }
        if (answer.status >= 400) {
          const type = answer.headers['content-type'];
          if (type === undefined && REJECTED_BEFORE_APP.has(answer.status)) {
            // Node's HTTP parser (or node-server's URL and Host check) refused the request before
            // the app saw it: a bare status line, no body.
            tally.rejectedBeforeApp++;
          } else {
            const problem = answer.complete ? answer.body : undefined;
            checkProblem(where, { status: answer.status, headers: answer.headers, body: problem });
          }
        }
        if (serverErrors.length > errorsBefore) {
          throw new Error(`the HTTP layer failed on ${where}:\n${serverErrors.slice(errorsBefore).join('\n').slice(0, 2000)}`);
        }
      }),
      { seed: SEED, numRuns: RUNS.raw },
    );
  });

  it('afterwards, a sample task still runs end to end and nothing leaked', { timeout: 30_000 }, async () => {
    await tidy();
    await server.service.cancel(liveTaskId);
    await server.service.resume();
    // Every fuzzed stream was hung up on: none may linger in the hub or the broker.
    await until(async () => server.hub.size === 0 && (await server.service.stats()).streams === 0, 'every fuzzed stream to close');
    await until(async () => (await server.service.stats()).running === 0, 'cancelled tasks to stop');

    const task = await createAsAlice({ type: 'sample', input: { steps: 3, step_ms: 5 } });
    const client = await SseClient.connect(`${server.url}${task.stream_url}`, asAlice);
    try {
      await client.untilEnd('the sample task stream to end');
      expect(client.types()).toEqual(['task_started', 'progress_update', 'progress_update', 'progress_update', 'task_completed']);
      expect(client.events.at(-1)?.json.data.result).toEqual({ steps_completed: 3 });
    } finally {
      client.close();
    }
    const snapshot = await (await server.api(`/api/tasks/${task.task_id}`, { headers: asAlice })).json();
    expect(snapshot).toMatchObject({ status: 'completed', result: { steps_completed: 3 } });
    expect((await server.api('/readyz')).status).toBe(200);
    expect(Object.getOwnPropertyNames(Object.prototype).sort()).toEqual(prototypeKeys);
  });
});

// ---------------------------------------------------------------------------------------------
// Raw requests: what fetch and node:http refuse to send

/** Statuses Node's HTTP layer answers by itself, without a body, when the request is not HTTP. */
const REJECTED_BEFORE_APP = new Set([400, 408, 413, 414, 417, 431, 505]);

interface RawSpec {
  method: string;
  target: { path: string; query: QuerySpec } | { literal: string };
  version: string;
  host: 'good' | 'none' | 'twice' | 'empty';
  headers: [string, string][];
  body: string;
  lineEnd: '\r\n' | '\n';
}

const RAW_PATHS = [
  '/api/tasks', '/api/tasks/{id}', '/api/tasks/{id}/events', '/api/tasks/{id}/cancel', '/api/tasks/{id}/retry', '/api/events',
  '/api/tasks/stats', '/api/queue/pause', '/api/reaper', '/healthz', '/', '/docs', '/openapi.yaml', '/metrics',
];

const rawRequest: fc.Arbitrary<RawSpec> = fc.record({
  method: fc.oneof(
    { weight: 6, arbitrary: fc.constantFrom('GET', 'POST', 'DELETE', 'HEAD', 'PUT', 'PATCH', 'OPTIONS') },
    { weight: 1, arbitrary: fc.constantFrom('get', 'FOO', 'G ET', '', 'PRI', 'CONNECT', 'TRACE', 'M-SEARCH', 'PROPFIND', 'GET\t') },
  ),
  target: fc.oneof(
    { weight: 5, arbitrary: fc.record({ path: fc.constantFrom(...RAW_PATHS), query }) },
    {
      weight: 2,
      arbitrary: fc
        .oneof(
          fc.constantFrom(
            '*', '', '/', '//', 'api/tasks', 'http://127.0.0.1/api/tasks', 'https://evil.example/api/tasks', 'http://[::1/', '/api/tasks/a b',
            '/api/tasks/\u00e9', '/api/tasks/\u00ff\u00fe', '/api/tasks/%', '/\u0000', '/api/tasks?x=\u00e9', '/../../etc/passwd', '/api/tasks/..\\..',
            '/api/tasks/' + 'a'.repeat(20_000),
          ),
          fc.string({ unit: 'binary-ascii', maxLength: 40 }).map((value) => `/api/tasks/${value}`),
        )
        .map((literal) => ({ literal })),
    },
  ),
  version: fc.oneof(
    { weight: 8, arbitrary: fc.constant('HTTP/1.1') },
    { weight: 1, arbitrary: fc.constantFrom('HTTP/1.0', 'HTTP/0.9', 'HTTP/2.0', 'HTTP/1.1x', 'HTTP/1', 'http/1.1', '') },
  ),
  host: fc.constantFrom<RawSpec['host']>('good', 'good', 'good', 'good', 'none', 'twice', 'empty'),
  headers: fc.array(
    fc.oneof(
      fc.tuple(fc.constantFrom('Content-Type'), contentType.map(headerSafe)),
      fc.tuple(fc.constantFrom('Content-Length'), fc.constantFrom('0', '2', '10', '-1', '1e3', '99999999999999999999', ' 5', '0x10', 'abc')),
      fc.tuple(fc.constantFrom('Transfer-Encoding'), fc.constantFrom('chunked', 'gzip', 'chunked, chunked', 'identity', 'gzip, chunked', 'xchunked')),
      fc.tuple(fc.constantFrom('Last-Event-ID', 'Idempotency-Key', 'Accept', 'Expect', 'Connection'), text.map(headerSafe)),
      fc.tuple(fc.constantFrom('Expect', 'Connection', 'Upgrade'), fc.constantFrom('100-continue', 'close', 'keep-alive', 'Upgrade', 'websocket', 'h2c')),
      fc.tuple(fc.constantFrom('X Bad', 'X:Bad', '', 'X-\u00e9', ' Leading', 'X-Fold'), fc.constantFrom('v', '\r\n continued', '\u0000', 'a\rb')),
      fc.tuple(fc.constantFrom('X-Big'), fc.integer({ min: 1, max: 20_000 }).map((length) => 'b'.repeat(length))),
    ),
    { maxLength: 5 },
  ),
  body: fc.oneof(
    fc.constant(''),
    body.map((bytes) => (bytes.length > 4096 ? bytes.subarray(0, 4096) : bytes).toString('latin1')),
    fc.constantFrom('0\r\n\r\n', '5\r\nhello\r\n0\r\n\r\n', 'zz\r\n', '2\r\n{}\r\n0\r\n\r\n', 'ffffffffffffffff\r\n'),
  ),
  lineEnd: fc.constantFrom<RawSpec['lineEnd']>('\r\n', '\r\n', '\r\n', '\n'),
});

function buildRaw(spec: RawSpec, known: string[]): Buffer {
  const id = known[0] ?? '';
  const target =
    'literal' in spec.target ? spec.target.literal : spec.target.path.replace('{id}', id) + resolveQuery(spec.target.query, known);
  const eol = spec.lineEnd;
  const lines = [[spec.method, target, spec.version].filter((part) => part !== '').join(' ')];
  if (spec.host === 'good' || spec.host === 'twice') lines.push(`Host: 127.0.0.1:${port}`);
  if (spec.host === 'twice') lines.push('Host: other.example');
  if (spec.host === 'empty') lines.push('Host:');
  for (const [name, value] of spec.headers) lines.push(`${name}: ${value}`);
  const hasLength = spec.headers.some(([name]) => name === 'Content-Length' || name === 'Transfer-Encoding');
  if (!hasLength && spec.body !== '') lines.push(`Content-Length: ${Buffer.byteLength(spec.body, 'latin1')}`);
  return Buffer.from(lines.join(eol) + eol + eol + spec.body, 'latin1');
}

interface RawAnswer {
  status: number;
  headers: Record<string, string>;
  body: string;
  /** The whole body arrived (by Content-Length); an event stream or chunked body is not read. */
  complete: boolean;
}

/**
 * Writes the bytes, half-closes, and reads the first answer's head (and its body when it has a
 * Content-Length). Undefined if the server closes without answering or the deadline passes.
 * The half-close means the parser is never left waiting: an incomplete request is answered
 * 400 by Node at end of input.
 */
function rawExchange(bytes: Buffer): Promise<RawAnswer | undefined> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    let received = Buffer.alloc(0);
    let settled = false;
    const finish = (answer: RawAnswer | undefined) => {
      if (settled) return;
      settled = true;
      clearTimeout(deadline);
      socket.destroy();
      resolve(answer);
    };
    const parse = (final: boolean) => {
      const headEnd = received.indexOf('\r\n\r\n');
      if (headEnd < 0) {
        if (final) finish(undefined);
        return;
      }
      const head = received.subarray(0, headEnd).toString('latin1').split('\r\n');
      const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(head[0] ?? '')?.[1] ?? 0);
      if (status >= 100 && status < 200) {
        // 100 Continue (for Expect: 100-continue): the answer follows.
        received = received.subarray(headEnd + 4);
        parse(final);
        return;
      }
      const headers: Record<string, string> = {};
      for (const line of head.slice(1)) {
        const colon = line.indexOf(':');
        headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
      }
      const rest = received.subarray(headEnd + 4);
      const length = headers['content-length'] === undefined ? undefined : Number(headers['content-length']);
      if (length !== undefined && rest.length < length && !final) return;
      const complete = length !== undefined && rest.length >= length;
      const bodyText = rest.subarray(0, length ?? rest.length).toString('utf8');
      finish({ status, headers, body: bodyText, complete });
    };
    const deadline = setTimeout(() => parse(true), ANSWER_MS);
    socket.on('data', (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      parse(false);
    });
    socket.on('end', () => parse(true));
    socket.on('close', () => parse(true));
    socket.on('error', () => parse(true));
    socket.end(bytes);
  });
}

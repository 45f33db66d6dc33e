import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { SseHub } from './http/sse.ts';
import type { TaskService } from './service.ts';

const DURATION_BUCKETS = [0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600];

/**
 * Prometheus metrics for one service instance, in a registry of its own (so several
 * instances in one process, as in tests, do not collide).
 */
export function createMetrics(service: TaskService, hub: SseHub): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'taskstream_' });

  const tasksCreated = new Counter({
    name: 'taskstream_tasks_created_total',
    help: 'Tasks accepted, by type',
    labelNames: ['type'],
    registers: [registry],
  });
  const tasksEnded = new Counter({
    name: 'taskstream_tasks_total',
    help: 'Tasks that ended, by type and final status',
    labelNames: ['type', 'status'],
    registers: [registry],
  });
  const duration = new Histogram({
    name: 'taskstream_task_duration_seconds',
    help: 'Run time of ended tasks, from start to end (0 for tasks cancelled while queued)',
    labelNames: ['type', 'status'],
    buckets: DURATION_BUCKETS,
    registers: [registry],
  });
  const queueWait = new Histogram({
    name: 'taskstream_task_queue_wait_seconds',
    help: 'Time from creation to the first start',
    labelNames: ['type'],
    buckets: DURATION_BUCKETS,
    registers: [registry],
  });
  const attempts = new Counter({
    name: 'taskstream_task_attempts_total',
    help: 'Attempts started, by type: a task retried twice counts three',
    labelNames: ['type'],
    registers: [registry],
  });
  const events = new Counter({
    name: 'taskstream_events_published_total',
    help: 'Events published on task streams, by event type',
    labelNames: ['event_type'],
    registers: [registry],
  });
  new Gauge({
    name: 'taskstream_queue_depth',
    help: 'Tasks waiting for a worker',
    registers: [registry],
    async collect() {
      this.set((await service.stats()).queued);
    },
  });
  new Gauge({
    name: 'taskstream_workers_busy',
    help: 'Worker threads running a task',
    registers: [registry],
    async collect() {
      this.set((await service.stats()).running);
    },
  });
  new Gauge({
    name: 'taskstream_workers',
    help: 'Worker threads in the pool',
    registers: [registry],
    async collect() {
      this.set((await service.stats()).maxWorkers);
    },
  });
  new Gauge({
    name: 'taskstream_open_streams',
    help: 'Open SSE streams',
    registers: [registry],
    collect() {
      this.set(hub.size);
    },
  });
  new Gauge({
    name: 'taskstream_tasks_retained',
    help: 'Tasks held in the store (any status)',
    registers: [registry],
    async collect() {
      this.set((await service.stats()).tasks);
    },
  });
  new Gauge({
    name: 'taskstream_retained_bytes',
    help: 'Bytes held for tasks, bounded by MAX_RETAINED_BYTES: inputs, results and errors, and the replay logs (JSON)',
    registers: [registry],
    async collect() {
      this.set(await service.retainedBytes());
    },
  });

  const seconds = (from: string, to: string) => (Date.parse(to) - Date.parse(from)) / 1000;
  // Labelled children looked up once per label set: prom-client hashes the labels on every
  // call otherwise, several times per task.
  const created = childrenOf((type: string) => tasksCreated.labels({ type }));
  const waited = childrenOf((type: string) => queueWait.labels({ type }));
  const attempted = childrenOf((type: string) => attempts.labels({ type }));
  const ended = childrenOf((key: string) => {
    const [type, status] = key.split('\u0000') as [string, string];
    return { count: tasksEnded.labels({ type, status }), duration: duration.labels({ type, status }) };
  });
  const published = childrenOf((eventType: string) => events.labels({ event_type: eventType }));
  service.on('transition', (record) => {
    // A failed attempt that will be retried goes back to `queued` (attempt ≥ 1) and starts
    // again: those are attempts, not new tasks, and the task's wait in the queue ended at
    // its first start.
    if (record.status === 'queued') {
      if (record.attempt === 0) created(record.type).inc();
    } else if (record.status === 'running') {
      attempted(record.type).inc();
      if (record.attempt === 1) waited(record.type).observe(seconds(record.created_at, record.started_at!));
    } else {
      const { count, duration: ran } = ended(`${record.type}\u0000${record.status}`);
      count.inc();
      ran.observe(record.started_at ? seconds(record.started_at, record.finished_at!) : 0);
    }
  });
  service.on('published', (eventType) => published(eventType).inc());
  return registry;
}

/** A memo of `make` by key: each labelled child is made once. */
function childrenOf<T>(make: (key: string) => T): (key: string) => T {
  const children = new Map<string, T>();
  return (key) => {
    let child = children.get(key);
    if (child === undefined) children.set(key, (child = make(key)));
    return child;
  };
}

/** The chaos run asks the service process for its memory over IPC (see memory-probe.mjs). */
export interface MemoryRequest {
  kind: 'memory';
  id: number;
}

/** The service process's memory after a forced full garbage collection. */
export interface MemoryReply {
  kind: 'memory';
  id: number;
  rssBytes: number;
  heapUsedBytes: number;
  /** Memory outside V8's heap held by JS objects, Buffers and ArrayBuffers included. */
  externalBytes: number;
  /** The most the process has ever held resident. */
  peakRssBytes: number;
  /** CPU time the process (all its threads) has used since it started. */
  cpuMs: number;
}

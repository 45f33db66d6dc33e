// The raw Piscina worker: the same trivial function as the bench_noop task type.
export default function noop(): Record<string, never> {
  return {};
}

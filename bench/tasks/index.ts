// The task types the benchmarks run, by module URL (for startTaskstream's taskModules).
export const benchTaskModules: readonly URL[] = ['noop', 'flood', 'stamp'].map(
  (name) => new URL(`./${name}.ts`, import.meta.url),
);

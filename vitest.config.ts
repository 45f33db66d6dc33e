import { defineConfig } from 'vitest/config';

/**
 * HTTP contract tests that also run against Redis mode (one instance, the test Redis): the
 * same files, with TASKSTREAM_TEST_MODE=redis making startTestServer pick Redis.
 */
const BOTH_MODES = [
  'test/api.test.ts',
  'test/stream.test.ts',
  'test/multiplexed.test.ts',
  'test/features.test.ts',
  'test/features-queue.test.ts',
  'test/features-retry.test.ts',
  'test/execution.test.ts',
  'test/operations.test.ts',
  'test/memory-bound.test.ts',
];

export default defineConfig({
  test: {
    // Each test file starts its own servers and worker threads; a 2-core machine runs two.
    maxWorkers: 2,
    testTimeout: 30_000,
    hookTimeout: 30_000,
    projects: [
      { extends: true, test: { name: 'default', include: ['test/**/*.test.ts'] } },
      { extends: true, test: { name: 'redis', include: BOTH_MODES, env: { TASKSTREAM_TEST_MODE: 'redis' } } },
    ],
  },
});

import { defineConfig } from 'vitest/config';

// Namespace tests share the kernel: run files one at a time so their loads
// never compete for the 2 CPUs or race on interface names.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    fileParallelism: false,
    testTimeout: 60_000,
    hookTimeout: 60_000,
    reporters: ['default'],
  },
});

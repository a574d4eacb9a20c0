// Unit tier: pure logic, no root, seconds.
export default {
  files: ['test/unit/**/*.test.ts'],
  extensions: { ts: 'module' },
  nodeArguments: ['--import=tsx'],
  workerThreads: false,
  timeout: '120s',
};

// netns tier: root, real sockets and addresses in network namespaces. One file at a time: timing bounds
// are measured, and two pairs of daemons on two cores would measure each other.
export default {
  files: ['test/netns/**/*.test.ts'],
  extensions: { ts: 'module' },
  nodeArguments: ['--import=tsx'],
  workerThreads: false,
  concurrency: 1,
  timeout: '180s',
};

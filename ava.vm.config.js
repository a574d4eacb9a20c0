// vm tier: tests that need a kernel with IPVS. ava runs INSIDE one QEMU VM (scripts/run-tests boots it with
// `bash scripts/vm-run -- node_modules/.bin/ava --config ava.vm.config.js --tap`), every vm test file in one boot.
// Files run one at a time: they share the VM's IPVS table, and TCG on two vCPUs is slow enough already. The
// timeout (ava resets it on every result) is generous because everything under TCG is 5-20x slower.
// cache: false because the checkout is mounted read-only in the VM (ava would write node_modules/.cache).
export default {
  files: ['test/vm/**/*.test.ts'],
  extensions: { ts: 'module' },
  nodeArguments: ['--import=tsx'],
  workerThreads: false,
  concurrency: 1,
  cache: false,
  timeout: '600s',
};

// vm2 tier: labs of several QEMU VMs, orchestrated from the host (root): the two-director connection-sync lab
// (src/lab/vm-sync-lab.ts). One test at a time, generous timeouts: two TCG VMs share the host's cores. Run it
// under the machine's VM lock: `flock /tmp/tandem-vm.lock npx ava --config ava.vm2.config.js --tap`.
export default {
  files: ['test/vm2/**/*.test.ts'],
  extensions: { ts: 'module' },
  nodeArguments: ['--import=tsx'],
  workerThreads: false,
  concurrency: 1,
  timeout: '900s',
};

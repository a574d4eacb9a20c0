/**
 * The sync metrics (src/metrics/sync.ts) count what the sync events report: missing entries on the backup,
 * malformed sync datagrams and resync frames by reason, refused peers, thread restarts, injected entries.
 */

import test from 'ava';
import { Registry } from 'prom-client';
import { createSyncMetrics } from '../../src/metrics/index.ts';

test('sync events become counters and gauges', async (t) => {
  const registry = new Registry();
  const m = createSyncMetrics(registry);
  m.observeService({ type: 'repair_checked', generation: 1, differingBuckets: 3, missing: 17, extra: 2 });
  m.observeService({ type: 'sync_datagram_malformed', reason: 'bad_size', detail: '' });
  m.observeService({ type: 'sync_datagram_malformed', reason: 'bad_size', detail: '' });
  m.observeService({ type: 'sync_datagram', entries: 40 });
  m.observeService({ type: 'channel', side: 'server', event: { type: 'malformed', peer: 'x', reason: 'bad_magic', detail: '' } });
  m.observeService({ type: 'channel', side: 'server', event: { type: 'zapDenied', address: '10.0.0.9', publicKey: 'k', detail: 'public key not on the allowlist' } });
  m.observeService({ type: 'resync_received', snapshotId: 1, received: 5000, status: 'ok', durationMs: 1500, scope: 'full' });
  m.observeDaemon({ type: 'daemon_missing', state: 'backup' });
  m.observeInjector({ type: 'injected', result: { entries: 1000, datagrams: 25, bytes: 36_000, rejected: 0, durationMs: 3, backlogWaitMs: 250, kernelDrops: 2 } });
  const text = await registry.metrics();
  t.regex(text, /^tandem_sync_missing_entries 17$/m);
  t.regex(text, /^tandem_sync_extra_entries 2$/m);
  t.regex(text, /^tandem_sync_datagrams_malformed_total\{reason="bad_size"\} 2$/m);
  t.regex(text, /^tandem_sync_datagram_entries_observed_total 40$/m);
  t.regex(text, /^tandem_sync_channel_malformed_total\{side="server",reason="bad_magic"\} 1$/m);
  t.regex(text, /^tandem_sync_channel_refused_total 1$/m);
  t.regex(text, /^tandem_sync_resyncs_received_total\{scope="full",status="ok"\} 1$/m);
  t.regex(text, /^tandem_sync_last_resync_seconds 1\.5$/m);
  t.regex(text, /^tandem_sync_daemon_restarts_total\{state="backup"\} 1$/m);
  t.regex(text, /^tandem_sync_injected_entries_total 1000$/m);
  t.regex(text, /^tandem_sync_inject_kernel_drops_total 2$/m);
  t.regex(text, /^tandem_sync_inject_backlog_wait_seconds_total 0\.25$/m);
});

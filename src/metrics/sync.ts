/**
 * Prometheus metrics of connection sync, fed by the typed events of src/sync (the service, the kernel-thread
 * supervisor, the injector). Registered on the daemon's registry only when the `sync` section exists.
 */

import { Counter, Gauge } from 'prom-client';
import type { Registry } from 'prom-client';
import type { InjectorEvent, SyncDaemonEvent, SyncServiceEvent } from '../sync/index.ts';

export interface SyncMetrics {
  observeService(e: SyncServiceEvent): void;
  observeDaemon(e: SyncDaemonEvent): void;
  observeInjector(e: InjectorEvent): void;
}

export function createSyncMetrics(registry: Registry): SyncMetrics {
  const r = [registry];
  const daemonRunning = new Gauge({ name: 'tandem_sync_daemon_running', help: 'Kernel sync thread running (1) as last set by tandem', labelNames: ['state'], registers: r });
  const daemonRestarts = new Counter({ name: 'tandem_sync_daemon_restarts_total', help: 'Kernel sync threads found missing by the periodic check and restarted', labelNames: ['state'], registers: r });
  const daemonErrors = new Counter({ name: 'tandem_sync_daemon_errors_total', help: 'Netlink errors starting, stopping or listing sync threads', labelNames: ['op'], registers: r });
  const sent = new Counter({ name: 'tandem_sync_resyncs_sent_total', help: 'Snapshots streamed to the peer, by scope and ACK status', labelNames: ['scope', 'status'], registers: r });
  const sendFailed = new Counter({ name: 'tandem_sync_resync_send_failures_total', help: 'Snapshots to the peer abandoned (stalled, gone, no ACK)', registers: r });
  const received = new Counter({ name: 'tandem_sync_resyncs_received_total', help: 'Snapshots received from the peer, by scope and status', labelNames: ['scope', 'status'], registers: r });
  const abandoned = new Counter({ name: 'tandem_sync_resyncs_abandoned_total', help: 'Snapshots from the peer abandoned mid-way', registers: r });
  const lastDuration = new Gauge({ name: 'tandem_sync_last_resync_seconds', help: 'Duration of the last full resync received', registers: r });
  const lastEntries = new Gauge({ name: 'tandem_sync_last_resync_entries', help: 'Entries of the last full resync received', registers: r });
  const missing = new Gauge({ name: 'tandem_sync_missing_entries', help: 'Entries missing on this backup compared with the master, at the last repair check', registers: r });
  const extra = new Gauge({ name: 'tandem_sync_extra_entries', help: 'Entries this backup has beyond the master, at the last repair check', registers: r });
  const checks = new Counter({ name: 'tandem_sync_repair_checks_total', help: 'Digest comparisons with the master', registers: r });
  const observed = new Counter({ name: 'tandem_sync_datagrams_observed_total', help: 'Sync datagrams seen on the sync group (kernel master threads and injection)', registers: r });
  const observedEntries = new Counter({ name: 'tandem_sync_datagram_entries_observed_total', help: 'Entries in the sync datagrams seen', registers: r });
  const malformed = new Counter({ name: 'tandem_sync_datagrams_malformed_total', help: 'Sync datagrams the kernel would drop, by reason', labelNames: ['reason'], registers: r });
  const frameMalformed = new Counter({ name: 'tandem_sync_channel_malformed_total', help: 'Resync frames rejected, by channel end and reason', labelNames: ['side', 'reason'], registers: r });
  const refused = new Counter({ name: 'tandem_sync_channel_refused_total', help: 'Peers refused by the CURVE allowlist (ZAP)', registers: r });
  const handshake = new Counter({ name: 'tandem_sync_channel_handshake_failures_total', help: 'Failed CURVE handshakes, by channel end', labelNames: ['side'], registers: r });
  const injected = new Counter({ name: 'tandem_sync_injected_entries_total', help: 'Entries injected into the local kernel table', registers: r });
  const injectDatagrams = new Counter({ name: 'tandem_sync_injected_datagrams_total', help: 'Sync datagrams sent to the local backup thread', registers: r });
  const injectRejected = new Counter({ name: 'tandem_sync_inject_rejected_total', help: 'Entries that could not be encoded for injection', registers: r });
  const injectKernelDrops = new Counter({ name: 'tandem_sync_inject_kernel_drops_total', help: 'Injected datagrams the kernel dropped because the backup sync socket was full (the repair restores their entries)', registers: r });
  const injectBacklogWait = new Counter({ name: 'tandem_sync_inject_backlog_wait_seconds_total', help: 'Time injection waited for room in the backup sync socket', registers: r });
  const injectErrors = new Counter({ name: 'tandem_sync_inject_errors_total', help: 'Injection socket errors', registers: r });

  return {
    observeService(e) {
      switch (e.type) {
        case 'resync_sent':
          sent.inc({ scope: e.scope, status: e.status });
          return;
        case 'resync_send_failed':
          sendFailed.inc();
          return;
        case 'resync_received':
          received.inc({ scope: e.scope, status: e.status });
          if (e.scope === 'full') {
            lastDuration.set(e.durationMs / 1000);
            lastEntries.set(e.received);
          }
          return;
        case 'resync_abandoned':
          abandoned.inc();
          return;
        case 'repair_checked':
          checks.inc();
          missing.set(e.missing);
          extra.set(e.extra);
          return;
        case 'sync_datagram':
          observed.inc();
          observedEntries.inc(e.entries);
          return;
        case 'sync_datagram_malformed':
          malformed.inc({ reason: e.reason });
          return;
        case 'channel': {
          const c = e.event;
          if (c.type === 'malformed') frameMalformed.inc({ side: e.side, reason: c.reason });
          else if (c.type === 'zapDenied') refused.inc();
          else if (c.type === 'handshakeFailed') handshake.inc({ side: e.side });
          return;
        }
        default:
          return;
      }
    },
    observeDaemon(e) {
      switch (e.type) {
        case 'daemon_started':
          daemonRunning.set({ state: e.state }, 1);
          return;
        case 'daemon_stopped':
          daemonRunning.set({ state: e.state }, 0);
          return;
        case 'daemon_missing':
          daemonRestarts.inc({ state: e.state });
          daemonRunning.set({ state: e.state }, 0);
          return;
        case 'daemon_error':
          daemonErrors.inc({ op: e.op });
          return;
      }
    },
    observeInjector(e) {
      switch (e.type) {
        case 'injected':
          injected.inc(e.result.entries);
          injectDatagrams.inc(e.result.datagrams);
          if (e.result.kernelDrops !== undefined) injectKernelDrops.inc(e.result.kernelDrops);
          injectBacklogWait.inc(e.result.backlogWaitMs / 1000);
          return;
        case 'inject_rejected':
          injectRejected.inc();
          return;
        case 'inject_error':
          injectErrors.inc();
          return;
      }
    },
  };
}

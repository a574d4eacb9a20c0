/**
 * bench sync-resync — the full-table resync rate over loopback ZeroMQ with CURVE: a SyncServer in this process
 * streams synthetic snapshots (default 100k and 1M entries) to a SyncClient in a child process (two directors
 * are two machines, so each end gets its own event loop), and prints entries/s from the first frame to the ACK,
 * MB/s of frames, and the CPU time of the sending process. Then the codec costs alone, per 100k entries, so
 * the figures can be read on a busy machine.
 *
 *   node --import tsx bench/sync-resync.ts
 *   SIZES=100000,1000000,2000000 node --import tsx bench/sync-resync.ts
 */

import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { SyncClient, SyncServer } from '../src/sync/channel.ts';
import { generateKeyPair } from '../src/sync/keys.ts';
import { decodeMessage } from '../src/sync/resync-protocol.ts';
import { snapshotDigest, snapshotFrames } from '../src/sync/snapshot.ts';
import { encodedDatagrams } from '../src/sync/sync-v1.ts';
import { syntheticEntries } from '../src/sync/synthetic.ts';

const SIZES = (process.env.SIZES ?? '100000,1000000').split(',').map(Number);
const cpuMs = (u: NodeJS.CpuUsage): number => (u.user + u.system) / 1000;

async function runClient(): Promise<void> {
  // Child: connect with the keys from the environment, count entries, report each ACKed snapshot on stdout.
  const env = process.env;
  let entries = 0;
  const client = SyncClient.connect({
    endpoint: env.SYNC_ENDPOINT ?? '',
    serverPublicKey: env.SYNC_SERVER_KEY ?? '',
    keys: { publicKey: env.SYNC_CLIENT_PUBLIC ?? '', secretKey: env.SYNC_CLIENT_SECRET ?? '' },
    node: { name: 'bench-client', epoch: 1, role: 'backup' },
    onEntries: (e) => {
      entries += e.length;
    },
  });
  client.events.on((e) => {
    if (e.type === 'snapshotReceived') process.stdout.write(`received ${e.received} ${e.status} cpu ${cpuMs(process.cpuUsage()).toFixed(0)}\n`);
  });
  process.stdin.on('end', () => {
    client.close();
    process.stdout.write(`total ${entries}\n`);
  });
  process.stdin.resume();
}

async function runServer(): Promise<void> {
  const serverKeys = generateKeyPair();
  const clientKeys = generateKeyPair();
  const server = await SyncServer.listen({
    endpoint: 'tcp://127.0.0.1:*', keys: serverKeys, allowedPeers: [clientKeys.publicKey],
    node: { name: 'bench-server', epoch: 1, role: 'master' }, ackTimeoutMs: 300_000,
  });
  const hello = new Promise<string>((resolve) => server.events.on((e) => e.type === 'hello' && resolve(e.peer)));
  const child = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), '--client'], {
    env: {
      ...process.env, SYNC_ENDPOINT: server.endpoint, SYNC_SERVER_KEY: serverKeys.publicKey,
      SYNC_CLIENT_PUBLIC: clientKeys.publicKey, SYNC_CLIENT_SECRET: clientKeys.secretKey,
    },
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const clientLines: string[] = [];
  child.stdout.setEncoding('utf8').on('data', (d: string) => clientLines.push(...d.split('\n').filter((l) => l !== '')));
  try {
    const peer = await hello;
    console.log(`loopback ZeroMQ + CURVE, server ${server.endpoint}, client in a child process`);
    for (const n of SIZES) {
      const retries0 = server.stats.sendRetries;
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      const r = await server.sendSnapshot(peer, syntheticEntries(n), { estimate: n });
      const ms = performance.now() - t0;
      const cpu = cpuMs(process.cpuUsage(c0));
      console.log(
        `${String(n).padStart(8)} entries: ${ms.toFixed(0).padStart(6)} ms  ${String(Math.round(n / (ms / 1000))).padStart(7)} entries/s  ` +
          `${(r.bytes / 1e6 / (ms / 1000)).toFixed(1)} MB/s (${(r.bytes / 1e6).toFixed(1)} MB in ${r.batches} batches)  ack ${r.ack.status}  ` +
          `sender CPU ${cpu.toFixed(0)} ms (${Math.round(n / (cpu / 1000))} entries/CPU-s)  queue-full retries ${server.stats.sendRetries - retries0}`,
      );
    }
  } finally {
    child.stdin.end();
    await new Promise((r) => child.once('exit', r));
    await server.close();
  }
  console.log(`client: ${clientLines.join('; ')}`);

  // The codec alone, per 100k entries, in this process.
  const N = 100_000;
  const frames: Buffer[] = [];
  let c = process.cpuUsage();
  for await (const f of snapshotFrames(syntheticEntries(N), { snapshotId: 1 })) frames.push(f);
  const encodeCpu = cpuMs(process.cpuUsage(c));
  c = process.cpuUsage();
  const d = snapshotDigest();
  for (const f of frames) {
    const m = decodeMessage(f);
    if (m.ok && m.value.type === 'batch') d.addEncoded(m.value.entries);
  }
  const receiveCpu = cpuMs(process.cpuUsage(c));
  c = process.cpuUsage();
  let decoded = 0;
  for (const f of frames) {
    const m = decodeMessage(f);
    if (m.ok && m.value.type === 'batch') for (const e of m.value.entries) decoded += e.cport > 0 ? 1 : 1;
  }
  const decodeCpu = cpuMs(process.cpuUsage(c));
  c = process.cpuUsage();
  let datagrams = 0;
  for (const f of frames) {
    const m = decodeMessage(f);
    if (m.ok && m.value.type === 'batch') for (const _ of encodedDatagrams(m.value.entries, { syncId: 1 })) datagrams++;
  }
  const packCpu = cpuMs(process.cpuUsage(c));
  console.log(`codec per 100k entries (CPU): sender generate + encode + digest ${encodeCpu.toFixed(0)} ms; receiver check + digest in wire form ${receiveCpu.toFixed(0)} ms, check + pack into ${datagrams} sync datagrams ${packCpu.toFixed(0)} ms; decoding all ${decoded} to objects would cost ${decodeCpu.toFixed(0)} ms`);
}

await (process.argv.includes('--client') ? runClient() : runServer());

/**
 * bench sync-parse — how fast /proc/net/ip_vs_conn text becomes connection entries, and that it streams: a
 * synthetic table (default 1M lines) is written to a temp file, then read back through readProcConn while the
 * heap is sampled. Prints lines/s for the file path and for in-memory chunks (no I/O), and the peak heap.
 * Also prints lines per CPU-second (process CPU time), which a busy machine disturbs much less than wall time.
 *
 *   node --import tsx bench/sync-parse.ts            # 1M lines
 *   LINES=200000 node --import tsx bench/sync-parse.ts
 */

import { createWriteStream, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ProcConnParser, readProcConn } from '../src/sync/proc-conn.ts';
import { syntheticProcText } from '../src/sync/synthetic.ts';

const LINES = Number(process.env.LINES ?? 1_000_000);

const cpuMs = (u: NodeJS.CpuUsage): number => (u.user + u.system) / 1000;

async function writeTable(path: string): Promise<void> {
  const out = createWriteStream(path);
  for (const chunk of syntheticProcText(LINES)) {
    if (!out.write(chunk)) await new Promise<void>((r) => out.once('drain', () => r()));
  }
  await new Promise<void>((resolve, reject) => out.end((e?: Error | null) => (e ? reject(e) : resolve())));
}

const dir = mkdtempSync(join(tmpdir(), 'tandem-bench-parse-'));
const path = join(dir, 'ip_vs_conn');
try {
  await writeTable(path);
  const size = statSync(path).size;
  globalThis.gc?.();
  const heapBefore = process.memoryUsage().heapUsed;
  let peak = heapBefore;
  const parser = new ProcConnParser({ fwd: 'droute' });
  let rows = 0;
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  for await (const _row of readProcConn(path, parser)) {
    if (++rows % 50_000 === 0) peak = Math.max(peak, process.memoryUsage().heapUsed);
  }
  const fileMs = performance.now() - t0;
  const fileCpuMs = cpuMs(process.cpuUsage(c0));

  // The same text from memory, chunk by chunk: the parser alone.
  const chunks = [...syntheticProcText(LINES)];
  const mem = new ProcConnParser({ fwd: 'droute' });
  let memRows = 0;
  const c1 = process.cpuUsage();
  const t1 = performance.now();
  for (const c of chunks) memRows += mem.push(c).length;
  memRows += mem.end().length;
  const memMs = performance.now() - t1;
  const memCpuMs = cpuMs(process.cpuUsage(c1));

  const mib = (n: number) => (n / 1048576).toFixed(1);
  console.log(`table: ${LINES} lines, ${mib(size)} MiB`);
  console.log(`file  (readProcConn, 256 KiB reads): ${rows} rows in ${fileMs.toFixed(0)} ms = ${Math.round(parser.stats.lines / (fileMs / 1000))} lines/s; CPU ${fileCpuMs.toFixed(0)} ms = ${Math.round(parser.stats.lines / (fileCpuMs / 1000))} lines/CPU-s; bad ${parser.stats.bad}`);
  console.log(`memory (ProcConnParser.push):        ${memRows} rows in ${memMs.toFixed(0)} ms = ${Math.round(mem.stats.lines / (memMs / 1000))} lines/s; CPU ${memCpuMs.toFixed(0)} ms = ${Math.round(mem.stats.lines / (memCpuMs / 1000))} lines/CPU-s`);
  console.log(`heap while streaming the file: ${mib(heapBefore)} MiB before, ${mib(peak)} MiB peak (rows are not kept)`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}

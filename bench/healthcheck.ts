/**
 * bench:healthcheck — health checks per second, CPU share and memory of the checking process for 5,000 TCP
 * and 5,000 HTTP targets on loopback, through the real stack (HealthMonitor -> Scheduler -> ProbeHub ->
 * checkers, SystemClock). Goal: >= 10,000 checks/s using under half a core.
 *
 * The targets live in a child process (plain JavaScript under `node -e`), so the CPU and RSS figures are the
 * checker's alone: 5,000 addresses 127.1.x.y, each with a TCP listener on port 7001 and an HTTP listener on
 * port 7002 that answers `200 OK` with a 2-byte body. No root needed, but file descriptors are: the child holds
 * 10,000 listeners plus the connections being served, so `ulimit -n` must be at least 12,000 (the bench says
 * so and stops otherwise).
 *
 *   npm run bench:healthcheck                     # 20 s, 5,000 + 5,000 targets, 1 s interval, then an 8 s floor
 *   FLOOR_SECONDS=0 npm run bench:healthcheck     # without the raw-socket floor
 *   SECONDS_RUN=60 TCP=5000 HTTP=5000 INTERVAL_MS=1000 npm run bench:healthcheck
 */

import { spawn } from 'node:child_process';
import net from 'node:net';
import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { SystemClock } from '../src/lib/clock.ts';
import { HealthMonitor, withDefaults } from '../src/healthcheck/index.ts';
import type { CheckReason } from '../src/healthcheck/index.ts';

const TCP_PORT = 7001;
const HTTP_PORT = 7002;
const HTTP_REPLY = 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok';

/** The i-th target address: 127.1.0.1 .. 127.1.0.250, 127.1.1.1, ... (no .0 or .255). */
function addressOf(i: number): string {
  return `127.1.${Math.floor(i / 250)}.${(i % 250) + 1}`;
}

/** The soft limit on open files, from /proc/self/limits. */
function openFilesLimit(): number {
  const line = readFileSync('/proc/self/limits', 'utf8').split('\n').find((l) => l.startsWith('Max open files'));
  const soft = line?.split(/\s{2,}/)[1];
  return soft === undefined || soft === 'unlimited' ? Infinity : Number(soft);
}

// ---------------------------------------------------------------- target process

/**
 * The targets, as plain JavaScript run by `node -e` (no TypeScript loader: its source-map support makes every
 * ECONNRESET the targets see expensive). TCP targets accept and wait for the checker's reset; HTTP targets
 * answer the first bytes with HTTP_REPLY and close.
 */
const TARGETS_JS = `
const net = require('node:net');
const [count, tcpPort, httpPort, reply] = JSON.parse(process.argv[1]);
const addressOf = (i) => '127.1.' + Math.floor(i / 250) + '.' + ((i % 250) + 1);
const listen = (server, host, port) => new Promise((resolve, reject) => {
  server.once('error', reject);
  server.listen({ host, port, backlog: 1024 }, resolve);
});
(async () => {
  for (let i = 0; i < count; i++) {
    const tcp = net.createServer((s) => { s.on('error', () => {}); s.on('end', () => s.destroy()); });
    const http = net.createServer((s) => { s.on('error', () => {}); s.once('data', () => s.end(reply)); });
    await listen(tcp, addressOf(i), tcpPort);
    await listen(http, addressOf(i), httpPort);
  }
  process.send({ ready: 2 * count });
})().catch((e) => { console.error('targets:', e.message); process.exit(1); });
process.on('disconnect', () => process.exit(0));
`;

// ---------------------------------------------------------------- floor: raw node sockets

/**
 * The same connections without tandem: plain `net.connect` at a fixed rate, TCP checks reset at connect, HTTP
 * checks send a request and reset at the first reply bytes. On loopback much of a check's cost is the kernel's
 * TCP work for both ends (the target's SYN-ACK and accept run in the checker's connect), so this floor, measured
 * in the same run on the same targets, is the yardstick for what tandem's scheduling and parsing add.
 */
async function measureFloor(nTcp: number, nHttp: number, intervalMs: number, seconds: number): Promise<{ rate: number; usPerCheck: number; cores: number }> {
  const tcpRate = (nTcp * 1000) / intervalMs;
  const httpRate = (nHttp * 1000) / intervalMs;
  const request = 'GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n';
  let done = 0;
  let iTcp = 0;
  let iHttp = 0;
  const one = (http: boolean): void => {
    const i = http ? iHttp++ % Math.max(1, nHttp) : iTcp++ % Math.max(1, nTcp);
    const s = net.connect({ host: addressOf(i), port: http ? HTTP_PORT : TCP_PORT });
    const t = setTimeout(() => s.destroy(), 1000);
    s.on('error', () => clearTimeout(t));
    s.once('connect', () => {
      if (!http) {
        clearTimeout(t);
        s.resetAndDestroy();
        done++;
        return;
      }
      s.write(request);
      s.once('data', () => {
        clearTimeout(t);
        s.resetAndDestroy();
        done++;
      });
    });
  };
  const tickMs = 10;
  let owedTcp = 0;
  let owedHttp = 0;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const iv = setInterval(() => {
    owedTcp += (tcpRate * tickMs) / 1000;
    owedHttp += (httpRate * tickMs) / 1000;
    for (; owedTcp >= 1; owedTcp--) one(false);
    for (; owedHttp >= 1; owedHttp--) one(true);
  }, tickMs);
  await new Promise((r) => setTimeout(r, seconds * 1000));
  clearInterval(iv);
  const wall = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  await new Promise((r) => setTimeout(r, 1200));
  return { rate: done / wall, usPerCheck: (cpu.user + cpu.system) / Math.max(1, done), cores: (cpu.user + cpu.system) / 1e6 / wall };
}

// ---------------------------------------------------------------- checking process

function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] ?? NaN;
}

async function main(): Promise<void> {
  const nTcp = Number(process.env['TCP'] ?? 5000);
  const nHttp = Number(process.env['HTTP'] ?? 5000);
  const seconds = Number(process.env['SECONDS_RUN'] ?? 20);
  const intervalMs = Number(process.env['INTERVAL_MS'] ?? 1000);
  const targets = Math.max(nTcp, nHttp);
  const needFds = 2 * targets + 2000;
  const limit = openFilesLimit();
  console.log(`targets: ${nTcp} TCP + ${nHttp} HTTP on ${targets} loopback addresses; interval ${intervalMs} ms; ${seconds} s`);
  console.log(`ulimit -n: ${limit} (the target process needs about ${needFds})`);
  console.log(`machine: ${cpus().length} CPUs, load average ${loadavg().map((l) => l.toFixed(1)).join(' ')}`);
  if (limit < needFds) {
    console.error(`FAIL: open-file limit ${limit} is below ${needFds}; run \`ulimit -n ${Math.max(needFds, 16384)}\` first (as root, or raise the hard limit)`);
    process.exit(2);
  }

  const child: ChildProcess = spawn(process.execPath, ['-e', TARGETS_JS, JSON.stringify([targets, TCP_PORT, HTTP_PORT, HTTP_REPLY])], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  await new Promise<void>((resolve, reject) => {
    child.once('message', () => resolve());
    child.once('exit', (code) => reject(new Error(`target process exited with ${code}`)));
  });
  console.log(`target process up: ${2 * targets} listeners`);

  const clock = new SystemClock();
  const monitor = new HealthMonitor({ clock });
  const perType = { tcp: 0, http: 0 };
  const reasons = new Map<CheckReason, number>();
  let latencies: number[] = [];
  let measuring = false;
  monitor.events.on((e) => {
    if (e.type !== 'check_result' || !measuring) return;
    if (e.check === 'tcp') perType.tcp++;
    else perType.http++;
    reasons.set(e.result.reason, (reasons.get(e.result.reason) ?? 0) + 1);
    if (latencies.length < 200_000) latencies.push(e.result.durationMs);
  });
  const common = { intervalMs, timeoutMs: 1000, rise: 1, fall: 1 };
  const tcpSpec = withDefaults({ type: 'tcp', ...common });
  const httpSpec = withDefaults({ type: 'http', path: '/health', ...common });
  for (let i = 0; i < nTcp; i++) monitor.watch(`tcp/${i}`, { address: addressOf(i), port: TCP_PORT }, tcpSpec);
  for (let i = 0; i < nHttp; i++) monitor.watch(`http/${i}`, { address: addressOf(i), port: HTTP_PORT }, httpSpec);
  console.log(`watching ${monitor.probeCount} probes; warming up for ${(2 * intervalMs) / 1000} s (staggered start)`);

  await new Promise((r) => setTimeout(r, 2 * intervalMs));
  measuring = true;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  let rssMax = 0;
  const lagSamples: number[] = [];
  let last = performance.now();
  const ticker = setInterval(() => {
    const now = performance.now();
    lagSamples.push(Math.max(0, now - last - 100));
    last = now;
    rssMax = Math.max(rssMax, process.memoryUsage().rss);
  }, 100);
  await new Promise((r) => setTimeout(r, seconds * 1000));
  clearInterval(ticker);
  measuring = false;
  const wall = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const rss = process.memoryUsage().rss;
  monitor.stop();
  await new Promise((r) => setTimeout(r, 1500));
  const floorSeconds = Math.min(seconds, Number(process.env['FLOOR_SECONDS'] ?? 8));
  const floor = floorSeconds > 0 ? await measureFloor(nTcp, nHttp, intervalMs, floorSeconds) : undefined;
  child.disconnect();

  const total = perType.tcp + perType.http;
  const cores = (cpu.user + cpu.system) / 1e6 / wall;
  latencies = latencies.sort((a, b) => a - b);
  lagSamples.sort((a, b) => a - b);
  const rate = total / wall;
  console.log('');
  console.log(`checks/s        ${rate.toFixed(0)}  (TCP ${(perType.tcp / wall).toFixed(0)}, HTTP ${(perType.http / wall).toFixed(0)}; expected ${((nTcp + nHttp) * 1000 / intervalMs).toFixed(0)})`);
  console.log(`results         ${[...reasons].map(([r, n]) => `${r} ${n}`).join(', ')}`);
  console.log(`CPU             ${(cores * 100).toFixed(1)} % of one core (user ${(cpu.user / 1e6 / wall * 100).toFixed(1)} %, system ${(cpu.system / 1e6 / wall * 100).toFixed(1)} %)`);
  console.log(`CPU per check   ${((cpu.user + cpu.system) / Math.max(1, total)).toFixed(1)} us`);
  console.log(`check latency   p50 ${quantile(latencies, 0.5).toFixed(2)} ms, p99 ${quantile(latencies, 0.99).toFixed(2)} ms, max ${quantile(latencies, 1).toFixed(2)} ms`);
  console.log(`event-loop lag  p99 ${quantile(lagSamples, 0.99).toFixed(1)} ms, max ${quantile(lagSamples, 1).toFixed(1)} ms`);
  console.log(`RSS             ${(rss / 1048576).toFixed(0)} MiB at the end, ${(rssMax / 1048576).toFixed(0)} MiB max`);
  console.log(`machine load    ${loadavg().map((l) => l.toFixed(1)).join(' ')} on ${cpus().length} CPUs`);
  if (floor !== undefined) {
    const usPerCheck = (cpu.user + cpu.system) / Math.max(1, total);
    console.log(`floor           raw node sockets, same targets and rates, no tandem: ${floor.rate.toFixed(0)} checks/s, ${(floor.cores * 100).toFixed(1)} % of one core, ${floor.usPerCheck.toFixed(1)} us per check`);
    console.log(`tandem adds     ${(usPerCheck - floor.usPerCheck).toFixed(1)} us per check over the floor (${(usPerCheck / floor.usPerCheck).toFixed(2)}x); 10,000 checks/s at the floor's cost would take ${((floor.usPerCheck * 10_000) / 1e6 * 100).toFixed(0)} % of one core`);
  }
  if (quantile(lagSamples, 0.99) > 200) {
    console.log('note: the event loop lagged by more than 200 ms: this process did not get the CPU it asked for (a busy');
    console.log('      machine, or the target process starving it); checks/s is then a lower bound and CPU per check the');
    console.log('      figure to extrapolate from. On loopback each connect/close syscall also carries the kernel TCP work');
    console.log("      of the target's side, so CPU per check is higher than against remote servers.");
  }
  const ok = rate >= 10_000 && cores < 0.5;
  console.log(`goal (>= 10,000 checks/s under half a core): ${ok ? 'met' : 'NOT met'}`);
  process.exit(0);
}

await main();

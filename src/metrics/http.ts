/** The Prometheus scrape endpoint: GET /metrics on the configured host:port; everything else is 404. */

import http from 'node:http';
import type { Registry } from 'prom-client';
import { ERROR_CODES, TandemError } from '../lib/errors.ts';

/** Parses `host:port` or `[v6]:port`. */
export function parseListen(listen: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(listen);
  const port = Number(m?.[3]);
  if (m === null || !(port > 0 && port < 65536)) throw new TandemError(ERROR_CODES.config, `metrics.listen must be host:port, got ${listen}`);
  return { host: m[1] ?? m[2] ?? '127.0.0.1', port };
}

/** Serves the registry; resolves once listening. */
export async function serveMetrics(registry: Registry, listen: string): Promise<http.Server> {
  const { host, port } = parseListen(listen);
  const server = http.createServer((req, res) => {
    if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
      res.writeHead(404).end();
      return;
    }
    registry.metrics().then(
      (body) => res.writeHead(200, { 'content-type': registry.contentType }).end(body),
      () => res.writeHead(500).end(),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e) => reject(new TandemError(ERROR_CODES.config, `cannot serve metrics on ${listen}: ${e.message}`, { cause: e })));
    server.listen(port, host, () => resolve());
  });
  return server;
}

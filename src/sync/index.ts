/**
 * Connection sync, public surface: the connection-entry domain type, the kernel's sync protocol v1 codec, the
 * /proc/net/ip_vs_conn parser, the table digest, the resync protocol (codec and pure snapshot core), CURVE
 * keys, and the ZeroMQ channel. Other folders import from here only.
 */

export * from './conn.ts';
export * from './errors.ts';
export * from './sync-v1.ts';
export * from './proc-conn.ts';
export * from './digest.ts';
export * from './resync-protocol.ts';
export * from './snapshot.ts';
export * from './keys.ts';
export * from './channel.ts';
export * from './synthetic.ts';
export * from './daemons.ts';
export * from './injector.ts';
export * from './backlog.ts';
export * from './mcast.ts';
export * from './service.ts';

/**
 * The codec of the backup socket probe (src/sync/backlog.ts): /proc/net/udp lines, the address form the file
 * prints, and the receive buffer size the kernel gives the backup thread's socket.
 */

import test from 'ava';
import { backupSocketCapacity, parseProcUdp, procUdpAddress } from '../../src/sync/backlog.ts';

// As a kernel with a backup thread on 224.0.0.81:8848 and a listener next to it prints it (kernel 6.1).
const PROC_UDP = `   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  123: 510000E0:2290 00000000:0000 07 00000000:0001B300 00:00000000 00000000     0        0 21474 2 ffff8880053f2000 17
  123: 510000E0:2290 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 30211 2 ffff8880053f2440 0
  380: 0100007F:0035 00000000:0000 07 00000000:00000000 00:00000000 00000000   101        0 1234 2 ffff8880053f2880 0
  garbage line
`;

test('/proc/net/udp: local address, receive queue (hex), inode and drops of every socket line', (t) => {
  t.deepEqual(parseProcUdp(PROC_UDP), [
    { local: '510000E0:2290', rxQueue: 0x1b300, inode: 21474, drops: 17 },
    { local: '510000E0:2290', rxQueue: 0, inode: 30211, drops: 0 },
    { local: '0100007F:0035', rxQueue: 0, inode: 1234, drops: 0 },
  ]);
  t.deepEqual(parseProcUdp(''), []);
});

test('the local address as the file prints it: 32-bit words in host order, port in hex', (t) => {
  t.is(procUdpAddress('224.0.0.81', 8848, 'LE'), '510000E0:2290');
  t.is(procUdpAddress('127.0.0.1', 53, 'LE'), '0100007F:0035');
  t.is(procUdpAddress('ff02::12', 8848, 'LE'), '000002FF000000000000000012000000:2290');
  t.is(procUdpAddress('224.0.0.81', 8848, 'BE'), 'E0000051:2290');
  t.throws(() => procUdpAddress('not an address', 1), { instanceOf: RangeError });
});

test('backup socket capacity: twice sync_sock_size capped by rmem_max, else rmem_default', (t) => {
  t.is(backupSocketCapacity(0, 16 << 20, 212_992), 212_992);
  t.is(backupSocketCapacity(8 << 20, 16 << 20, 212_992), 16 << 20);
  t.is(backupSocketCapacity(8 << 20, 1 << 20, 212_992), 2 << 20);
});

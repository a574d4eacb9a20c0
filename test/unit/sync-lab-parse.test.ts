/**
 * The sync labs read two kernel tools' output: `ipvsadm -Lnc` (which client ports a director's table holds)
 * and `tc -s qdisc show` (what the netem loss did). Their parsers, against output of the shapes those tools print.
 */

import test from 'ava';
import { clientPortsIn, netemCounts } from '../../src/lab/sync-lab.ts';

const IPVSADM_LNC = `IPVS connection entries
pro expire state       source             virtual            destination
TCP 14:59  ESTABLISHED 10.99.0.10:40312   10.99.0.100:80     10.99.0.21:80
TCP 14:58  ESTABLISHED 10.99.0.10:40314   10.99.0.100:80     10.99.0.22:80
TCP 14:57  ESTABLISHED 10.99.0.10:40400   10.99.0.100:81     10.99.1.31:81
TCP 00:59  SYN_RECV    10.99.0.11:40500   10.99.0.100:80     10.99.0.21:80
`;

test('client ports of the lab client per service port, from ipvsadm -Lnc', (t) => {
  t.deepEqual([...clientPortsIn(IPVSADM_LNC)].sort(), [40312, 40314]);
  t.deepEqual([...clientPortsIn(IPVSADM_LNC, 81)], [40400]);
  t.deepEqual([...clientPortsIn('')], []);
});

const TC_QDISC = `qdisc prio 1: root refcnt 2 bands 3 priomap 1 2 2 2 1 2 0 0 1 1 1 1 1 1 1 1
 Sent 9876 bytes 60 pkt (dropped 0, overlimits 0 requeues 0)
 backlog 0b 0p requeues 0
qdisc netem 30: parent 1:3 limit 1000 loss 30%
 Sent 4416 bytes 13 pkt (dropped 2, overlimits 0 requeues 0)
 backlog 0b 0p requeues 0
`;

test('what netem passed and dropped, from tc -s qdisc show; nothing when it is absent', (t) => {
  t.deepEqual(netemCounts(TC_QDISC), { sent: 13, dropped: 2 });
  t.deepEqual(netemCounts('qdisc noqueue 0: root refcnt 2\n Sent 0 bytes 0 pkt (dropped 0, overlimits 0 requeues 0)\n'), { sent: 0, dropped: 0 });
});

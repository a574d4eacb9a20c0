/**
 * Runs inside a lab namespace (node cannot change namespace itself) for the election's netns tests:
 *   capture BIND PORT COUNT OUTFILE       write COUNT received datagrams as hex lines to OUTFILE
 *   replay INFILE DEST PORT REPEAT MS     send the captured datagrams again, REPEAT rounds, MS apart
 *   forge DEST PORT VRID PRIORITY SENDER REPEAT MS
 *                                         send adverts signed with a random (wrong) key
 */

import dgram from 'node:dgram';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { encodeAdvert } from '../../src/vrrp/codec.ts';
import { AdvertSigner, SequenceSource, senderIdOf } from '../../src/vrrp/auth.ts';

const [cmd, ...a] = process.argv.slice(2);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function sendAll(frames: Buffer[], dest: string, port: number, repeat: number, ms: number): Promise<void> {
  const s = dgram.createSocket('udp4');
  for (let i = 0; i < repeat; i++) {
    for (const f of frames) await new Promise<void>((r) => s.send(f, port, dest, () => r()));
    await sleep(ms);
  }
  s.close();
}

if (cmd === 'capture') {
  const [bind = '0.0.0.0', port = '5112', count = '5', out = '/dev/stdout'] = a;
  const got: string[] = [];
  const s = dgram.createSocket('udp4');
  s.on('message', (m) => {
    got.push(m.toString('hex'));
    if (got.length >= Number(count)) {
      writeFileSync(out, got.join('\n') + '\n');
      s.close();
    }
  });
  s.bind(Number(port), bind, () => process.stdout.write('ready\n'));
} else if (cmd === 'replay') {
  const [file = '', dest = '', port = '5112', repeat = '1', ms = '10'] = a;
  const frames = readFileSync(file, 'utf8').trim().split('\n').map((h) => Buffer.from(h, 'hex'));
  await sendAll(frames, dest, Number(port), Number(repeat), Number(ms));
} else if (cmd === 'forge') {
  const [dest = '', port = '5112', vrid = '51', prio = '255', sender = '10.99.0.9', repeat = '10', ms = '10'] = a;
  const signer = new AdvertSigner([{ id: 1, secret: randomBytes(32) }], 1, senderIdOf('intruder'), new SequenceSource(0xfffffff0, () => 0xfffffff1));
  const frames = [signer.sign(encodeAdvert({ vrid: Number(vrid), priority: Number(prio), advertIntervalCs: 1, family: 4, sender, addresses: [] }))];
  await sendAll(frames, dest, Number(port), Number(repeat), Number(ms));
} else {
  process.stderr.write('usage: advert-tool capture|replay|forge ...\n');
  process.exit(2);
}

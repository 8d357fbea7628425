/** A throw-away CA with a controller and a switch certificate (openssl CLI), for TLS tests. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { runSync } from '../../../src/util/exec.js';

export interface TestCerts {
  dir: string;
  caPath: string;
  ca: Buffer;
  controller: { key: Buffer; cert: Buffer };
  switch: { keyPath: string; certPath: string; key: Buffer; cert: Buffer };
}

export function makeCerts(dir: string): TestCerts {
  const key = (name: string) => runSync(['openssl', 'genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-out', join(dir, `${name}.key`)]);
  key('ca');
  runSync(['openssl', 'req', '-x509', '-new', '-key', join(dir, 'ca.key'), '-out', join(dir, 'ca.pem'), '-days', '2', '-subj', '/CN=tenet-test-ca']);
  for (const name of ['controller', 'switch']) {
    key(name);
    runSync(['openssl', 'req', '-new', '-key', join(dir, `${name}.key`), '-out', join(dir, `${name}.csr`), '-subj', `/CN=${name}`]);
    runSync([
      'openssl',
      'x509',
      '-req',
      '-in',
      join(dir, `${name}.csr`),
      '-CA',
      join(dir, 'ca.pem'),
      '-CAkey',
      join(dir, 'ca.key'),
      '-CAcreateserial',
      '-out',
      join(dir, `${name}.pem`),
      '-days',
      '2',
    ]);
  }
  const r = (f: string) => readFileSync(join(dir, f));
  return {
    dir,
    caPath: join(dir, 'ca.pem'),
    ca: r('ca.pem'),
    controller: { key: r('controller.key'), cert: r('controller.pem') },
    switch: { keyPath: join(dir, 'switch.key'), certPath: join(dir, 'switch.pem'), key: r('switch.key'), cert: r('switch.pem') },
  };
}

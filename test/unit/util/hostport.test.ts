/** The one host:port parser (API and OpenFlow listen addresses). */
import t from 'tap';
import { UsageError } from '../../../src/util/errors.js';
import { parseHostPort } from '../../../src/util/hostport.js';

t.test('parseHostPort', async (t) => {
  t.same(parseHostPort('127.0.0.1:6680', 'x'), { host: '127.0.0.1', port: 6680 });
  t.same(parseHostPort(' [::1]:0 ', 'x'), { host: '::1', port: 0 });
  t.same(parseHostPort(':80', 'x'), { host: '0.0.0.0', port: 80 }, 'an empty host is the wildcard');
  t.throws(() => parseHostPort('localhost', '--api'), { constructor: UsageError, code: 'EUSAGE', message: "--api must be host:port, got 'localhost'" });
  t.throws(() => parseHostPort('a:70000', 'x'), UsageError);
  t.throws(() => parseHostPort('::1:80', 'x'), UsageError, 'IPv6 needs brackets');
});

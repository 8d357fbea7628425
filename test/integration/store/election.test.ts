/** Leader election on a real etcd: two clients (two daemons) on one etcd elect exactly one leader. */
import t from 'tap';
import { EtcdStore } from '../../../src/store/index.js';
import { startEtcd } from '../../helpers/etcd.js';
import { electionCases } from '../../helpers/election-cases.js';

const etcd = await startEtcd();
t.teardown(() => etcd.stop());

electionCases(
  t,
  async () => {
    const a = new EtcdStore({ endpoints: [etcd.endpoint] });
    const b = new EtcdStore({ endpoints: [etcd.endpoint] });
    return {
      a,
      b,
      close: async () => {
        await a.close();
        await b.close();
      },
    };
  },
  2,
);

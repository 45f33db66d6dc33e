import { Session } from 'node:inspector';
import { writeFileSync } from 'node:fs';
const session = new Session(); session.connect();
const post = (m, p) => new Promise((res, rej) => session.post(m, p ?? {}, (e, r) => (e ? rej(e) : res(r))));
process.on('SIGUSR2', async () => {
  const { profile } = await post('HeapProfiler.stopSampling');
  writeFileSync('/tmp/hp/alloc.heapprofile', JSON.stringify(profile));
  console.error('heap profile written');
});
process.on('SIGUSR1', async () => {
  await post('HeapProfiler.enable');
  await post('HeapProfiler.startSampling', { samplingInterval: 4096, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true });
  console.error('sampling');
});

import { runFullSeed } from './fullstack_run.js';
const rep: any = await runFullSeed(Number(process.argv[2]));
console.log(JSON.stringify(rep.snapshots.refusals), JSON.stringify(rep.snapshots.installs));
const fp = JSON.parse(rep.fingerprint);
for (const t of fp.trace) if (!/ certified /.test(t)) console.log(t);

// `proofkv` from the built dist/ (what an installed package runs), for benchmarks run in a checkout:
// bin/proofkv.js runs the TypeScript sources through tsx there, which transpiles at start-up and in
// every worker thread. `bench/cluster.ts` builds dist/ first (`npm run build`) unless `--source`.
const { main } = await import('../dist/server/cli.js');
await main(process.argv).catch((err) => {
  process.stderr.write(`proofkv: ${String(err?.message ?? err)}\n`);
  process.exitCode = 1;
});

// ONNX Runtime (CPU) baseline for bench/model_vs_peers.sh: times the models
// exported by export.py.
//
// Usage: node bench/ort/run.js MODELDIR CASES ITERS
//   CASES: comma-separated MODE:BATCH, MODE embed (MODELDIR/embed.onnx) or
//   reconstruct (MODELDIR/reconstruct.onnx), e.g. embed:8,embed:1,reconstruct:8
// Prints "MODE:BATCH images/s" per case, best of ITERS timed runs after one
// warm-up, with THREADS (default 2) intra-op threads, one inter-op thread
// and every graph optimisation; per second of process CPU time when
// MEASURE=cpu.
'use strict';
const path = require('path');
const ort = require('onnxruntime-node');

function rand(n, lo, hi) {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = lo + (hi - lo) * Math.random();
  return a;
}

async function main() {
  const [dir, cases, itersS] = process.argv.slice(2);
  const iters = Number(itersS);
  const sessions = {};
  for (const c of cases.split(',')) {
    const [mode, batchS] = c.split(':');
    const batch = Number(batchS);
    if (!sessions[mode]) {
      sessions[mode] = await ort.InferenceSession.create(path.join(dir, mode + '.onnx'), {
        executionProviders: ['cpu'],
        graphOptimizationLevel: 'all',
        intraOpNumThreads: Number(process.env.THREADS || 2),
        interOpNumThreads: 1,
        executionMode: 'sequential',
      });
    }
    const s = sessions[mode];
    const feeds = { images: new ort.Tensor('float32', rand(batch * 3 * 224 * 224, -2, 2), [batch, 3, 224, 224]) };
    if (mode === 'reconstruct') feeds.noise = new ort.Tensor('float32', rand(batch * 196, 0, 1), [batch, 196]);
    await s.run(feeds);
    let best = Infinity;
    const cpu = process.env.MEASURE === 'cpu';
    for (let i = 0; i < iters; i++) {
      const t = process.hrtime.bigint(), u = process.cpuUsage();
      await s.run(feeds);
      const d = process.cpuUsage(u);
      best = Math.min(best, cpu ? (d.user + d.system) / 1e6 : Number(process.hrtime.bigint() - t) / 1e9);
    }
    console.log(`${c} ${(batch / best).toFixed(3)}`);
  }
}
main().catch((e) => { console.error(e); process.exit(1); });

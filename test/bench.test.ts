// The benchmark's smoke mode, so the bench keeps running as the code changes. No timing is
// asserted: only that every section is measured and reported.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { fileURLToPath } from "node:url";

const BENCH = fileURLToPath(new URL("../bench/run.js", import.meta.url));
const work = mkdtempSync(join(tmpdir(), "trainer-bench-"));
after(() => rmSync(work, { recursive: true, force: true }));

test("bench smoke run reports every section", () => {
  const output = join(work, "smoke.json");
  const result = spawnSync(process.execPath, [BENCH, "--smoke", "--output", output], {
    encoding: "utf8",
    timeout: 300_000,
  });
  assert.equal(result.status, 0, result.stderr);
  assert.match(result.stdout, /roofline: .* GFLOP\/s/);
  assert.match(result.stdout, /conv-net kernels/);
  assert.match(result.stdout, /training throughput/);
  assert.match(result.stdout, /step breakdown/);

  const report = JSON.parse(readFileSync(output, "utf8"));
  assert.ok(report.machine.cpuModel);
  assert.ok(report.machine.cores >= 1);
  assert.ok(report.machine.node);
  assert.ok(report.roofline.gflops > 0);
  assert.ok(report.kernels["conv-net"].length > 0);
  assert.ok(report.kernels["conv-blur-net"].length > 0);
  assert.equal(report.throughput.length, 4 * 2, "4 nets at 1 and 2 threads");
  for (const figure of report.throughput) {
    assert.ok(figure.imagesPerSecond.every((rate: number) => rate > 0));
    assert.ok(figure.maxRssBytes > 0);
    assert.ok(figure.profile.steps >= 1);
  }
});

// dist/diagram.js as a user runs it: an SVG graph of each network's layers, shapes and parameters.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { fileURLToPath } from "node:url";

import { createNetwork, NET_NAMES } from "../src/index.js";

const DIAGRAM = fileURLToPath(new URL("../diagram.js", import.meta.url));

const workDirectory = mkdtempSync(join(tmpdir(), "trainer-diagram-"));
after(() => rmSync(workDirectory, { recursive: true, force: true }));

function run(args: string[], cwd = workDirectory) {
  const result = spawnSync(process.execPath, [DIAGRAM, ...args], {
    encoding: "utf8",
    cwd,
    timeout: 120_000,
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** Extracts the contents of the SVG's <text> elements, trimmed, with character references decoded. */
function svgTexts(svg: string): string[] {
  return [...svg.matchAll(/<text[^>]*>([^<]*)<\/text>/g)].map((match) =>
    match[1]
      .replace(/&#(\d+);/g, (_, code: string) => String.fromCodePoint(Number(code)))
      .replace(/&lt;/g, "<")
      .replace(/&gt;/g, ">")
      .replace(/&quot;/g, '"')
      .replace(/&amp;/g, "&")
      .trim(),
  );
}

/** Texts each network's diagram must contain, besides the shared checks. */
const EXPECTED_TEXTS: Record<string, string[]> = {
  linear: ["28×28×1", "flatten", "784", "fc: dense 784 → 10", "7,850 parameters", "10"],
  "single-layer": ["fc1: dense 784 → 300", "leaky ReLU, slope 0.01", "fc2: dense 300 → 10"],
  "conv-net": [
    "28×28×1",
    "conv1: conv 3×3, 16 filters, pad 1",
    "28×28×16",
    "max pool 2×2, stride 2",
    "14×14×16",
    "conv2: conv 3×3, 32 filters, pad 1, 2 groups",
    "weight 32×8×3×3 + bias 32",
    "7×7×32",
    "1568",
    "dropout 0.5 (training only)",
    "fc1: dense 1568 → 128",
    "200,832 parameters",
  ],
  "conv-blur-net": [
    "28×28×1",
    "max pool 2×2, stride 1",
    "27×27×16",
    "blur 3×3 per channel, stride 2, pad 1",
    "14×14×16",
    "13×13×32",
    "7×7×32",
    "fc2: dense 128 → 10",
  ],
};

describe("diagram.js graphs", () => {
  for (const net of NET_NAMES) {
    test(`${net} diagram`, () => {
      const output = join(workDirectory, `${net}.svg`);
      const { status, stderr } = run(["--net", net, "-o", output]);
      assert.equal(status, 0, stderr);
      const svg = readFileSync(output, "utf8");
      assert.match(svg, /<svg[^>]*xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
      const texts = svgTexts(svg);

      const parameterCount = createNetwork(net).parameterCount;
      const total = `${net}: ${parameterCount.toLocaleString("en-US")} trainable parameters`;
      assert.ok(texts.includes(total), `title "${total}" among ${JSON.stringify(texts)}`);
      for (const expected of EXPECTED_TEXTS[net]) {
        assert.ok(texts.includes(expected), `"${expected}" among ${JSON.stringify(texts)}`);
      }

      const layerCounts = texts
        .map((text) => /^([\d,]+) parameters$/.exec(text))
        .filter((match) => match !== null)
        .map((match) => Number(match[1].replace(/,/g, "")));
      assert.equal(
        layerCounts.reduce((sum, count) => sum + count, 0),
        parameterCount,
        "per-layer counts add up to the total",
      );
    });
  }

  test("output defaults to net name", () => {
    const { status, stderr } = run(["--net", "linear"]);
    assert.equal(status, 0, stderr);
    assert.ok(existsSync(join(workDirectory, "linear.svg")));
  });
});

describe("diagram.js errors", () => {
  test("unknown net exits with 2", () => {
    const { status, stderr } = run(["--net", "resnet"]);
    assert.equal(status, 2);
    assert.match(stderr, /'resnet' is invalid.*linear, single-layer, conv-net, conv-blur-net/);
    assert.doesNotMatch(stderr, /\n\s+at /);
  });

  test("missing net exits with 2", () => {
    const { status, stderr } = run([]);
    assert.equal(status, 2);
    assert.match(stderr, /--net <name>.* not specified/);
  });

  test("unwritable output exits with 2", () => {
    const output = join(workDirectory, "no-such-directory", "net.svg");
    const { status, stderr } = run(["--net", "linear", "-o", output]);
    assert.equal(status, 2);
    assert.match(stderr, /cannot write .*no-such-directory/);
    assert.doesNotMatch(stderr, /\n\s+at /);
  });
});

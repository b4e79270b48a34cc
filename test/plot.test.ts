// dist/plot.js as a user runs it: an SVG chart of a statistics CSV, and rejected files.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { fileURLToPath } from "node:url";

const PLOT = fileURLToPath(new URL("../plot.js", import.meta.url));
const HEADER = "# epoch, train_loss, test_loss, train_accuracy, test_accuracy";

const workDirectory = mkdtempSync(join(tmpdir(), "trainer-plot-"));
after(() => rmSync(workDirectory, { recursive: true, force: true }));

function run(args: string[]) {
  const result = spawnSync(process.execPath, [PLOT, ...args], {
    encoding: "utf8",
    timeout: 120_000,
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

function writeCsv(name: string, text: string): string {
  const path = join(workDirectory, name);
  writeFileSync(path, text);
  return path;
}

/** Two trials of three epochs, as train.js --csv-file-name writes them. */
const TWO_TRIALS = [
  HEADER,
  "1, 0.6398519058227539, 0.4594835876464844, 0.7686, 0.8348",
  "2, 0.4367117828369141, 0.4003528564453125, 0.8433166666666667, 0.8552",
  "3, 0.3893, 0.3782, 0.8602, 0.8631",
  "",
  HEADER,
  "1, 0.65, 0.47, 0.76, 0.83",
  "2, 0.44, 0.41, 0.84, 0.85",
  "3, 0.39, 0.38, 0.86, 0.862",
  "",
  "",
].join("\n");

/** Extracts the contents of the SVG's <text> elements, with character references decoded. */
function svgTexts(svg: string): string[] {
  return [...svg.matchAll(/<text[^>]*>([^<]*)<\/text>/g)].map((match) =>
    match[1]
      .replace(/&#(\d+);/g, (_, code: string) => String.fromCodePoint(Number(code)))
      .replace(/&lt;/g, "<")
      .replace(/&gt;/g, ">")
      .replace(/&quot;/g, '"')
      .replace(/&amp;/g, "&"),
  );
}

describe("plot.js chart", () => {
  test("two trials render as svg", () => {
    const csv = writeCsv("stats.csv", TWO_TRIALS);
    const svgPath = join(workDirectory, "chart.svg");
    const { status, stderr } = run([csv, "-o", svgPath]);
    assert.equal(status, 0, stderr);
    const svg = readFileSync(svgPath, "utf8");
    assert.match(svg, /^<svg[^>]*xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);

    // One line per trial and series: 2 trials × 4 series.
    const lines = svg.match(/<g class="mark-line role-mark[^"]*"[^>]*><path /g) ?? [];
    assert.equal(lines.length, 8);

    const texts = svgTexts(svg);
    for (const expected of [
      "stats.csv",
      "2 trials, 3 epochs",
      "epoch",
      "loss (mean cross-entropy)",
      "accuracy (fraction correct)",
      "training loss",
      "test loss",
      "training accuracy",
      "test accuracy",
    ]) {
      assert.ok(texts.includes(expected), `a <text> "${expected}" among ${JSON.stringify(texts)}`);
    }
  });

  test("output defaults to csv name", () => {
    const csv = writeCsv("default-name.csv", TWO_TRIALS);
    const { status, stderr } = run([csv]);
    assert.equal(status, 0, stderr);
    assert.ok(existsSync(join(workDirectory, "default-name.svg")));
  });

  test("single trial without trailing blank", () => {
    const csv = writeCsv("one.csv", `${HEADER}\n1, 0.5, 0.6, 0.8, 0.7`);
    const svgPath = join(workDirectory, "one.svg");
    const { status, stderr } = run([csv, "-o", svgPath]);
    assert.equal(status, 0, stderr);
    const texts = svgTexts(readFileSync(svgPath, "utf8"));
    assert.ok(texts.includes("1 trial, 1 epoch"), JSON.stringify(texts));
  });

  test("non-finite values accepted", () => {
    const csv = writeCsv(
      "diverged.csv",
      `${HEADER}\n1, 0.5, 0.6, 0.8, 0.7\n2, NaN, Infinity, 0.1, 0.1\n`,
    );
    const { status, stderr } = run([csv, "-o", join(workDirectory, "diverged.svg")]);
    assert.equal(status, 0, stderr);
  });
});

describe("plot.js errors", () => {
  const cases: [string, string, RegExp][] = [
    ["empty file", "", /contains no epoch rows/],
    ["header only", `${HEADER}\n`, /contains no epoch rows/],
    ["text value", `${HEADER}\n1, 0.5, abc, 0.8, 0.7\n`, /line 2: test_loss "abc" is not a number/],
    [
      "four columns",
      `${HEADER}\n1, 0.5, 0.6, 0.8\n`,
      /line 2: expected 5 comma-separated values.*got 4/,
    ],
    [
      "fractional epoch",
      `${HEADER}\n1.5, 0.5, 0.6, 0.8, 0.7\n`,
      /line 2: epoch "1\.5" is not a positive integer/,
    ],
    [
      "other columns",
      "# epoch, loss, accuracy\n1, 0.5, 0.8\n",
      /line 1: the header names the columns epoch, loss, accuracy, expected epoch, train_loss/,
    ],
    [
      "epoch goes back",
      `${HEADER}\n1, 0.5, 0.6, 0.8, 0.7\n2, 0.5, 0.6, 0.8, 0.7\n1, 0.5, 0.6, 0.8, 0.7\n`,
      /line 4: epoch 1 follows epoch 2 in the same trial/,
    ],
  ];
  for (const [name, text, message] of cases) {
    test(`${name} exits with 2`, () => {
      const csv = writeCsv(`${name.replace(/ /g, "-")}.csv`, text);
      const { status, stderr } = run([csv, "-o", join(workDirectory, "bad.svg")]);
      assert.equal(status, 2, stderr);
      assert.match(stderr, message);
      assert.equal(stderr.trim().split("\n").length, 1, `one line: ${stderr}`);
    });
  }

  test("missing file exits with 2", () => {
    const { status, stderr } = run([join(workDirectory, "absent.csv")]);
    assert.equal(status, 2);
    assert.match(stderr, /cannot read .*absent\.csv/);
    assert.doesNotMatch(stderr, /\n\s+at /);
  });

  test("missing argument exits with 2", () => {
    const { status, stderr } = run([]);
    assert.equal(status, 2);
    assert.match(stderr, /missing required argument 'statistics'/);
  });

  test("svg input rejected as output", () => {
    const path = writeCsv("stats.svg", TWO_TRIALS);
    const { status, stderr } = run([path]);
    assert.equal(status, 2);
    assert.match(stderr, /would replace .*stats\.svg/);
    assert.equal(readFileSync(path, "utf8"), TWO_TRIALS);
  });
});

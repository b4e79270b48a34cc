// npm run bench: the roofline probe, per-kernel throughput, end-to-end training throughput per
// thread count (each in a fresh process, with its peak memory), the step breakdown, the data
// load time, and with --peers the same recipe in PyTorch, run alternately with ours.
// Prints tables and writes bench/results/<timestamp>.json.
import { spawnSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { cpus, totalmem } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

import { Command, Option } from "commander";

import { loadFashionMnist, locateDataDirectory } from "../src/data/index.js";
import { NET_NAMES, type NetName } from "../src/nets/index.js";
import { measureKernels, type KernelFigure } from "./kernels.js";
import { measureRoofline } from "./roofline.js";
import type { ThroughputFigure } from "./throughput.js";

const here = dirname(fileURLToPath(import.meta.url));
const repositoryRoot = join(here, "..", "..");
const PEER_SCRIPT = join(repositoryRoot, "bench", "peers", "pytorch_fashion.py");

interface BenchOptions {
  nets: NetName[];
  threads: number[];
  miniBatchSize: number;
  steps: number;
  runs: number;
  peers: boolean;
  smoke: boolean;
  output?: string;
}

interface PeerFigure {
  net: NetName;
  threads: number;
  imagesPerSecond: number[];
  torch: string;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

function spread(values: number[]): string {
  return `${Math.round(Math.min(...values))}–${Math.round(Math.max(...values))}`;
}

function list<T>(parse: (item: string) => T) {
  return (text: string): T[] => text.split(",").map((item) => parse(item.trim()));
}

function positiveInteger(text: string): number {
  const value = Number(text);
  if (!Number.isInteger(value) || value < 1)
    throw new Error(`expected a positive integer, got "${text}"`);
  return value;
}

function netName(text: string): NetName {
  if (!(NET_NAMES as readonly string[]).includes(text)) {
    throw new Error(`unknown net "${text}": choose from ${NET_NAMES.join(", ")}`);
  }
  return text as NetName;
}

function parseOptions(): BenchOptions {
  const command = new Command()
    .name("npm run bench --")
    .description("Measure kernel and end-to-end training throughput, optionally next to PyTorch.")
    .addOption(
      new Option("--nets <list>", "comma-separated networks")
        .argParser(list(netName))
        .default(["conv-net", "conv-blur-net", "linear", "single-layer"]),
    )
    .addOption(
      new Option("--threads <list>", "comma-separated thread counts")
        .argParser(list(positiveInteger))
        .default([1, 2, 4, 8]),
    )
    .addOption(new Option("--mini-batch-size <images>").argParser(positiveInteger).default(1000))
    .addOption(
      new Option("--steps <count>", "mini-batches per timed run")
        .argParser(positiveInteger)
        .default(5),
    )
    .addOption(
      new Option("--runs <count>", "timed runs after a warm-up (median reported)")
        .argParser(positiveInteger)
        .default(3),
    )
    .addOption(
      new Option(
        "--peers",
        "also run the PyTorch recipe in bench/peers/ alternately with ours",
      ).default(false),
    )
    .addOption(
      new Option(
        "--smoke",
        "a few seconds on generated images: checks that the bench runs",
      ).default(false),
    )
    .addOption(
      new Option("--output <file>", "JSON results file (default: bench/results/<timestamp>.json)"),
    )
    .parse();
  const options = command.opts<BenchOptions>();
  if (options.smoke) {
    return { ...options, threads: [1, 2], miniBatchSize: 100, steps: 1, runs: 1, peers: false };
  }
  return options;
}

function runChild(
  command: string,
  args: string[],
): { ok: true; json: unknown } | { ok: false; error: string } {
  const result = spawnSync(command, args, {
    encoding: "utf8",
    cwd: repositoryRoot,
    maxBuffer: 1 << 24,
  });
  if (result.error) return { ok: false, error: result.error.message };
  if (result.status !== 0)
    return { ok: false, error: (result.stderr || result.stdout).trim().split("\n").pop() ?? "" };
  try {
    return { ok: true, json: JSON.parse(result.stdout.trim().split("\n").pop() ?? "") };
  } catch {
    return { ok: false, error: `unreadable output: ${result.stdout.slice(0, 200)}` };
  }
}

/** Finds a Python that can import torch: python3 on the PATH, then Debian's /usr/bin/python3. */
function findTorchPython(): { python: string | null; reason: string } {
  for (const python of ["python3", "/usr/bin/python3"]) {
    const probe = spawnSync(python, ["-c", "import torch; print(torch.__version__)"], {
      encoding: "utf8",
    });
    if (probe.status === 0) return { python, reason: `torch ${probe.stdout.trim()} via ${python}` };
  }
  return {
    python: null,
    reason: '`python3 -c "import torch"` failed; on Debian: apt-get install -y python3-torch',
  };
}

function ours(options: BenchOptions, net: NetName, threads: number): ThroughputFigure {
  const args = [
    join(here, "throughput.js"),
    "--net",
    net,
    "--threads",
    String(threads),
    "--mini-batch-size",
    String(options.miniBatchSize),
    "--steps",
    String(options.steps),
    "--runs",
    String(options.runs),
  ];
  if (options.smoke) args.push("--synthetic");
  const result = runChild(process.execPath, args);
  if (!result.ok)
    throw new Error(`throughput of ${net} at ${threads} threads failed: ${result.error}`);
  return result.json as ThroughputFigure;
}

function theirs(
  options: BenchOptions,
  python: string,
  net: NetName,
  threads: number,
): PeerFigure | string {
  const result = runChild(python, [
    PEER_SCRIPT,
    "--net",
    net,
    "--threads",
    String(threads),
    "--mini-batch-size",
    String(options.miniBatchSize),
    "--steps",
    String(options.steps),
    "--runs",
    String(options.runs),
  ]);
  return result.ok ? (result.json as PeerFigure) : result.error;
}

function measureDataLoad(): number[] | null {
  let directory: string;
  try {
    directory = locateDataDirectory({});
  } catch {
    return null;
  }
  const seconds: number[] = [];
  for (let i = 0; i < 3; i++) {
    const started = performance.now();
    loadFashionMnist(directory);
    seconds.push((performance.now() - started) / 1000);
  }
  return seconds;
}

function printTable(title: string, header: string[], rows: (string | number)[][]): void {
  const cells = [header, ...rows.map((row) => row.map(String))];
  const widths = header.map((_, column) => Math.max(...cells.map((row) => row[column].length)));
  console.log(`\n${title}`);
  for (const [index, row] of cells.entries()) {
    console.log(
      row
        .map((cell, column) =>
          column === 0 ? cell.padEnd(widths[column]) : cell.padStart(widths[column]),
        )
        .join("  "),
    );
    if (index === 0) console.log(widths.map((width) => "-".repeat(width)).join("  "));
  }
}

async function main(): Promise<void> {
  const options = parseOptions();
  const startedAt = new Date();
  const machine = {
    cpuModel: cpus()[0]?.model ?? "unknown",
    cores: cpus().length,
    memoryBytes: totalmem(),
    node: process.version,
    platform: `${process.platform} ${process.arch}`,
  };
  console.log(`machine: ${machine.cpuModel}, ${machine.cores} cores, Node ${machine.node}`);

  const roofline = measureRoofline(options.smoke ? { side: 64, repeats: 1, runs: 1 } : {});
  console.log(
    `roofline: register-tiled float32 matrix multiply, ${roofline.gflops.toFixed(2)} GFLOP/s on one thread`,
  );

  const kernelNets = options.nets.filter(
    (net): net is "conv-net" | "conv-blur-net" => net === "conv-net" || net === "conv-blur-net",
  );
  const kernels: Record<string, KernelFigure[]> = {};
  for (const net of kernelNets) {
    kernels[net] = measureKernels({
      net,
      images: options.smoke ? 50 : options.miniBatchSize,
      repeats: options.smoke ? 1 : 3,
    });
    printTable(
      `${net} kernels (one thread, ${options.smoke ? 50 : options.miniBatchSize} images in chunks of 50; GFLOP/s counts every multiply-add, zeros included)`,
      ["layer", "pass", "µs/image", "GFLOP/s", "of roofline"],
      kernels[net].map((figure) => [
        figure.layer,
        figure.pass,
        figure.microsecondsPerImage.toFixed(1),
        figure.gflops ? figure.gflops.toFixed(2) : "-",
        figure.gflops ? `${Math.round((100 * figure.gflops) / roofline.gflops)}%` : "-",
      ]),
    );
  }

  const peer = options.peers ? findTorchPython() : { python: null, reason: "run with --peers" };
  if (options.peers && !peer.python) console.log(`\npeers: skipped, ${peer.reason}`);

  const throughput: ThroughputFigure[] = [];
  const peers: PeerFigure[] = [];
  for (const net of options.nets) {
    for (const threads of options.threads) {
      // Ours, then theirs, for each thread count: the two share whatever the machine is doing.
      throughput.push(ours(options, net, threads));
      if (peer.python) {
        const figure = theirs(options, peer.python, net, threads);
        if (typeof figure === "string")
          console.log(`peers: ${net} at ${threads} threads failed: ${figure}`);
        else peers.push(figure);
      }
    }
  }

  printTable(
    `training throughput (mini-batch ${options.miniBatchSize}, Adam, ${options.steps} steps per run, median of ${options.runs} runs after a warm-up)`,
    [
      "net",
      "threads",
      "images/s",
      "range",
      "vs 1 thread",
      "peak RSS MB",
      ...(peer.python ? ["PyTorch images/s", "ours / PyTorch"] : []),
    ],
    throughput.map((figure) => {
      const rate = median(figure.imagesPerSecond);
      const single = throughput.find((other) => other.net === figure.net && other.threads === 1);
      const peerFigure = peers.find(
        (other) => other.net === figure.net && other.threads === figure.threads,
      );
      const row: (string | number)[] = [
        figure.net,
        figure.threads,
        Math.round(rate),
        spread(figure.imagesPerSecond),
        single ? `${(rate / median(single.imagesPerSecond)).toFixed(2)}×` : "-",
        Math.round(figure.maxRssBytes / 2 ** 20),
      ];
      if (peer.python) {
        row.push(peerFigure ? Math.round(median(peerFigure.imagesPerSecond)) : "-");
        row.push(peerFigure ? `${(rate / median(peerFigure.imagesPerSecond)).toFixed(2)}×` : "-");
      }
      return row;
    }),
  );

  printTable(
    "step breakdown (share of step wall time; worker compute = summed task time / min(threads, shards))",
    ["net", "threads", "ms/step", "worker compute", "reduce", "optimizer", "dispatch/idle"],
    throughput.map((figure) => {
      const p = figure.profile;
      const shards = Math.ceil(figure.miniBatchSize / 50);
      const compute = p.workerSeconds / Math.min(figure.threads, shards);
      const percent = (seconds: number) => `${((100 * seconds) / p.stepSeconds).toFixed(1)}%`;
      return [
        figure.net,
        figure.threads,
        ((1000 * p.stepSeconds) / p.steps).toFixed(1),
        percent(compute),
        percent(p.reduceSeconds),
        percent(p.optimizerSeconds),
        percent(Math.max(0, p.shardPhaseSeconds - compute)),
      ];
    }),
  );

  const dataLoad = options.smoke ? null : measureDataLoad();
  if (dataLoad)
    console.log(`\ndata load and validation: ${median(dataLoad).toFixed(2)} s (median of 3)`);

  const output =
    options.output ??
    join(
      repositoryRoot,
      "bench",
      "results",
      `${startedAt.toISOString().replace(/[:.]/g, "-")}.json`,
    );
  mkdirSync(dirname(output), { recursive: true });
  writeFileSync(
    output,
    JSON.stringify(
      {
        startedAt: startedAt.toISOString(),
        machine,
        settings: options,
        roofline,
        kernels,
        throughput,
        peers: { reason: peer.reason, figures: peers },
        dataLoadSeconds: dataLoad,
      },
      null,
      2,
    ) + "\n",
  );
  console.log(`\nresults: ${output}`);
}

await main();

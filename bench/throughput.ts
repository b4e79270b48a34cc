// End-to-end training throughput of one network at one thread count, in a process of its own so
// that its peak resident memory is its own. Prints one JSON object on stdout.
//
// node dist/bench/throughput.js --net conv-net --threads 2 [--steps 4] [--runs 3] [--synthetic]
import { readFileSync } from "node:fs";

import { Command, Option } from "commander";

import { loadFashionMnist, locateDataDirectory, type FashionMnist } from "../src/data/index.js";
import { NET_NAMES, type NetName } from "../src/nets/index.js";
import {
  emptyStepProfile,
  Trainer,
  type StepProfile,
  type TrainingSettings,
} from "../src/training/trainer.js";
import { syntheticFashionMnist } from "../src/data/synthetic.js";

export interface ThroughputFigure {
  net: NetName;
  threads: number;
  miniBatchSize: number;
  steps: number;
  /** Training images per second of each timed run, after one warm-up run. */
  imagesPerSecond: number[];
  /** Summed over the timed runs. */
  profile: StepProfile;
  /** Peak resident set size of this process, in bytes. */
  maxRssBytes: number;
  dataLoadSeconds: number;
  data: "fashion-mnist" | "synthetic";
}

function loadData(
  synthetic: boolean,
  images: number,
): { data: FashionMnist; kind: ThroughputFigure["data"] } {
  if (synthetic) return { data: syntheticFashionMnist(images, 250), kind: "synthetic" };
  return { data: loadFashionMnist(locateDataDirectory({})), kind: "fashion-mnist" };
}

/**
 * Returns this process's peak resident set size. On Linux it reads VmHWM from /proc/self/status:
 * getrusage's maxRSS (process.resourceUsage) survives exec, so a child spawned by a large parent
 * would report at least the parent's size. Elsewhere it falls back to maxRSS.
 */
function peakResidentBytes(): number {
  try {
    const match = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync("/proc/self/status", "utf8"));
    if (match) return Number(match[1]) * 1024;
  } catch {
    // No procfs: use getrusage below.
  }
  return process.resourceUsage().maxRSS * 1024;
}

export async function measureThroughput(options: {
  net: NetName;
  threads: number;
  miniBatchSize: number;
  steps: number;
  runs: number;
  synthetic: boolean;
}): Promise<ThroughputFigure> {
  const images = options.steps * options.miniBatchSize;
  const loadStarted = performance.now();
  const { data, kind } = loadData(options.synthetic, images);
  const dataLoadSeconds = (performance.now() - loadStarted) / 1000;
  if (images > data.train.count) {
    throw new Error(
      `${options.steps} steps of ${options.miniBatchSize} images exceed the training set`,
    );
  }

  const settings: TrainingSettings = {
    net: options.net,
    optimizer: "adam",
    learningRate: 0.005,
    weightDecay: 1e-8,
    miniBatchSize: options.miniBatchSize,
    epochCount: 1,
    trialCount: options.runs + 1,
    seed: 0,
    trainCount: images,
    testCount: 250,
  };
  const trainer = new Trainer(settings, data, options.threads);
  const imagesPerSecond: number[] = [];
  try {
    await trainer.runTrial(0); // warm-up: thread start, JIT, first-touch of every buffer
    trainer.profile = emptyStepProfile();
    for (let run = 1; run <= options.runs; run++) {
      const { results } = await trainer.runTrial(run);
      imagesPerSecond.push(results[0].imagesPerSecond);
    }
  } finally {
    await trainer.close();
  }
  return {
    net: options.net,
    threads: options.threads,
    miniBatchSize: options.miniBatchSize,
    steps: options.steps,
    imagesPerSecond,
    profile: trainer.profile,
    maxRssBytes: peakResidentBytes(),
    dataLoadSeconds,
    data: kind,
  };
}

async function main(): Promise<void> {
  const positive = (text: string) => {
    const value = Number(text);
    if (!Number.isInteger(value) || value < 1)
      throw new Error(`expected a positive integer, got ${text}`);
    return value;
  };
  const command = new Command()
    .name("node dist/bench/throughput.js")
    .addOption(new Option("--net <name>").choices(NET_NAMES).default("conv-net"))
    .addOption(new Option("--threads <count>").argParser(positive).default(2))
    .addOption(new Option("--mini-batch-size <images>").argParser(positive).default(1000))
    .addOption(
      new Option("--steps <count>", "mini-batches per timed run").argParser(positive).default(4),
    )
    .addOption(
      new Option("--runs <count>", "timed runs after the warm-up").argParser(positive).default(3),
    )
    .addOption(
      new Option("--synthetic", "use generated images instead of Fashion-MNIST").default(false),
    )
    .parse();
  const options = command.opts<{
    net: NetName;
    threads: number;
    miniBatchSize: number;
    steps: number;
    runs: number;
    synthetic: boolean;
  }>();
  console.log(JSON.stringify(await measureThroughput(options)));
}

if (import.meta.url === new URL(process.argv[1], "file:").href) await main();

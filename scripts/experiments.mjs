// npm run experiments: trains every network with the published recipe and regenerates docs/:
// per network the CSV, its plot and the network diagram, and docs/RESULTS.md.
//
// Each network's run keeps a checkpoint in docs/checkpoints/NET/ and appends its events to
// docs/logs/NET.jsonl, so a stopped run resumes where it stopped when this script runs again.
// The CSV is rebuilt from the log's epoch events, so it covers the epochs of every session.
//
// Options: --only NET[,NET...] to run some networks, --threads N (default: available
// parallelism), --report-only to skip training. Results do not depend on the thread count.
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { availableParallelism, cpus } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

import { CSV_HEADER, formatCsvRow } from "../dist/src/training/csv.js";

const root = fileURLToPath(new URL("..", import.meta.url));
const docs = join(root, "docs");
const EPOCHS = 40;

// Test accuracy after 40 epochs reported for the same recipe in the README of sjb3d/descent
// (examples/fashion_mnist), the Rust project this trainer's recipe follows.
const EXPERIMENTS = [
  { net: "linear", trials: 4, published: "just under 85%" },
  { net: "single-layer", trials: 4, published: "about 89%" },
  { net: "conv-net", trials: 1, published: "about 92%" },
  { net: "conv-blur-net", trials: 1, published: "about 92.5%" },
];

function parseArguments(argv) {
  const options = { only: null, reportOnly: false, threads: availableParallelism() };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--only") options.only = argv[++i].split(",");
    else if (argv[i] === "--threads") options.threads = Number(argv[++i]);
    else if (argv[i] === "--report-only") options.reportOnly = true;
    else
      throw new Error(
        `unknown option ${argv[i]}: use --only NET[,NET...], --threads N or --report-only`,
      );
  }
  if (!Number.isInteger(options.threads) || options.threads < 1) {
    throw new Error("--threads takes a positive integer");
  }
  return options;
}

function run(command, args) {
  console.log(`$ ${[command, ...args].join(" ")}`);
  const result = spawnSync(command, args, { cwd: root, stdio: "inherit" });
  if (result.status === 130 || result.status === 143) {
    // The trainer wrote its checkpoint before exiting: the next run of this script resumes.
    console.log("stopped by a signal; run npm run experiments again to resume");
    process.exit(result.status);
  }
  if (result.status !== 0) {
    throw new Error(`${args[0]} exited with ${result.status ?? result.signal}`);
  }
}

function readEvents(path) {
  if (!existsSync(path)) return [];
  return readFileSync(path, "utf8")
    .split("\n")
    .filter((line) => line.trim() !== "")
    .map((line) => JSON.parse(line));
}

/** Returns the last epoch event of every (trial, epoch) in the log, in trial and epoch order. */
function epochResults(events) {
  const byKey = new Map();
  for (const event of events) {
    if (event.event === "epoch") byKey.set(`${event.trial}/${event.epoch}`, event);
  }
  return [...byKey.values()].sort((a, b) => a.trial - b.trial || a.epoch - b.epoch);
}

function train({ net, trials }, threads) {
  const checkpoints = join(docs, "checkpoints", net);
  const log = join(docs, "logs", `${net}.jsonl`);
  const common = [
    "--log-file",
    log,
    "--checkpoint-dir",
    checkpoints,
    "--threads",
    String(threads),
    "--quiet",
  ];
  const weights = ["--save-weights", join(docs, "weights", `${net}.safetensors`)];
  if (existsSync(join(checkpoints, "latest"))) {
    run(process.execPath, [
      join(root, "dist", "train.js"),
      "--resume",
      checkpoints,
      ...common,
      ...weights,
    ]);
  } else {
    const recipe = ["--net", net, "--trial-count", String(trials), "--epoch-count", String(EPOCHS)];
    run(process.execPath, [join(root, "dist", "train.js"), ...recipe, ...common, ...weights]);
  }
}

function writeCsv(net, results) {
  const trials = new Map();
  for (const result of results) {
    if (!trials.has(result.trial)) trials.set(result.trial, []);
    trials.get(result.trial).push(formatCsvRow(result));
  }
  const text = [...trials.values()].map((rows) => `${CSV_HEADER}\n${rows.join("\n")}\n\n`).join("");
  const path = join(docs, `${net}.csv`);
  writeFileSync(path, text);
  return path;
}

function meanAndDeviation(values) {
  const mean = values.reduce((sum, value) => sum + value, 0) / values.length;
  if (values.length < 2) return { mean, deviation: null };
  const variance =
    values.reduce((sum, value) => sum + (value - mean) ** 2, 0) / (values.length - 1);
  return { mean, deviation: Math.sqrt(variance) };
}

function percent({ mean, deviation }) {
  const text = `${(100 * mean).toFixed(2)}%`;
  return deviation === null ? text : `${text} ± ${(100 * deviation).toFixed(2)}`;
}

function summarize(experiment) {
  const events = readEvents(join(docs, "logs", `${experiment.net}.jsonl`));
  const results = epochResults(events);
  const lastByTrial = new Map();
  for (const result of results) lastByTrial.set(result.trial, result);
  const finals = [...lastByTrial.values()];
  const starts = events.filter((event) => event.event === "run-start");
  return {
    ...experiment,
    results,
    finals,
    epochsDone: finals.length ? Math.min(...finals.map((result) => result.epoch)) : 0,
    complete:
      finals.length === experiment.trials && finals.every((result) => result.epoch === EPOCHS),
    threads: [...new Set(starts.map((event) => event.threads))].join(", ") || "-",
    cpuModel: starts.at(-1)?.cpuModel ?? "unknown",
    seconds: results.reduce((sum, result) => sum + result.seconds, 0),
  };
}

function writeReport(summaries) {
  const lines = [
    "# Results",
    "",
    `Every figure below is read from the training logs in \`docs/logs/\`, written by \`npm run experiments\`.`,
    `Recipe: Adam, learning rate 0.005 halved every 40 epochs, mini-batch 1000, ${EPOCHS} epochs, seed 0 (trial k uses seed k).`,
    `Accuracies are the final epoch's, as mean ± standard deviation over trials; wall time is the sum of the epochs' times over all trials.`,
    "",
    "| net | trials | epochs | threads | train accuracy | test accuracy | wall time | published test accuracy |",
    "|---|---|---|---|---|---|---|---|",
  ];
  for (const summary of summaries) {
    if (summary.finals.length === 0) {
      lines.push(
        `| ${summary.net} | 0 of ${summary.trials} | - | - | - | - | - | ${summary.published} |`,
      );
      continue;
    }
    const train = meanAndDeviation(summary.finals.map((result) => result.trainAccuracy));
    const test = meanAndDeviation(summary.finals.map((result) => result.testAccuracy));
    const status = summary.complete ? "" : " (in progress)";
    lines.push(
      `| ${summary.net} | ${summary.finals.length} of ${summary.trials}${status} | ${summary.epochsDone} | ${summary.threads} | ${percent(train)} | ${percent(test)} | ${(summary.seconds / 60).toFixed(1)} min | ${summary.published} |`,
    );
  }
  lines.push(
    "",
    `Machine: ${summaries.find((s) => s.cpuModel !== "unknown")?.cpuModel ?? "unknown"}.`,
    "",
  );
  lines.push(
    "Training accuracy is measured with dropout on (conv nets), so it can sit below test accuracy.",
    "",
  );
  for (const summary of summaries) {
    lines.push(
      `## ${summary.net}`,
      "",
      `![${summary.net} network](${summary.net}-diagram.svg)`,
      "",
    );
    if (summary.results.length)
      lines.push(
        `![${summary.net} training curves](${summary.net}.svg)`,
        "",
        `Data: [${summary.net}.csv](${summary.net}.csv)`,
        "",
      );
  }
  writeFileSync(join(docs, "RESULTS.md"), lines.join("\n"));
}

// Ctrl-C reaches the trainer too, which checkpoints and exits with 130; this script waits for it.
process.on("SIGINT", () => {});
process.on("SIGTERM", () => {});

const options = parseArguments(process.argv.slice(2));
mkdirSync(join(docs, "logs"), { recursive: true });
mkdirSync(join(docs, "weights"), { recursive: true });
const threads = options.threads;
console.log(`${cpus()[0]?.model ?? "unknown CPU"}, ${threads} worker threads`);

const selected = EXPERIMENTS.filter(
  (experiment) => !options.only || options.only.includes(experiment.net),
);
if (!options.reportOnly) {
  for (const experiment of selected) {
    const summary = summarize(experiment);
    if (!summary.complete) train(experiment, threads);
  }
}

const summaries = EXPERIMENTS.map(summarize);
for (const summary of summaries) {
  run(process.execPath, [
    join(root, "dist", "diagram.js"),
    "--net",
    summary.net,
    "-o",
    join(docs, `${summary.net}-diagram.svg`),
  ]);
  if (summary.results.length === 0) continue;
  const csv = writeCsv(summary.net, summary.results);
  run(process.execPath, [
    join(root, "dist", "plot.js"),
    csv,
    "-o",
    join(docs, `${summary.net}.svg`),
  ]);
}
writeReport(summaries);
console.log(`wrote ${join(docs, "RESULTS.md")}`);

// dist/evaluate.js: load saved weights into a network and report its loss, accuracy and confusion
// matrix on the Fashion-MNIST test set, computed in the calling thread.
import { Command, InvalidArgumentError, Option } from "commander";

import { createNetwork, type Network } from "../index.js";
import {
  CLASS_NAMES,
  loadFashionMnist,
  locateDataDirectory,
  type ImageSet,
} from "../data/index.js";
import { matchParameters, readSafetensors } from "../io/safetensors.js";
import { EVALUATION, ModelWorkspace, pixelsToInput } from "../model/workspace.js";
import { NET_NAMES, type NetName } from "../nets/index.js";
import { parseCommand, runTool } from "./command.js";
import { UsageError } from "./errors.js";

/** Test images per forward pass; bounds the size of the activation buffers. */
const BATCH_SIZE = 500;

interface EvaluateOptions {
  net: NetName;
  weights: string;
  dataDir?: string;
  testCount?: number;
}

interface Evaluation {
  count: number;
  /** Mean softmax cross-entropy over the images. */
  loss: number;
  /** Fraction of images whose largest logit is at the true class. */
  accuracy: number;
  /** confusion[trueClass][predictedClass] counts images. */
  confusion: number[][];
}

function positiveInteger(text: string): number {
  const value = Number(text);
  if (!/^\+?\d+$/.test(text.trim()) || !Number.isSafeInteger(value) || value < 1) {
    throw new InvalidArgumentError("Expected a positive integer.");
  }
  return value;
}

function buildCommand(): Command {
  return new Command()
    .name("node dist/evaluate.js")
    .description(
      "Evaluate saved weights (a safetensors file) on the Fashion-MNIST test set: print the mean " +
        "cross-entropy loss, the accuracy and the confusion matrix.",
    )
    .addOption(
      new Option("--net <name>", "network the weights belong to")
        .choices(NET_NAMES)
        .makeOptionMandatory(),
    )
    .addOption(
      new Option(
        "--weights <file>",
        "safetensors file with the network's parameters",
      ).makeOptionMandatory(),
    )
    .addOption(
      new Option(
        "--data-dir <directory>",
        "directory with the four Fashion-MNIST files (default: $FASHION_MNIST_DIR, then data/fashion_mnist/, then /usr/share/datasets/fashion-mnist/)",
      ),
    )
    .addOption(
      new Option(
        "--test-count <images>",
        "evaluate on the first N test images (default: all 10000)",
      ).argParser(positiveInteger),
    )
    .helpOption("-h, --help", "show every flag")
    .allowExcessArguments(false);
}

/** Parses argv (without node and the script); exits with 0 after --help, 2 on a bad flag. */
function parseArguments(argv: string[]): EvaluateOptions {
  const command = parseCommand(buildCommand(), argv);
  return command.opts<EvaluateOptions>();
}

/** Builds the network and loads the weights file into it; warns about tensors it does not use. */
function loadNetwork(options: EvaluateOptions, warn: (message: string) => void): Network {
  const network = createNetwork(options.net);
  const { tensors, metadata } = readSafetensors(options.weights);
  if (metadata.net !== undefined && metadata.net !== options.net) {
    throw new UsageError(
      `${options.weights} contains weights of ${metadata.net}, not ${options.net}: pass --net ${metadata.net}`,
    );
  }
  const expected = network.plan.parameters.map(({ name, shape }) => ({ name, shape }));
  const { extra } = matchParameters(options.weights, tensors, expected);
  if (extra.length > 0) {
    warn(
      `${options.weights}: ignoring tensors that ${options.net} does not have: ${extra.join(", ")}`,
    );
  }
  network.setParameters(tensors);
  return network;
}

/**
 * Runs the first `count` images of `set` through the network in batches of BATCH_SIZE, forward
 * only (no dropout), as the trainer's workers evaluate the test set after each epoch.
 */
function evaluate(network: Network, set: ImageSet, count: number): Evaluation {
  const { plan } = network;
  const classCount = plan.classCount;
  const workspace = new ModelWorkspace(plan, Math.min(BATCH_SIZE, count));
  workspace.bindWeights(network.parameters);
  const confusion = Array.from({ length: classCount }, () => new Array<number>(classCount).fill(0));
  let lossSum = 0;

  for (let start = 0; start < count; start += workspace.capacity) {
    const n = Math.min(workspace.capacity, count - start);
    for (let i = 0; i < n; i++) {
      pixelsToInput(set.pixels, start + i, plan.inputSize, workspace.input, i * plan.inputSize);
      workspace.labels[i] = set.labels[start + i];
    }
    const logits = workspace.forward(n, EVALUATION);
    lossSum += workspace.lossAndBackward(n, null).lossSum;

    for (let i = 0; i < n; i++) {
      const row = i * classCount;
      // The first of equal maxima wins, as in softmaxCrossEntropy's accuracy count.
      let predicted = 0;
      for (let c = 1; c < classCount; c++)
        if (logits[row + c] > logits[row + predicted]) predicted = c;
      confusion[workspace.labels[i]][predicted]++;
    }
  }
  const correct = confusion.reduce((total, row, c) => total + row[c], 0);
  return { count, loss: lossSum / count, accuracy: correct / count, confusion };
}

/** Formats the confusion matrix with class names as row labels and class indices as columns. */
function formatConfusionMatrix(confusion: number[][]): string {
  const rowLabels = confusion.map((_, c) => `${c} ${CLASS_NAMES[c] ?? ""}`.trimEnd());
  const labelWidth = Math.max(...rowLabels.map((label) => label.length));
  const cellWidth = Math.max(3, ...confusion.flat().map((count) => String(count).length));

  const header =
    "true \\ predicted".padEnd(labelWidth) +
    confusion.map((_, c) => " " + String(c).padStart(cellWidth)).join("");
  const rows = confusion.map(
    (row, c) =>
      rowLabels[c].padEnd(labelWidth) +
      row.map((count) => " " + String(count).padStart(cellWidth)).join(""),
  );
  return [header, ...rows].join("\n");
}

function run(options: EvaluateOptions, warn: (message: string) => void): void {
  const network = loadNetwork(options, warn);
  const data = loadFashionMnist(locateDataDirectory({ dataDir: options.dataDir }));
  const count = options.testCount ?? data.test.count;
  if (count > data.test.count) {
    throw new UsageError(
      `--test-count ${count} is larger than the test set (${data.test.count} images): pass at most ${data.test.count}`,
    );
  }

  const result = evaluate(network, data.test, count);
  console.log(`test images ${count}`);
  console.log(`test loss ${result.loss.toFixed(4)}`);
  console.log(`test accuracy ${result.accuracy.toFixed(4)}`);
  console.log("confusion matrix (rows: true class, columns: predicted class)");
  console.log(formatConfusionMatrix(result.confusion));
}

export async function main(argv: string[]): Promise<number> {
  const options = parseArguments(argv);
  return runTool(() => run(options, (message) => process.stderr.write(`warning: ${message}\n`)));
}

process.exitCode = await main(process.argv.slice(2));

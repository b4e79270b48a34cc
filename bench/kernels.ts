// Per-layer kernel timings of one training step (forward and backward) of conv-net or
// conv-blur-net on one thread. The inputs have the zeros of a real step, from synthetic images
// with half of the pixels zero, the dropout masks the trainer draws, and the gradients that
// pooling, leaky ReLU and dropout pass back. Layers are timed in forward order, then in backward
// order, so each one reads what the layer before it produced. As in the workspace, a conv2d
// followed by leaky ReLU stores the activated values itself, so its row includes the activation
// and the leaky ReLU forward row is empty.
//
// Run directly: node dist/bench/kernels.js [--net conv-net|conv-blur-net] [--images N] [--repeats N]
// (defaults: both nets, 50 images, 21 repeats).
import { performance } from "node:perf_hooks";
import { pathToFileURL } from "node:url";

import {
  conv2dBackward,
  conv2dForward,
  denseBackward,
  denseForward,
  dropoutBackward,
  dropoutForward,
  leakyReluBackward,
  leakyReluForward,
  leakyReluMaxPool2dBackward,
  maxPool2dBackward,
  maxPool2dForward,
  softmaxCrossEntropy,
} from "../src/kernels/index.js";
import {
  initializeParameters,
  parameterViews,
  planModel,
  shapeSize,
  type ModelPlan,
  type PlannedLayer,
} from "../src/model/plan.js";
import {
  blurKernel,
  ModelWorkspace,
  pixelsToInput,
  planFusions,
  type PassMode,
} from "../src/model/workspace.js";
import { fillDropoutMask, Random } from "../src/random.js";
import { syntheticImageSet } from "../src/data/synthetic.js";

export type BenchNet = "conv-net" | "conv-blur-net";

/** Timing of one layer's kernel calls in one direction, per image. */
export interface KernelFigure {
  /** Layer label: the parameter name for conv2d and dense, else the kind and layer position. */
  layer: string;
  kind: PlannedLayer["kind"] | "loss" | "step";
  pass: "forward" | "backward" | "both";
  /** Median wall time per image over the repeats, in microseconds. */
  microsecondsPerImage: number;
  /** Fastest wall time per image over the repeats, in microseconds; least disturbed by other load. */
  bestMicrosecondsPerImage: number;
  /** Dense (naive) FLOPs per image, 2 per multiply-add, zeros included; 0 for layers without. */
  flopsPerImage: number;
  /** flopsPerImage / median time, in GFLOP/s; 0 for layers without multiply-adds. */
  gflops: number;
}

/** Images per kernel call, as the trainer's workspace chunk. */
const CHUNK = 50;
const SEED = 7;

function median(values: number[]): number {
  const sorted = [...values].sort((p, q) => p - q);
  const middle = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

// Multiply-adds per image of a layer's forward pass, and of its backward pass (dx when the
// layer's input gradient is needed, plus dw for trained layers).
function multiplyAdds(layer: PlannedLayer, needsInputGradient: boolean): [number, number] {
  if (layer.kind === "conv2d" || layer.kind === "blur") {
    const g = layer.geometry;
    const forward =
      g.outChannels *
      g.outHeight *
      g.outWidth *
      (g.inChannels / g.groups) *
      g.kernelHeight *
      g.kernelWidth;
    const backward = (needsInputGradient ? forward : 0) + (layer.kind === "conv2d" ? forward : 0);
    return [forward, backward];
  }
  if (layer.kind === "dense") {
    const forward = layer.inFeatures * layer.outFeatures;
    return [forward, (needsInputGradient ? forward : 0) + forward];
  }
  return [0, 0];
}

function layerLabel(plan: ModelPlan, index: number): string {
  const layer = plan.layers[index];
  if (layer.kind === "conv2d" || layer.kind === "dense") return layer.name;
  return `${layer.kind} ${index}`;
}

/** Buffers of one pass over `images` images, laid out as the workspace lays them out. */
class BenchBuffers {
  readonly values: Float32Array[];
  readonly deltas: (Float32Array | null)[];
  readonly poolIndices: (Int32Array | null)[];
  readonly masks: (Uint8Array | null)[];
  readonly blurKernels: (Float32Array | null)[];
  /** As in the workspace: layer i is a leaky ReLU whose backward pass runs fused into the pool. */
  readonly fusedIntoPool: boolean[];
  /** As in the workspace: layer i is a leaky ReLU that the conv2d before it applies on its store. */
  readonly fusedIntoConv: boolean[];
  readonly labels: Uint8Array;
  readonly imageIndices: Int32Array;
  readonly weights: Float32Array[];
  readonly gradients: Float32Array[];

  constructor(
    readonly plan: ModelPlan,
    readonly images: number,
  ) {
    const input = new Float32Array(images * plan.inputSize);
    this.values = [input];
    this.deltas = [null];
    this.poolIndices = [];
    this.masks = [];
    this.blurKernels = [];
    ({ fusedIntoPool: this.fusedIntoPool, fusedIntoConv: this.fusedIntoConv } = planFusions(plan));
    plan.layers.forEach((layer, i) => {
      const size = images * shapeSize(layer.output);
      if (layer.kind === "flatten") {
        this.values.push(this.values[i]);
        this.deltas.push(this.deltas[i]);
      } else if (this.fusedIntoConv[i]) {
        this.values.push(this.values[i]);
        this.deltas.push(new Float32Array(size));
      } else {
        this.values.push(new Float32Array(size));
        this.deltas.push(new Float32Array(size));
      }
      this.poolIndices.push(layer.kind === "max-pool" ? new Int32Array(size) : null);
      this.masks.push(layer.kind === "dropout" ? new Uint8Array(size) : null);
      this.blurKernels.push(layer.kind === "blur" ? blurKernel(layer.input.channels) : null);
    });

    const set = syntheticImageSet(images, SEED);
    for (let i = 0; i < images; i++)
      pixelsToInput(set.pixels, i, plan.inputSize, input, i * plan.inputSize);
    this.labels = set.labels;
    this.imageIndices = Int32Array.from({ length: images }, (_, i) => i);

    const parameters = new Float32Array(plan.parameterCount);
    const random = new Random(SEED);
    initializeParameters(plan, parameters, () => random.nextNormal());
    // Small nonzero biases, so that activations are not exactly symmetric around zero.
    for (const tensor of plan.parameters) {
      if (!tensor.isBias) continue;
      for (let i = 0; i < tensor.size; i++)
        parameters[tensor.offset + i] = 0.01 * random.nextNormal();
    }
    this.weights = parameterViews(plan, parameters);
    this.gradients = parameterViews(plan, new Float32Array(plan.parameterCount));
  }

  // Views of a per-image buffer for the chunk of images starting at `first`.
  private chunkOf<T extends Float32Array | Int32Array | Uint8Array>(
    buffer: T,
    perImage: number,
    first: number,
  ): T {
    return buffer.subarray(first * perImage) as T;
  }

  /** Runs layer i forward on the chunk of `n` images starting at image `first`. */
  forwardLayer(i: number, first: number, n: number): void {
    const layer = this.plan.layers[i];
    const inSize = shapeSize(layer.input);
    const outSize = shapeSize(layer.output);
    const x = this.chunkOf(this.values[i], inSize, first);
    const y = this.chunkOf(this.values[i + 1], outSize, first);
    switch (layer.kind) {
      case "conv2d":
        conv2dForward(
          layer.geometry,
          n,
          x,
          this.weights[layer.weight.index],
          this.weights[layer.bias.index],
          y,
          this.fusedIntoConv[i + 1] === true,
        );
        break;
      case "blur":
        conv2dForward(layer.geometry, n, x, this.blurKernels[i]!, null, y);
        break;
      case "max-pool":
        maxPool2dForward(
          layer.geometry,
          n,
          x,
          y,
          this.chunkOf(this.poolIndices[i]!, outSize, first),
        );
        break;
      case "leaky-relu":
        if (!this.fusedIntoConv[i]) leakyReluForward(n * inSize, x, y);
        break;
      case "flatten":
        break;
      case "dropout": {
        const mask = this.chunkOf(this.masks[i]!, inSize, first);
        for (let image = 0; image < n; image++) {
          fillDropoutMask(
            mask,
            image * inSize,
            inSize,
            layer.rate,
            SEED,
            0,
            this.imageIndices[first + image],
          );
        }
        dropoutForward(n * inSize, layer.rate, x, mask, y);
        break;
      }
      case "dense":
        denseForward(
          n,
          layer.inFeatures,
          layer.outFeatures,
          x,
          this.weights[layer.weight.index],
          this.weights[layer.bias.index],
          y,
        );
        break;
    }
  }

  /** Computes the loss gradient of the chunk into the last delta buffer. */
  loss(first: number, n: number): void {
    const classes = this.plan.classCount;
    const last = this.plan.layers.length;
    softmaxCrossEntropy(
      n,
      classes,
      this.chunkOf(this.values[last], classes, first),
      this.labels,
      first,
      this.chunkOf(this.deltas[last]!, classes, first),
      1,
    );
  }

  /** Runs layer i backward on the chunk of `n` images starting at image `first`. */
  backwardLayer(i: number, first: number, n: number): void {
    const layer = this.plan.layers[i];
    const inSize = shapeSize(layer.input);
    const outSize = shapeSize(layer.output);
    const x = this.chunkOf(this.values[i], inSize, first);
    const dy = this.chunkOf(this.deltas[i + 1]!, outSize, first);
    const dxBuffer = this.deltas[i];
    const dx = dxBuffer === null ? null : this.chunkOf(dxBuffer, inSize, first);
    switch (layer.kind) {
      case "conv2d":
        conv2dBackward(
          layer.geometry,
          n,
          x,
          this.weights[layer.weight.index],
          dy,
          dx,
          this.gradients[layer.weight.index],
          this.gradients[layer.bias.index],
        );
        break;
      case "blur":
        if (dx) conv2dBackward(layer.geometry, n, x, this.blurKernels[i]!, dy, dx, null, null);
        break;
      case "max-pool": {
        const argmax = this.chunkOf(this.poolIndices[i]!, outSize, first);
        const activationGradient = this.deltas[i - 1];
        if (this.fusedIntoPool[i - 1] && activationGradient) {
          const activationInput = this.chunkOf(this.values[i - 1], inSize, first);
          leakyReluMaxPool2dBackward(
            layer.geometry,
            n,
            activationInput,
            dy,
            argmax,
            this.chunkOf(activationGradient, inSize, first),
          );
        } else if (dx) {
          maxPool2dBackward(layer.geometry, n, dy, argmax, dx);
        }
        break;
      }
      case "leaky-relu":
        if (dx && !this.fusedIntoPool[i]) leakyReluBackward(n * inSize, x, dy, dx);
        break;
      case "flatten":
        break;
      case "dropout":
        if (dx)
          dropoutBackward(
            n * inSize,
            layer.rate,
            dy,
            this.chunkOf(this.masks[i]!, inSize, first),
            dx,
          );
        break;
      case "dense": {
        // As in the workspace: behind a dropout, only the kept units' dx is computed.
        const dropoutMask = this.masks[i - 1] ?? null;
        denseBackward(
          n,
          layer.inFeatures,
          layer.outFeatures,
          x,
          this.weights[layer.weight.index],
          dy,
          dx,
          this.gradients[layer.weight.index],
          this.gradients[layer.bias.index],
          dropoutMask === null ? null : this.chunkOf(dropoutMask, inSize, first),
        );
        break;
      }
    }
  }
}

/** Milliseconds of one sweep over all images: the median and the fastest of the repeats. */
interface SweepTime {
  median: number;
  best: number;
}

// Calls `run(first, n)` for every chunk of CHUNK images, `repeats` times, timing each sweep.
function timeSweeps(
  images: number,
  repeats: number,
  run: (first: number, n: number) => void,
): SweepTime {
  const times: number[] = [];
  for (let r = 0; r < repeats; r++) {
    const start = performance.now();
    for (let first = 0; first < images; first += CHUNK) run(first, Math.min(CHUNK, images - first));
    times.push(performance.now() - start);
  }
  return { median: median(times), best: Math.min(...times) };
}

function figure(
  layer: string,
  kind: KernelFigure["kind"],
  pass: KernelFigure["pass"],
  time: SweepTime,
  images: number,
  flopsPerImage: number,
): KernelFigure {
  const microsecondsPerImage = (time.median * 1000) / images;
  const bestMicrosecondsPerImage = (time.best * 1000) / images;
  const gflops = flopsPerImage === 0 ? 0 : flopsPerImage / (microsecondsPerImage * 1000);
  return {
    layer,
    kind,
    pass,
    microsecondsPerImage,
    bestMicrosecondsPerImage,
    flopsPerImage,
    gflops,
  };
}

// Times the real workspace's forward and backward over the same images, as the worker runs a shard.
function timeWorkspaceStep(buffers: BenchBuffers, repeats: number): SweepTime {
  const { plan, images } = buffers;
  const workspace = new ModelWorkspace(plan, Math.min(CHUNK, images));
  const parameters = new Float32Array(plan.parameterCount);
  let offset = 0;
  for (const view of buffers.weights) {
    parameters.set(view, offset);
    offset += view.length;
  }
  workspace.bindWeights(parameters);
  const gradients = parameterViews(plan, new Float32Array(plan.parameterCount));
  const input = buffers.values[0];
  return timeSweeps(images, repeats, (first, n) => {
    workspace.input.set(input.subarray(first * plan.inputSize, (first + n) * plan.inputSize));
    workspace.labels.set(buffers.labels.subarray(first, first + n));
    const mode: PassMode = {
      training: true,
      seed: SEED,
      epoch: 0,
      imageIndices: buffers.imageIndices,
      indexOffset: first,
    };
    workspace.forward(n, mode);
    workspace.lossAndBackward(n, gradients);
  });
}

/**
 * Times every layer's kernels, forward and backward, over `images` images in calls of at most
 * 50 (as the trainer's workspace makes them) on this thread, `repeats` sweeps each. The last
 * figure, layer "step", is the whole forward and backward pass through the real ModelWorkspace.
 * With `images` at most 50 the buffers are as large as the trainer's, so cache behavior matches.
 */
export function measureKernels(options: {
  net: BenchNet;
  images: number;
  repeats: number;
}): KernelFigure[] {
  const { net, images, repeats } = options;
  if (!Number.isInteger(images) || images < 1)
    throw new Error(`images must be a positive integer, got ${images}`);
  if (!Number.isInteger(repeats) || repeats < 1)
    throw new Error(`repeats must be a positive integer, got ${repeats}`);
  const plan = planModel(net);
  const buffers = new BenchBuffers(plan, images);
  const layerCount = plan.layers.length;

  // The forward sweeps run in layer order and the backward sweeps in reverse, so each layer reads
  // the values and zeros that a real step gives it. Warm-up sweeps run before each timing so that
  // the JIT has optimized the kernel.
  const warmups = 2;
  const forwardTimes: SweepTime[] = [];
  for (let i = 0; i < layerCount; i++) {
    timeSweeps(images, warmups, (first, n) => buffers.forwardLayer(i, first, n));
    forwardTimes.push(timeSweeps(images, repeats, (first, n) => buffers.forwardLayer(i, first, n)));
  }
  timeSweeps(images, warmups, (first, n) => buffers.loss(first, n));
  const lossTime = timeSweeps(images, repeats, (first, n) => buffers.loss(first, n));
  const backwardTimes: SweepTime[] = new Array<SweepTime>(layerCount);
  for (let i = layerCount - 1; i >= 0; i--) {
    timeSweeps(images, warmups, (first, n) => buffers.backwardLayer(i, first, n));
    backwardTimes[i] = timeSweeps(images, repeats, (first, n) =>
      buffers.backwardLayer(i, first, n),
    );
  }

  const figures: KernelFigure[] = [];
  for (let i = 0; i < layerCount; i++) {
    const layer = plan.layers[i];
    if (layer.kind === "flatten") continue;
    const [forwardMacs] = multiplyAdds(layer, buffers.deltas[i] !== null);
    const label = layerLabel(plan, i);
    figures.push(figure(label, layer.kind, "forward", forwardTimes[i], images, 2 * forwardMacs));
  }
  figures.push(figure("loss", "loss", "both", lossTime, images, 0));
  for (let i = layerCount - 1; i >= 0; i--) {
    const layer = plan.layers[i];
    if (layer.kind === "flatten") continue;
    const [, backwardMacs] = multiplyAdds(layer, buffers.deltas[i] !== null);
    const label = layerLabel(plan, i);
    figures.push(figure(label, layer.kind, "backward", backwardTimes[i], images, 2 * backwardMacs));
  }

  timeWorkspaceStep(buffers, warmups);
  const stepTime = timeWorkspaceStep(buffers, repeats);
  let stepFlops = 0;
  for (const entry of figures) stepFlops += entry.flopsPerImage;
  figures.push(figure("step", "step", "both", stepTime, images, stepFlops));
  return figures;
}

/** Formats the figures of one net as a text table, one row per layer and pass. */
export function formatKernelTable(net: BenchNet, figures: KernelFigure[]): string {
  const header = [
    "layer".padEnd(16),
    "pass".padEnd(8),
    "us/image".padStart(9),
    "best".padStart(8),
    "MFLOP".padStart(7),
    "GFLOP/s".padStart(8),
  ];
  const lines = [`${net}: microseconds per image (median, best) and GFLOP/s (dense FLOP count)`];
  lines.push(header.join(" "));
  let layerSum = 0;
  for (const entry of figures) {
    if (entry.kind !== "step") layerSum += entry.microsecondsPerImage;
    const columns = [
      entry.layer.padEnd(16),
      entry.pass.padEnd(8),
      entry.microsecondsPerImage.toFixed(1).padStart(9),
      entry.bestMicrosecondsPerImage.toFixed(1).padStart(8),
      (entry.flopsPerImage / 1e6).toFixed(3).padStart(7),
      (entry.gflops === 0 ? "" : entry.gflops.toFixed(2)).padStart(8),
    ];
    lines.push(columns.join(" "));
  }
  const step = figures[figures.length - 1];
  lines.push(
    `sum of layer medians: ${layerSum.toFixed(1)} us/image; workspace step: ` +
      `${step.microsecondsPerImage.toFixed(1)} us/image = ` +
      `${(1e6 / step.microsecondsPerImage).toFixed(0)} images/s on 1 thread`,
  );
  return lines.join("\n");
}

function parseArguments(argv: string[]): { nets: BenchNet[]; images: number; repeats: number } {
  let nets: BenchNet[] = ["conv-net", "conv-blur-net"];
  let images = CHUNK;
  let repeats = 21;
  for (let i = 0; i < argv.length; i += 2) {
    const [flag, value] = [argv[i], argv[i + 1]];
    if (flag === "--net" && (value === "conv-net" || value === "conv-blur-net")) nets = [value];
    else if (flag === "--images") images = Number(value);
    else if (flag === "--repeats") repeats = Number(value);
    else
      throw new Error(
        `invalid argument ${flag} ${value ?? ""}: expected --net conv-net|conv-blur-net, ` +
          `--images N or --repeats N`,
      );
  }
  return { nets, images, repeats };
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { nets, images, repeats } = parseArguments(process.argv.slice(2));
  for (const net of nets) {
    console.log(formatKernelTable(net, measureKernels({ net, images, repeats })));
    console.log(`(${images} images in calls of at most ${CHUNK}, ${repeats} sweeps)\n`);
  }
}

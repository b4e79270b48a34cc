// Runs a planned model forward and backward over a batch of up to `capacity` images, with every
// activation, gradient, pooling index and dropout mask allocated once, up front.
import {
  canFuseLeakyReluMaxPoolBackward,
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
} from "../kernels/index.js";
import { fillDropoutMask } from "../random.js";
import { parameterViews, shapeSize, type ModelPlan } from "./plan.js";

/** Dropout mode of a forward pass: off when evaluating, seeded per image when training. */
export type PassMode =
  | { training: false }
  | {
      training: true;
      seed: number;
      epoch: number;
      /** Image i of the batch is dataset image imageIndices[indexOffset + i] (it keys its mask). */
      imageIndices: Int32Array;
      indexOffset: number;
    };

export const EVALUATION: PassMode = { training: false };

/** Builds the fixed anti-aliasing kernel [1 2 1]ᵀ·[1 2 1] / 16, one copy per channel. */
export function blurKernel(channels: number): Float32Array {
  const taps = [1, 2, 1, 2, 4, 2, 1, 2, 1];
  const kernel = new Float32Array(channels * 9);
  for (let c = 0; c < channels; c++) {
    for (let k = 0; k < 9; k++) kernel[c * 9 + k] = taps[k] / 16;
  }
  return kernel;
}

/**
 * Decides which leaky ReLU layers run fused, per layer index: fusedIntoPool when the 2×2 max pool
 * after it does its backward pass, fusedIntoConv when the conv2d before it applies it on store.
 * The workspace and the kernel benchmark both lay out their buffers by this.
 */
export function planFusions(plan: ModelPlan): {
  fusedIntoPool: boolean[];
  fusedIntoConv: boolean[];
} {
  const { layers } = plan;
  const fusedIntoPool = layers.map((layer, i) => {
    const next = layers[i + 1];
    return (
      layer.kind === "leaky-relu" &&
      next !== undefined &&
      next.kind === "max-pool" &&
      canFuseLeakyReluMaxPoolBackward(next.geometry)
    );
  });
  const fusedIntoConv = layers.map(
    (layer, i) => layer.kind === "leaky-relu" && i > 0 && layers[i - 1].kind === "conv2d",
  );
  return { fusedIntoPool, fusedIntoConv };
}

export class ModelWorkspace {
  readonly plan: ModelPlan;
  readonly capacity: number;
  /** Network input [capacity, 1, 28, 28], pixels scaled to [0, 1]. */
  readonly input: Float32Array;
  /** Labels of the images in `input`. */
  readonly labels: Uint8Array;

  // values[i] is layer i's input and values[i + 1] its output; deltas[i] is the gradient of
  // the loss with respect to values[i]. deltas[0] is null because no layer needs the input's gradient.
  private readonly values: Float32Array[];
  private readonly deltas: (Float32Array | null)[];
  private readonly poolIndices: (Int32Array | null)[];
  private readonly dropoutMasks: (Uint8Array | null)[];
  private readonly blurKernels: (Float32Array | null)[];
  /**
   * fusedIntoPool[i]: layer i is a leaky ReLU whose backward pass the max pool after it runs
   * fused (leakyReluMaxPool2dBackward), so the activation's output gradient deltas[i + 1] is
   * never written.
   */
  private readonly fusedIntoPool: boolean[];
  /**
   * fusedIntoConv[i]: layer i is a leaky ReLU right after a conv2d, which stores the activated
   * values itself, so values[i + 1] is the same buffer as values[i] and the layer's forward pass
   * does nothing. Its backward passes read the activated values in place of their inputs, which
   * is exact because the slope of leaky ReLU depends only on the sign, and the output has the
   * input's sign. On conv-net this saved about 19 microseconds per image: the two separate
   * passes took 26 and 13, and the activated stores added 10 to conv1 and 9 to conv2 (best of 3
   * runs of `node dist/bench/kernels.js --net conv-net --repeats 25`, AMD EPYC, Node 20, machine
   * shared with other jobs).
   */
  private readonly fusedIntoConv: boolean[];
  private weightViews: Float32Array[] = [];
  /** Whether the last forward pass applied dropout, so backward must apply the same masks. */
  private lastPassTraining = false;

  constructor(plan: ModelPlan, capacity: number) {
    this.plan = plan;
    this.capacity = capacity;
    this.input = new Float32Array(capacity * plan.inputSize);
    this.labels = new Uint8Array(capacity);
    this.values = [this.input];
    this.deltas = [null];
    this.poolIndices = [];
    this.dropoutMasks = [];
    this.blurKernels = [];
    ({ fusedIntoPool: this.fusedIntoPool, fusedIntoConv: this.fusedIntoConv } = planFusions(plan));

    plan.layers.forEach((layer, i) => {
      const outputSize = capacity * shapeSize(layer.output);
      if (layer.kind === "flatten") {
        // NCHW is already the flattened order, so flatten shares its input's buffers.
        this.values.push(this.values[i]);
        this.deltas.push(this.deltas[i]);
      } else if (this.fusedIntoConv[i]) {
        this.values.push(this.values[i]);
        this.deltas.push(new Float32Array(outputSize));
      } else {
        this.values.push(new Float32Array(outputSize));
        this.deltas.push(new Float32Array(outputSize));
      }
      this.poolIndices.push(layer.kind === "max-pool" ? new Int32Array(outputSize) : null);
      this.dropoutMasks.push(layer.kind === "dropout" ? new Uint8Array(outputSize) : null);
      this.blurKernels.push(layer.kind === "blur" ? blurKernel(layer.input.channels) : null);
    });
  }

  /** Points the workspace at the parameters it computes with (one flat buffer, plan layout). */
  bindWeights(weights: Float32Array): void {
    this.weightViews = parameterViews(this.plan, weights);
  }

  /** Logits [n, classes] of the last forward pass. */
  get logits(): Float32Array {
    return this.values[this.values.length - 1];
  }

  /** Runs images input[0 .. n) through the network; returns the logits buffer. */
  forward(n: number, mode: PassMode): Float32Array {
    this.checkBatch(n);
    this.lastPassTraining = mode.training;
    const { layers } = this.plan;
    for (let i = 0; i < layers.length; i++) {
      const layer = layers[i];
      const x = this.values[i];
      const y = this.values[i + 1];
      switch (layer.kind) {
        case "conv2d":
          conv2dForward(
            layer.geometry,
            n,
            x,
            this.weightViews[layer.weight.index],
            this.weightViews[layer.bias.index],
            y,
            this.fusedIntoConv[i + 1] === true,
          );
          break;
        case "blur":
          conv2dForward(layer.geometry, n, x, this.blurKernels[i]!, null, y);
          break;
        case "max-pool":
          maxPool2dForward(layer.geometry, n, x, y, this.poolIndices[i]!);
          break;
        case "leaky-relu":
          if (!this.fusedIntoConv[i]) leakyReluForward(n * shapeSize(layer.input), x, y);
          break;
        case "flatten":
          break;
        case "dropout":
          this.dropoutForward(i, layer.rate, n, shapeSize(layer.input), mode);
          break;
        case "dense":
          denseForward(
            n,
            layer.inFeatures,
            layer.outFeatures,
            x,
            this.weightViews[layer.weight.index],
            this.weightViews[layer.bias.index],
            y,
          );
          break;
      }
    }
    return this.logits;
  }

  private dropoutForward(
    i: number,
    rate: number,
    n: number,
    features: number,
    mode: PassMode,
  ): void {
    const x = this.values[i];
    const y = this.values[i + 1];
    const mask = this.dropoutMasks[i]!;
    if (!mode.training) {
      y.set(x.subarray(0, n * features));
      return;
    }
    for (let image = 0; image < n; image++) {
      const imageIndex = mode.imageIndices[mode.indexOffset + image];
      fillDropoutMask(mask, image * features, features, rate, mode.seed, mode.epoch, imageIndex);
    }
    dropoutForward(n * features, rate, x, mask, y);
  }

  /**
   * Computes the summed softmax cross-entropy of the last forward pass against labels[0 .. n),
   * and when `gradients` is given (one view per parameter tensor), overwrites it with the gradient
   * of that summed loss. Returns the loss sum and the count of correct arg-max predictions.
   */
  lossAndBackward(
    n: number,
    gradients: Float32Array[] | null,
  ): { lossSum: number; correct: number } {
    const dlogits = gradients ? this.deltas[this.deltas.length - 1] : null;
    const result = softmaxCrossEntropy(
      n,
      this.plan.classCount,
      this.logits,
      this.labels,
      0,
      dlogits,
      1,
    );
    if (gradients) this.backward(n, gradients);
    return result;
  }

  private backward(n: number, gradients: Float32Array[]): void {
    const { layers } = this.plan;
    for (let i = layers.length - 1; i >= 0; i--) {
      const layer = layers[i];
      const x = this.values[i];
      const dy = this.deltas[i + 1]!;
      const dx = this.deltas[i];
      switch (layer.kind) {
        case "conv2d": {
          const weightIndex = layer.weight.index;
          const biasIndex = layer.bias.index;
          conv2dBackward(
            layer.geometry,
            n,
            x,
            this.weightViews[weightIndex],
            dy,
            dx,
            gradients[weightIndex],
            gradients[biasIndex],
          );
          break;
        }
        case "blur":
          if (dx) conv2dBackward(layer.geometry, n, x, this.blurKernels[i]!, dy, dx, null, null);
          break;
        case "max-pool": {
          const argmax = this.poolIndices[i]!;
          if (i > 0 && this.fusedIntoPool[i - 1]) {
            // Writes the gradient of the fused leaky ReLU's input, deltas[i - 1].
            const activationGradient = this.deltas[i - 1];
            if (activationGradient) {
              const activationInput = this.values[i - 1];
              leakyReluMaxPool2dBackward(
                layer.geometry,
                n,
                activationInput,
                dy,
                argmax,
                activationGradient,
              );
            }
          } else if (dx) {
            maxPool2dBackward(layer.geometry, n, dy, argmax, dx);
          }
          break;
        }
        case "leaky-relu":
          if (dx && !this.fusedIntoPool[i])
            leakyReluBackward(n * shapeSize(layer.input), x, dy, dx);
          break;
        case "flatten":
          break;
        case "dropout": {
          const count = n * shapeSize(layer.input);
          if (!dx) break;
          if (this.lastPassTraining)
            dropoutBackward(count, layer.rate, dy, this.dropoutMasks[i]!, dx);
          else dx.set(dy.subarray(0, count));
          break;
        }
        case "dense": {
          const weightIndex = layer.weight.index;
          const biasIndex = layer.bias.index;
          denseBackward(
            n,
            layer.inFeatures,
            layer.outFeatures,
            x,
            this.weightViews[weightIndex],
            dy,
            dx,
            gradients[weightIndex],
            gradients[biasIndex],
            this.inputDropoutMask(i),
          );
          break;
        }
      }
    }
  }

  // The mask of the training-mode dropout right before layer i, else null. The dropout's backward
  // pass multiplies the gradient of each dropped unit by 0, so layer i need not compute it.
  private inputDropoutMask(i: number): Uint8Array | null {
    if (!this.lastPassTraining || i === 0) return null;
    return this.dropoutMasks[i - 1];
  }

  private checkBatch(n: number): void {
    if (!Number.isInteger(n) || n < 1 || n > this.capacity) {
      throw new Error(`batch of ${n} images does not fit a workspace for ${this.capacity}`);
    }
    if (this.weightViews.length === 0)
      throw new Error("workspace has no weights: call bindWeights first");
  }
}

/** Converts bytes to network input: out[i] = pixels[i] / 255 for one image of `size` pixels. */
export function pixelsToInput(
  pixels: Uint8Array,
  imageIndex: number,
  size: number,
  out: Float32Array,
  outOffset: number,
): void {
  const start = imageIndex * size;
  for (let i = 0; i < size; i++) out[outOffset + i] = pixels[start + i] / 255;
}

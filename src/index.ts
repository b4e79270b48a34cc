// Library entry (dist/index.js): build a network in the calling thread, set its parameters by
// PyTorch name, and compute the loss, logits and gradients of a batch. No pool, nothing to close.
import { isNetName, NET_NAMES, type NetName } from "./nets/index.js";
import { initializeParameters, parameterViews, planModel, type ModelPlan } from "./model/plan.js";
import { EVALUATION, ModelWorkspace } from "./model/workspace.js";
import { hashKey, Random, RandomStream } from "./random.js";

export { NET_NAMES, type NetName } from "./nets/index.js";
export { CLASS_NAMES } from "./data/index.js";

export interface TensorData {
  shape: number[];
  data: Float32Array;
}

export interface LossAndGradients {
  /** Summed softmax cross-entropy over the batch. */
  lossSum: number;
  /** Logits [N, 10], row-major. */
  logits: Float32Array;
  /** Gradient of lossSum for every parameter, by PyTorch name, flat in PyTorch's layout. */
  gradients: Record<string, Float32Array>;
}

export class Network {
  readonly plan: ModelPlan;
  /** All parameters in one flat buffer, each tensor at its plan offset. */
  readonly parameters: Float32Array;

  constructor(
    readonly name: NetName,
    seed: number,
  ) {
    this.plan = planModel(name);
    this.parameters = new Float32Array(this.plan.parameterCount);
    const random = new Random(hashKey(seed, RandomStream.initialization));
    initializeParameters(this.plan, this.parameters, () => random.nextNormal());
  }

  get parameterCount(): number {
    return this.plan.parameterCount;
  }

  /** PyTorch names of the parameter tensors, in layout order. */
  get parameterNames(): string[] {
    return this.plan.parameters.map((tensor) => tensor.name);
  }

  /** Replaces every parameter; throws an Error naming any missing or misshapen tensor. */
  setParameters(tensors: Record<string, TensorData>): void {
    for (const tensor of this.plan.parameters) {
      const given = tensors[tensor.name];
      if (!given) throw new Error(`${this.name}: parameter ${tensor.name} is missing`);
      const shape = Array.from(given.shape ?? []);
      if (
        shape.length !== tensor.shape.length ||
        shape.some((extent, i) => extent !== tensor.shape[i])
      ) {
        throw new Error(
          `${this.name}: parameter ${tensor.name} has shape [${shape.join(", ")}], expected [${tensor.shape.join(", ")}]`,
        );
      }
      if (!(given.data instanceof Float32Array) || given.data.length !== tensor.size) {
        throw new Error(
          `${this.name}: parameter ${tensor.name} needs a Float32Array of ${tensor.size} values`,
        );
      }
    }
    for (const tensor of this.plan.parameters)
      this.parameters.set(tensors[tensor.name].data, tensor.offset);
  }

  /** Returns a copy of every parameter by PyTorch name. */
  getParameters(): Record<string, TensorData> {
    const result: Record<string, TensorData> = {};
    for (const tensor of this.plan.parameters) {
      const data = this.parameters.slice(tensor.offset, tensor.offset + tensor.size);
      result[tensor.name] = { shape: [...tensor.shape], data };
    }
    return result;
  }

  /**
   * Runs images (N·784 pixels in [0, 1]) with their labels through the network in evaluation mode
   * (no dropout) and returns the summed loss, the logits and the summed loss's gradients.
   */
  lossAndGradients(images: Float32Array, labels: Uint8Array): LossAndGradients {
    const n = labels.length;
    if (n === 0) throw new Error("lossAndGradients: the batch is empty");
    if (images.length !== n * this.plan.inputSize) {
      throw new Error(
        `lossAndGradients: ${n} labels need ${n * this.plan.inputSize} pixels, got ${images.length}`,
      );
    }
    for (let i = 0; i < n; i++) {
      if (labels[i] >= this.plan.classCount) {
        throw new Error(`lossAndGradients: label ${labels[i]} at index ${i} is not a class 0–9`);
      }
    }

    const workspace = new ModelWorkspace(this.plan, n);
    workspace.bindWeights(this.parameters);
    workspace.input.set(images);
    workspace.labels.set(labels);
    const gradientBuffer = new Float32Array(this.plan.parameterCount);
    workspace.forward(n, EVALUATION);
    const { lossSum } = workspace.lossAndBackward(n, parameterViews(this.plan, gradientBuffer));

    const gradients: Record<string, Float32Array> = {};
    for (const tensor of this.plan.parameters) {
      gradients[tensor.name] = gradientBuffer.slice(tensor.offset, tensor.offset + tensor.size);
    }
    return { lossSum, logits: workspace.logits.slice(0, n * this.plan.classCount), gradients };
  }
}

/** Creates a network with freshly initialized parameters (seeded like the trainer's trial 0). */
export function createNetwork(name: string, options: { seed?: number } = {}): Network {
  if (!isNetName(name)) {
    throw new Error(`unknown network "${name}": choose one of ${NET_NAMES.join(", ")}`);
  }
  return new Network(name, options.seed ?? 0);
}

// Optimizers over one flat parameter buffer. The state arrays may live in SharedArrayBuffers;
// only the coordinator's optimizer step writes them, between training steps.

export const OPTIMIZER_NAMES = ["adam", "sgd"] as const;
export type OptimizerName = (typeof OPTIMIZER_NAMES)[number];

export const ADAM_DEFAULTS = { learningRate: 0.005, beta1: 0.9, beta2: 0.999, epsilon: 1e-8 };
export const SGD_DEFAULTS = { learningRate: 0.1, momentum: 0.9 };

export function defaultLearningRate(name: OptimizerName): number {
  return name === "adam" ? ADAM_DEFAULTS.learningRate : SGD_DEFAULTS.learningRate;
}

/** The learning rate halves every 40 epochs, smoothly: base · 0.5^(epoch / 40), epoch from 0. */
export const LEARNING_RATE_HALF_LIFE_EPOCHS = 40;

export function scheduledLearningRate(baseRate: number, epoch: number): number {
  return baseRate * Math.pow(0.5, epoch / LEARNING_RATE_HALF_LIFE_EPOCHS);
}

/** Everything an optimizer carries from step to step, for checkpoints. */
export interface OptimizerState {
  stepCount: number;
  arrays: Record<string, Float32Array>;
}

export interface Optimizer {
  readonly name: OptimizerName;
  /** Updates weights[0 .. size) in place from the mean mini-batch gradient. */
  step(weights: Float32Array, gradient: Float32Array, learningRate: number): void;
  /** Returns views of the live state (copy them to keep a snapshot). */
  state(): OptimizerState;
  /** Replaces the state with a copy of `state`; throws when an array is missing or misshapen. */
  restore(state: OptimizerState): void;
}

function restoreArrays(
  name: string,
  target: Record<string, Float32Array>,
  source: OptimizerState,
): void {
  for (const [key, array] of Object.entries(target)) {
    const saved = source.arrays[key];
    if (!saved || saved.length !== array.length) {
      throw new Error(`${name} state: array ${key} is missing or has the wrong length`);
    }
    array.set(saved);
  }
}

/**
 * Adam (Kingma and Ba, 2015) with L2 weight decay added to the gradient, and the bias correction
 * folded into the step size: alpha = lr · √(1 − β2^t) / (1 − β1^t), w −= alpha · m / (√v + ε).
 */
export class Adam implements Optimizer {
  readonly name = "adam";
  /** Steps taken so far; the bias correction of step t uses t counted from 1. */
  stepCount = 0;

  constructor(
    readonly size: number,
    readonly weightDecay: number,
    /** First moment estimate, one value per parameter. */
    readonly m: Float32Array = new Float32Array(size),
    /** Second moment estimate, one value per parameter. */
    readonly v: Float32Array = new Float32Array(size),
    readonly beta1 = ADAM_DEFAULTS.beta1,
    readonly beta2 = ADAM_DEFAULTS.beta2,
    readonly epsilon = ADAM_DEFAULTS.epsilon,
  ) {}

  step(weights: Float32Array, gradient: Float32Array, learningRate: number): void {
    this.stepCount++;
    const { m, v, beta1, beta2, epsilon, weightDecay, size } = this;
    const t = this.stepCount;
    const alpha = (learningRate * Math.sqrt(1 - Math.pow(beta2, t))) / (1 - Math.pow(beta1, t));
    for (let i = 0; i < size; i++) {
      const g = gradient[i] + weightDecay * weights[i];
      const mi = beta1 * m[i] + (1 - beta1) * g;
      const vi = beta2 * v[i] + (1 - beta2) * g * g;
      m[i] = mi;
      v[i] = vi;
      weights[i] -= (alpha * mi) / (Math.sqrt(vi) + epsilon);
    }
  }

  state(): OptimizerState {
    return { stepCount: this.stepCount, arrays: { m: this.m, v: this.v } };
  }

  restore(state: OptimizerState): void {
    restoreArrays("adam", { m: this.m, v: this.v }, state);
    this.stepCount = state.stepCount;
  }
}

/** Stochastic gradient descent with momentum: vel = μ · vel + g, w −= lr · vel. */
export class SgdMomentum implements Optimizer {
  readonly name = "sgd";

  constructor(
    readonly size: number,
    readonly weightDecay: number,
    readonly velocity: Float32Array = new Float32Array(size),
    readonly momentum = SGD_DEFAULTS.momentum,
  ) {}

  step(weights: Float32Array, gradient: Float32Array, learningRate: number): void {
    const { velocity, momentum, weightDecay, size } = this;
    for (let i = 0; i < size; i++) {
      const g = gradient[i] + weightDecay * weights[i];
      const vel = momentum * velocity[i] + g;
      velocity[i] = vel;
      weights[i] -= learningRate * vel;
    }
  }

  state(): OptimizerState {
    return { stepCount: 0, arrays: { velocity: this.velocity } };
  }

  restore(state: OptimizerState): void {
    restoreArrays("sgd", { velocity: this.velocity }, state);
  }
}

export function createOptimizer(name: OptimizerName, size: number, weightDecay: number): Optimizer {
  return name === "adam" ? new Adam(size, weightDecay) : new SgdMomentum(size, weightDecay);
}

// Layer descriptions: what a network is made of, without any buffers. The model planner turns a
// list of these into shapes, parameter offsets and kernel geometries.

/** A 2-D convolution with a trained weight [out, in / groups, k, k] and bias [out]. */
export interface Conv2dLayer {
  kind: "conv2d";
  name: string;
  outChannels: number;
  kernelSize: number;
  stride: number;
  pad: number;
  groups: number;
}

/** A fixed, untrained per-channel 3×3 blur [1 2 1]ᵀ·[1 2 1] / 16 (anti-aliasing before subsampling). */
export interface BlurLayer {
  kind: "blur";
  stride: number;
  pad: number;
}

export interface MaxPool2dLayer {
  kind: "max-pool";
  size: number;
  stride: number;
}

export interface LeakyReluLayer {
  kind: "leaky-relu";
}

/** Reshapes [C, H, W] to [C·H·W]; free in the NCHW layout (index c·H·W + row·W + column). */
export interface FlattenLayer {
  kind: "flatten";
}

/** Inverted dropout: while training, drops each unit with probability `rate`, scales the rest. */
export interface DropoutLayer {
  kind: "dropout";
  rate: number;
}

/** A fully connected layer with a trained weight [out, in] and bias [out]. */
export interface DenseLayer {
  kind: "dense";
  name: string;
  outFeatures: number;
}

export type Layer =
  | Conv2dLayer
  | BlurLayer
  | MaxPool2dLayer
  | LeakyReluLayer
  | FlattenLayer
  | DropoutLayer
  | DenseLayer;

export function conv2d(
  name: string,
  outChannels: number,
  kernelSize: number,
  options: { pad?: number; stride?: number; groups?: number } = {},
): Conv2dLayer {
  return {
    kind: "conv2d",
    name,
    outChannels,
    kernelSize,
    stride: options.stride ?? 1,
    pad: options.pad ?? 0,
    groups: options.groups ?? 1,
  };
}

export function blur(options: { stride: number; pad: number }): BlurLayer {
  return { kind: "blur", ...options };
}

export function maxPool2d(size: number, stride: number): MaxPool2dLayer {
  return { kind: "max-pool", size, stride };
}

export function leakyRelu(): LeakyReluLayer {
  return { kind: "leaky-relu" };
}

export function flatten(): FlattenLayer {
  return { kind: "flatten" };
}

export function dropout(rate: number): DropoutLayer {
  return { kind: "dropout", rate };
}

export function dense(name: string, outFeatures: number): DenseLayer {
  return { kind: "dense", name, outFeatures };
}

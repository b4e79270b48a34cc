// The model plan: a network's layer list resolved into shapes, kernel geometries and the layout of
// its parameters in one flat Float32Array (each tensor in PyTorch's layout at a named offset).
import { conv2dGeometry, maxPool2dGeometry } from "../kernels/index.js";
import type { Conv2dGeometry, MaxPool2dGeometry } from "../kernels/index.js";
import { CLASS_COUNT, INPUT_SHAPE, netLayers, type Layer, type NetName } from "../nets/index.js";

/** The shape of one image's activation: [channels, height, width]; flat vectors have 1×1. */
export interface Shape {
  channels: number;
  height: number;
  width: number;
}

export function shapeSize(shape: Shape): number {
  return shape.channels * shape.height * shape.width;
}

/** One trained tensor: its PyTorch name and shape, and where it sits in the flat buffer. */
export interface ParameterTensor {
  /** Position in ModelPlan.parameters. */
  index: number;
  name: string;
  shape: number[];
  offset: number;
  size: number;
  /** Inputs feeding one output unit; the initial weights have standard deviation √(2 / fanIn). */
  fanIn: number;
  isBias: boolean;
}

interface PlannedBase {
  input: Shape;
  output: Shape;
}

export type PlannedLayer = PlannedBase &
  (
    | {
        kind: "conv2d";
        name: string;
        geometry: Conv2dGeometry;
        weight: ParameterTensor;
        bias: ParameterTensor;
      }
    | { kind: "blur"; geometry: Conv2dGeometry }
    | { kind: "max-pool"; geometry: MaxPool2dGeometry }
    | { kind: "leaky-relu" }
    | { kind: "flatten" }
    | { kind: "dropout"; rate: number }
    | {
        kind: "dense";
        name: string;
        inFeatures: number;
        outFeatures: number;
        weight: ParameterTensor;
        bias: ParameterTensor;
      }
  );

export interface ModelPlan {
  net: NetName;
  layers: PlannedLayer[];
  parameters: ParameterTensor[];
  parameterCount: number;
  inputSize: number;
  classCount: number;
}

/** Resolves a network's layers into shapes and a parameter layout. */
export function planModel(net: NetName): ModelPlan {
  const parameters: ParameterTensor[] = [];
  let parameterCount = 0;
  const addParameter = (name: string, shape: number[], fanIn: number, isBias: boolean) => {
    const size = shape.reduce((product, extent) => product * extent, 1);
    const tensor: ParameterTensor = {
      index: parameters.length,
      name,
      shape,
      offset: parameterCount,
      size,
      fanIn,
      isBias,
    };
    parameters.push(tensor);
    parameterCount += size;
    return tensor;
  };

  let shape: Shape = { ...INPUT_SHAPE };
  const layers = netLayers(net).map((layer: Layer): PlannedLayer => {
    const input = shape;
    const planned = planLayer(layer, input, addParameter);
    shape = planned.output;
    return planned;
  });

  if (shapeSize(shape) !== CLASS_COUNT) {
    throw new Error(`${net}: the last layer has ${shapeSize(shape)} outputs, not ${CLASS_COUNT}`);
  }
  return {
    net,
    layers,
    parameters,
    parameterCount,
    inputSize: shapeSize(INPUT_SHAPE),
    classCount: CLASS_COUNT,
  };
}

type AddParameter = (
  name: string,
  shape: number[],
  fanIn: number,
  isBias: boolean,
) => ParameterTensor;

function planLayer(layer: Layer, input: Shape, addParameter: AddParameter): PlannedLayer {
  switch (layer.kind) {
    case "conv2d": {
      const geometry = conv2dGeometry({
        inChannels: input.channels,
        inHeight: input.height,
        inWidth: input.width,
        outChannels: layer.outChannels,
        kernelSize: layer.kernelSize,
        stride: layer.stride,
        pad: layer.pad,
        groups: layer.groups,
      });
      const groupInputs = input.channels / layer.groups;
      const fanIn = groupInputs * layer.kernelSize * layer.kernelSize;
      const weightShape = [layer.outChannels, groupInputs, layer.kernelSize, layer.kernelSize];
      const weight = addParameter(`${layer.name}.weight`, weightShape, fanIn, false);
      const bias = addParameter(`${layer.name}.bias`, [layer.outChannels], fanIn, true);
      const output = {
        channels: geometry.outChannels,
        height: geometry.outHeight,
        width: geometry.outWidth,
      };
      return { kind: "conv2d", name: layer.name, geometry, weight, bias, input, output };
    }
    case "blur": {
      // A depthwise convolution (one group per channel) with a fixed 3×3 kernel.
      const geometry = conv2dGeometry({
        inChannels: input.channels,
        inHeight: input.height,
        inWidth: input.width,
        outChannels: input.channels,
        kernelSize: 3,
        stride: layer.stride,
        pad: layer.pad,
        groups: input.channels,
      });
      const output = {
        channels: geometry.outChannels,
        height: geometry.outHeight,
        width: geometry.outWidth,
      };
      return { kind: "blur", geometry, input, output };
    }
    case "max-pool": {
      const geometry = maxPool2dGeometry({
        channels: input.channels,
        inHeight: input.height,
        inWidth: input.width,
        size: layer.size,
        stride: layer.stride,
      });
      const output = {
        channels: input.channels,
        height: geometry.outHeight,
        width: geometry.outWidth,
      };
      return { kind: "max-pool", geometry, input, output };
    }
    case "leaky-relu":
      return { kind: "leaky-relu", input, output: input };
    case "flatten":
      return {
        kind: "flatten",
        input,
        output: { channels: shapeSize(input), height: 1, width: 1 },
      };
    case "dropout":
      return { kind: "dropout", rate: layer.rate, input, output: input };
    case "dense": {
      const inFeatures = shapeSize(input);
      const weight = addParameter(
        `${layer.name}.weight`,
        [layer.outFeatures, inFeatures],
        inFeatures,
        false,
      );
      const bias = addParameter(`${layer.name}.bias`, [layer.outFeatures], inFeatures, true);
      const output = { channels: layer.outFeatures, height: 1, width: 1 };
      return {
        kind: "dense",
        name: layer.name,
        inFeatures,
        outFeatures: layer.outFeatures,
        weight,
        bias,
        input,
        output,
      };
    }
  }
}

/** Returns one view per parameter tensor into a flat, parameter-sized buffer. */
export function parameterViews(plan: ModelPlan, buffer: Float32Array): Float32Array[] {
  if (buffer.length < plan.parameterCount) {
    throw new Error(
      `parameter buffer too small: ${buffer.length} values, expected at least ${plan.parameterCount}`,
    );
  }
  return plan.parameters.map((tensor) =>
    buffer.subarray(tensor.offset, tensor.offset + tensor.size),
  );
}

/**
 * Draws the initial parameters: weights normal with standard deviation √(2 / fanIn) (He
 * initialization, suited to leaky ReLU), biases zero. The result depends only on the numbers `nextNormal` returns.
 */
export function initializeParameters(
  plan: ModelPlan,
  weights: Float32Array,
  nextNormal: () => number,
): void {
  for (const tensor of plan.parameters) {
    const std = Math.sqrt(2 / tensor.fanIn);
    for (let i = 0; i < tensor.size; i++) {
      weights[tensor.offset + i] = tensor.isBias ? 0 : std * nextNormal();
    }
  }
}

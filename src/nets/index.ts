// The four Fashion-MNIST networks, written the way their diagrams are drawn.
import {
  blur,
  conv2d,
  dense,
  dropout,
  flatten,
  leakyRelu,
  maxPool2d,
  type Layer,
} from "./layers.js";

export * from "./layers.js";

export const NET_NAMES = ["linear", "single-layer", "conv-net", "conv-blur-net"] as const;
export type NetName = (typeof NET_NAMES)[number];

export function isNetName(name: string): name is NetName {
  return (NET_NAMES as readonly string[]).includes(name);
}

/** Input images: 1 channel of 28×28 pixels scaled to [0, 1]. */
export const INPUT_SHAPE = { channels: 1, height: 28, width: 28 } as const;
export const CLASS_COUNT = 10;

/** Builds the layers shared by conv-net and conv-blur-net around their subsampling step. */
function convolutionalNet(downsample: () => Layer[]): Layer[] {
  return [
    conv2d("conv1", 16, 3, { pad: 1 }),
    leakyRelu(),
    ...downsample(), // 28×28 → 14×14
    // Two groups: outputs 0–15 read inputs 0–7, outputs 16–31 read inputs 8–15.
    conv2d("conv2", 32, 3, { pad: 1, groups: 2 }),
    leakyRelu(),
    ...downsample(), // 14×14 → 7×7
    flatten(),
    dropout(0.5),
    dense("fc1", 128),
    leakyRelu(),
    dense("fc2", CLASS_COUNT),
  ];
}

/** Returns the layer list of a network. */
export function netLayers(name: NetName): Layer[] {
  switch (name) {
    case "linear":
      return [flatten(), dense("fc", CLASS_COUNT)];
    case "single-layer":
      return [flatten(), dense("fc1", 300), leakyRelu(), dense("fc2", CLASS_COUNT)];
    case "conv-net":
      return convolutionalNet(() => [maxPool2d(2, 2)]);
    case "conv-blur-net":
      // Anti-aliased pooling (Zhang 2019, "Making Convolutional Networks Shift-Invariant Again"):
      // a dense max over 2×2 windows (stride 1), then a fixed blur that subsamples by 2.
      return convolutionalNet(() => [maxPool2d(2, 1), blur({ stride: 2, pad: 1 })]);
  }
}

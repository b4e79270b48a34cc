// Whole networks against PyTorch: logits, summed loss and every parameter gradient, in
// evaluation mode, on a few real test images.
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import type { TensorData } from "../src/index.js";

// The library as users load it: the package entry point dist/index.js, with await import().
const { createNetwork, NET_NAMES } = (await import(
  new URL("../index.js", import.meta.url).href
)) as typeof import("../src/index.js");
import {
  assertClose,
  loadReference,
  referenceSuiteOptions,
  toFloat32,
  type ReferenceTensor,
} from "./reference.js";

const CASES = [
  { net: "linear", file: "net_linear", parameters: 7850 },
  { net: "single-layer", file: "net_single_layer", parameters: 238510 },
  { net: "conv-net", file: "net_conv_net", parameters: 204618 },
  { net: "conv-blur-net", file: "net_conv_blur_net", parameters: 204618 },
] as const;

describe("network parameter counts", () => {
  for (const { net, parameters } of CASES) {
    test(`${net} has ${parameters} parameters`, () => {
      assert.equal(createNetwork(net).parameterCount, parameters);
    });
  }

  test("every net name has a case", () => {
    assert.deepEqual([...NET_NAMES].sort(), CASES.map((c) => c.net).sort());
  });
});

describe("networks against PyTorch", referenceSuiteOptions(), () => {
  for (const { net, file } of CASES) {
    test(`${net} logits, loss and gradients`, () => {
      const reference = loadReference(file);
      const network = createNetwork(net);
      const parameters: Record<string, TensorData> = {};
      for (const [name, tensor] of Object.entries(
        reference.params as Record<string, ReferenceTensor>,
      )) {
        parameters[name] = { shape: tensor.shape, data: toFloat32(tensor) };
      }
      assert.deepEqual(Object.keys(parameters).sort(), [...network.parameterNames].sort());
      network.setParameters(parameters);

      const images = toFloat32(reference.x);
      const labels = Uint8Array.from(reference.labels as number[]);
      const result = network.lossAndGradients(images, labels);

      assertClose(result.logits, toFloat32(reference.logits), `${net} logits`);
      assertClose([result.lossSum], [reference.loss_sum], `${net} loss sum`);
      for (const name of network.parameterNames) {
        assertClose(
          result.gradients[name],
          toFloat32(reference.grads[name]),
          `${net} gradient of ${name}`,
        );
      }
    });
  }
});

describe("network parameter validation", () => {
  test("missing tensor is named", () => {
    const network = createNetwork("linear");
    const parameters = network.getParameters();
    delete parameters["fc.bias"];
    assert.throws(() => network.setParameters(parameters), /fc\.bias is missing/);
  });

  test("wrong shape is named", () => {
    const network = createNetwork("linear");
    const parameters = network.getParameters();
    parameters["fc.weight"] = { shape: [784, 10], data: parameters["fc.weight"].data };
    assert.throws(() => network.setParameters(parameters), /fc\.weight has shape \[784, 10\]/);
  });

  test("unknown net is rejected", () => {
    assert.throws(() => createNetwork("resnet"), /unknown network "resnet"/);
  });

  test("same seed gives same initial weights", () => {
    const first = createNetwork("conv-net", { seed: 7 }).parameters;
    const second = createNetwork("conv-net", { seed: 7 }).parameters;
    const other = createNetwork("conv-net", { seed: 8 }).parameters;
    assert.deepEqual(first, second);
    assert.notDeepEqual(first, other);
  });

  test("initial weights have He standard deviation", () => {
    const network = createNetwork("single-layer", { seed: 3 });
    const weights = network.getParameters()["fc1.weight"].data;
    let sumSquares = 0;
    for (const w of weights) sumSquares += w * w;
    const std = Math.sqrt(sumSquares / weights.length);
    const expected = Math.sqrt(2 / 784);
    assert.ok(Math.abs(std - expected) / expected < 0.01, `std ${std}, expected ${expected}`);
    assert.ok(network.getParameters()["fc1.bias"].data.every((b) => b === 0));
  });
});

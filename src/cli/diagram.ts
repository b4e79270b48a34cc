// dist/diagram.js: draw a network as an SVG graph of its layers, laid out by Graphviz (compiled to
// WebAssembly in @viz-js/viz). The graph is built from planModel, the plan the trainer itself
// runs, so the shapes and parameter counts shown are those of the code.

import { instance } from "@viz-js/viz";
import { Command, Option } from "commander";

import { LEAKY_RELU_SLOPE } from "../kernels/activation.js";
import { planModel, type ModelPlan, type PlannedLayer, type Shape } from "../model/plan.js";
import { NET_NAMES, type NetName } from "../nets/index.js";
import { parseCommand, runTool, writeOutputFile } from "./command.js";

const FONT = "Verdana";
const TRAINED_FILL = "#dbe8f7";
const FIXED_FILL = "#f4f4f4";

interface DiagramOptions {
  net: NetName;
  output: string;
}

function buildCommand(): Command {
  return new Command()
    .name("node dist/diagram.js")
    .description(
      "Draw a network as an SVG graph of its layers, with the activation shape on every edge and " +
        "the parameter count of every trained layer.",
    )
    .addOption(
      new Option("--net <name>", "network to draw").choices(NET_NAMES).makeOptionMandatory(),
    )
    .addOption(new Option("-o, --output <file>", "SVG file to write (default: <net>.svg)"))
    .helpOption("-h, --help", "show every flag")
    .allowExcessArguments(false);
}

/** Parses argv (without node and the script); exits with 0 after --help, 2 on a bad flag. */
function parseArguments(argv: string[]): DiagramOptions {
  const command = parseCommand(buildCommand(), argv);
  const { net, output } = command.opts<{ net: NetName; output?: string }>();
  return { net, output: output ?? `${net}.svg` };
}

const count = (value: number) => value.toLocaleString("en-US");

/** Formats an activation shape as height×width×channels, or a plain length for a flat vector. */
function formatShape(shape: Shape): string {
  if (shape.height === 1 && shape.width === 1) return String(shape.channels);
  return `${shape.height}×${shape.width}×${shape.channels}`;
}

/** Lines of a layer's node label: what it computes, then its parameters when it has any. */
function describeLayer(layer: PlannedLayer): { lines: string[]; trained: boolean } {
  switch (layer.kind) {
    case "conv2d": {
      const { kernelHeight, kernelWidth, outChannels, stride, pad, groups } = layer.geometry;
      const details = [`${outChannels} filters`];
      if (stride !== 1) details.push(`stride ${stride}`);
      if (pad !== 0) details.push(`pad ${pad}`);
      if (groups !== 1) details.push(`${groups} groups`);
      const size = layer.weight.size + layer.bias.size;
      return {
        lines: [
          `${layer.name}: conv ${kernelHeight}×${kernelWidth}, ${details.join(", ")}`,
          `weight ${layer.weight.shape.join("×")} + bias ${layer.bias.shape.join("×")}`,
          `${count(size)} parameters`,
        ],
        trained: true,
      };
    }
    case "dense": {
      const size = layer.weight.size + layer.bias.size;
      return {
        lines: [
          `${layer.name}: dense ${layer.inFeatures} → ${layer.outFeatures}`,
          `weight ${layer.weight.shape.join("×")} + bias ${layer.bias.shape.join("×")}`,
          `${count(size)} parameters`,
        ],
        trained: true,
      };
    }
    case "blur": {
      const { kernelHeight, kernelWidth, stride, pad } = layer.geometry;
      return {
        lines: [
          `blur ${kernelHeight}×${kernelWidth} per channel, stride ${stride}, pad ${pad}`,
          "fixed kernel [1 2 1]ᵀ·[1 2 1] / 16",
        ],
        trained: false,
      };
    }
    case "max-pool":
      return {
        lines: [
          `max pool ${layer.geometry.size}×${layer.geometry.size}, stride ${layer.geometry.stride}`,
        ],
        trained: false,
      };
    case "leaky-relu":
      return { lines: [`leaky ReLU, slope ${LEAKY_RELU_SLOPE}`], trained: false };
    case "flatten":
      return { lines: ["flatten"], trained: false };
    case "dropout":
      return { lines: [`dropout ${layer.rate} (training only)`], trained: false };
  }
}

/** Quotes a string for DOT, with "\n" between lines (Graphviz centers each line). */
function quote(lines: string[]): string {
  const escaped = lines.map((line) => line.replace(/\\/g, "\\\\").replace(/"/g, '\\"'));
  return `"${escaped.join("\\n")}"`;
}

/** Builds the DOT graph: input, one node per layer, output, with activation shapes on the edges. */
function buildDot(plan: ModelPlan): string {
  const title = `${plan.net}: ${count(plan.parameterCount)} trainable parameters`;
  const statements = [
    `graph [rankdir=TB, label=${quote([title])}, labelloc=t, fontname="${FONT}", fontsize=16, ranksep=0.3, pad=0.2]`,
    `node [shape=box, style="rounded,filled", fontname="${FONT}", fontsize=12, color="#5a6f8c"]`,
    `edge [fontname="${FONT}", fontsize=11, fontcolor="#333333", color="#555555", arrowsize=0.7]`,
    `input [label=${quote(["input image"])}, shape=ellipse, fillcolor=white]`,
  ];

  let previous = "input";
  plan.layers.forEach((layer, i) => {
    const node = `layer${i}`;
    const { lines, trained } = describeLayer(layer);
    statements.push(
      `${node} [label=${quote(lines)}, fillcolor="${trained ? TRAINED_FILL : FIXED_FILL}"]`,
    );
    statements.push(`${previous} -> ${node} [label=${quote([" " + formatShape(layer.input)])}]`);
    previous = node;
  });

  const last = plan.layers[plan.layers.length - 1];
  statements.push(
    `output [label=${quote(["class scores (logits)"])}, shape=ellipse, fillcolor=white]`,
  );
  statements.push(`${previous} -> output [label=${quote([" " + formatShape(last.output)])}]`);
  return `digraph network {\n${statements.map((line) => `  ${line};`).join("\n")}\n}\n`;
}

async function run(options: DiagramOptions): Promise<void> {
  const viz = await instance();
  const svg = viz.renderString(buildDot(planModel(options.net)), { format: "svg", engine: "dot" });
  writeOutputFile(options.output, svg);
}

export async function main(argv: string[]): Promise<number> {
  const options = parseArguments(argv);
  return runTool(() => run(options));
}

process.exitCode = await main(process.argv.slice(2));

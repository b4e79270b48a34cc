// dist/plot.js: plot the per-epoch statistics that `train.js --csv-file-name` writes, as an SVG
// with loss on the left axis and accuracy on the right. The chart is a Vega-Lite specification,
// compiled to Vega and rendered headless (no canvas or browser) by Vega's View#toSVG.
import { readFileSync } from "node:fs";
import { basename, extname, resolve } from "node:path";

import { Command, Option } from "commander";
import { parse as parseVega, View } from "vega";
import { compile, type TopLevelSpec } from "vega-lite";

import { CSV_HEADER } from "../training/csv.js";
import { parseCommand, runTool, writeOutputFile } from "./command.js";
import { ExitCode, UsageError } from "./errors.js";

/** Column names of the statistics file, as in its header line. */
const COLUMNS = CSV_HEADER.slice(1)
  .split(",")
  .map((column) => column.trim());

interface EpochRow {
  epoch: number;
  trainLoss: number;
  testLoss: number;
  trainAccuracy: number;
  testAccuracy: number;
}

/** The plotted curves: each trial draws one line per series. */
const SERIES = [
  { title: "training loss", axis: "loss", field: "trainLoss", color: "#1f77b4", dash: [] },
  { title: "test loss", axis: "loss", field: "testLoss", color: "#ff7f0e", dash: [6, 3] },
  {
    title: "training accuracy",
    axis: "accuracy",
    field: "trainAccuracy",
    color: "#2ca02c",
    dash: [],
  },
  {
    title: "test accuracy",
    axis: "accuracy",
    field: "testAccuracy",
    color: "#d62728",
    dash: [6, 3],
  },
] as const;

interface PlotOptions {
  statistics: string;
  output: string;
}

function buildCommand(): Command {
  return new Command()
    .name("node dist/plot.js")
    .description(
      "Plot training and test loss (left axis) and accuracy (right axis) against epoch for every " +
        "trial of a statistics CSV written by train.js --csv-file-name.",
    )
    .argument("<statistics>", "CSV file written by train.js --csv-file-name")
    .addOption(
      new Option("-o, --output <file>", "SVG file to write (default: the CSV path with .svg)"),
    )
    .helpOption("-h, --help", "show every flag")
    .allowExcessArguments(false);
}

/** Parses argv (without node and the script); exits with 0 after --help, 2 on a bad flag. */
function parseArguments(argv: string[]): PlotOptions {
  const command = parseCommand(buildCommand(), argv);
  const statistics = command.args[0];
  const output =
    command.opts<{ output?: string }>().output ??
    statistics.slice(0, statistics.length - extname(statistics).length) + ".svg";
  if (resolve(output) === resolve(statistics)) {
    process.stderr.write(`error: the SVG would replace ${statistics}: name another file with -o\n`);
    process.exit(ExitCode.usage);
  }
  return { statistics, output };
}

// A decimal or exponent number, or NaN or Infinity, which String() gives for a diverged loss.
const NUMBER_PATTERN = /^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$|^NaN$|^[+-]?Infinity$/i;

function parseRow(line: string, where: string): EpochRow {
  const fields = line.split(",").map((field) => field.trim());
  if (fields.length !== COLUMNS.length) {
    throw new UsageError(
      `${where}: expected ${COLUMNS.length} comma-separated values (${COLUMNS.join(", ")}), got ${fields.length}`,
    );
  }
  const values = fields.map((field, i) => {
    if (!NUMBER_PATTERN.test(field)) {
      throw new UsageError(`${where}: ${COLUMNS[i]} "${field}" is not a number`);
    }
    return Number(field);
  });
  const [epoch, trainLoss, testLoss, trainAccuracy, testAccuracy] = values;
  if (!Number.isSafeInteger(epoch) || epoch < 1) {
    throw new UsageError(`${where}: epoch "${fields[0]}" is not a positive integer`);
  }
  return { epoch, trainLoss, testLoss, trainAccuracy, testAccuracy };
}

/**
 * Parses a statistics file into trials of epoch rows. A header line or a blank line ends a
 * trial. Other lines starting with '#' are comments. Throws a UsageError naming the line when a
 * header names other columns, a row is not five numbers, or epochs do not increase in a trial.
 */
function parseStatistics(text: string, fileName: string): EpochRow[][] {
  const trials: EpochRow[][] = [];
  let current: EpochRow[] = [];
  const endTrial = () => {
    if (current.length > 0) trials.push(current);
    current = [];
  };

  const lines = text.split(/\r?\n/);
  for (let index = 0; index < lines.length; index++) {
    const line = lines[index].trim();
    const where = `${fileName} line ${index + 1}`;
    if (line === "") {
      endTrial();
    } else if (line.startsWith("#")) {
      const columns = line
        .slice(1)
        .split(",")
        .map((column) => column.trim());
      if (columns[0] !== "epoch") continue;
      if (columns.join(", ") !== COLUMNS.join(", ")) {
        throw new UsageError(
          `${where}: the header names the columns ${columns.join(", ")}, expected ${COLUMNS.join(", ")}`,
        );
      }
      endTrial();
    } else {
      const row = parseRow(line, where);
      const previous = current[current.length - 1];
      if (previous && row.epoch <= previous.epoch) {
        throw new UsageError(
          `${where}: epoch ${row.epoch} follows epoch ${previous.epoch} in the same trial. ` +
            `Separate trials with a blank line`,
        );
      }
      current.push(row);
    }
  }
  endTrial();

  if (trials.length === 0) {
    throw new UsageError(
      `${fileName}: contains no epoch rows. Expected lines like "1, 0.64, 0.46, 0.77, 0.83"`,
    );
  }
  return trials;
}

const plural = (count: number, noun: string) => `${count} ${noun}${count === 1 ? "" : "s"}`;

/** Builds the Vega-Lite chart: a layer per y axis, sharing the x axis and one legend. */
function buildChartSpec(title: string, trials: EpochRow[][]): TopLevelSpec {
  const values = trials.flatMap((rows, trial) =>
    rows.flatMap((row) =>
      SERIES.map((series) => ({
        trial: trial + 1,
        epoch: row.epoch,
        series: series.title,
        axis: series.axis,
        // Vega-Lite breaks a line at null, so an epoch with a NaN or infinite value leaves a gap.
        value: Number.isFinite(row[series.field]) ? row[series.field] : null,
      })),
    ),
  );
  const epochCount = Math.max(...trials.map((rows) => rows[rows.length - 1].epoch));

  const color = {
    field: "series",
    type: "nominal",
    title: null,
    scale: {
      domain: SERIES.map((series) => series.title),
      range: SERIES.map((series) => series.color),
    },
    legend: { orient: "bottom", direction: "horizontal", columns: 4 },
  } as const;
  // Same field and title (none) as `color`, so Vega-Lite merges both into one legend.
  const strokeDash = {
    field: "series",
    type: "nominal",
    title: null,
    scale: {
      domain: SERIES.map((series) => series.title),
      range: SERIES.map((series) => [...series.dash]),
    },
  } as const;
  const layer = (axis: "loss" | "accuracy", yTitle: string, orient: "left" | "right") => ({
    transform: [{ filter: { field: "axis", equal: axis } }],
    mark: { type: "line", strokeWidth: 1.5 } as const,
    encoding: {
      y: {
        field: "value",
        type: "quantitative",
        title: yTitle,
        scale: { zero: axis === "loss" },
        axis: { orient, grid: axis === "loss" },
      } as const,
      color,
      strokeDash,
      detail: { field: "trial", type: "nominal" } as const,
    },
  });

  return {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    title: {
      text: title,
      subtitle: `${plural(trials.length, "trial")}, ${plural(epochCount, "epoch")}`,
    },
    width: 640,
    height: 360,
    background: "white",
    data: { values },
    encoding: {
      x: {
        field: "epoch",
        type: "quantitative",
        title: "epoch",
        scale: { domain: [1, Math.max(2, epochCount)], nice: false },
        axis: { tickMinStep: 1, format: "d" },
      },
    },
    layer: [
      layer("loss", "loss (mean cross-entropy)", "left"),
      layer("accuracy", "accuracy (fraction correct)", "right"),
    ],
    resolve: { scale: { y: "independent" } },
  };
}

/** Renders the chart to an SVG string. */
async function renderSvg(spec: TopLevelSpec): Promise<string> {
  const view = new View(parseVega(compile(spec).spec), { renderer: "none" });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

async function run(options: PlotOptions): Promise<void> {
  let text: string;
  try {
    text = readFileSync(options.statistics, "utf8");
  } catch (error) {
    throw new UsageError(`cannot read ${options.statistics}: ${(error as Error).message}`);
  }
  const trials = parseStatistics(text, options.statistics);
  const svg = await renderSvg(buildChartSpec(basename(options.statistics), trials));
  writeOutputFile(options.output, svg);
}

export async function main(argv: string[]): Promise<number> {
  const options = parseArguments(argv);
  return runTool(() => run(options));
}

process.exitCode = await main(process.argv.slice(2));

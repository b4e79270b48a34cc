// Writes the command-line entry points at the top of dist/ (dist/train.js and friends).
// tsc keeps the source tree under dist/ (dist/src/..., dist/workers/...) and does not rewrite
// import paths, so each entry point is a one-line module that imports the compiled file.
import { existsSync, writeFileSync, chmodSync } from "node:fs";

const entryPoints = {
  "train.js": "./src/cli/train.js",
  "evaluate.js": "./src/cli/evaluate.js",
  "plot.js": "./src/cli/plot.js",
  "diagram.js": "./src/cli/diagram.js",
  "index.js": "./src/index.js",
};

for (const [name, target] of Object.entries(entryPoints)) {
  const compiled = new URL(`../dist/${target.slice(2)}`, import.meta.url);
  if (!existsSync(compiled)) {
    throw new Error(`entry point ${name}: compiled module ${target} is missing from dist/`);
  }
  const path = new URL(`../dist/${name}`, import.meta.url);
  const isCommand = name !== "index.js";
  const header = isCommand ? "#!/usr/bin/env node\n" : "";
  const body = isCommand ? `import "${target}";\n` : `export * from "${target}";\n`;
  writeFileSync(path, header + body);
  if (isCommand) chmodSync(path, 0o755);
}

import { readFileSync } from "node:fs";

/** The package version from package.json (compiled code sits at dist/src/version.js). */
export const PACKAGE_VERSION: string = (
  JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as {
    version: string;
  }
).version;

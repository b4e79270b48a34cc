// Checkpoint files: everything needed to continue a run bit for bit.
//
// Layout (little-endian):
//   8 bytes   magic "FMNTCKPT"
//   4 bytes   header length H (uint32)
//   H bytes   JSON header: format version, settings, position, optimizer step count, array table
//   padding   zero bytes up to a multiple of 4
//   payload   float32 arrays (weights, optimizer state) at the offsets the table gives
//   32 bytes  SHA-256 of everything before it
// Files are written to a temporary name and renamed, so a reader sees the old or the new file.
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";

import { writeFileAtomically } from "../io/atomic-write.js";

import type { TrainingSettings, TrialSnapshot } from "./trainer.js";

export const CHECKPOINT_FORMAT_VERSION = 1;
const MAGIC = "FMNTCKPT";
const DIGEST_BYTES = 32;

export const LATEST_CHECKPOINT = "latest";
export const BEST_CHECKPOINT = "best";

/** A damaged, foreign or unreadable checkpoint (exit code 2). */
export class CheckpointError extends Error {
  override name = "CheckpointError";
}

export interface Checkpoint {
  formatVersion: number;
  packageVersion: string;
  settings: TrainingSettings;
  /** The directory the run read its data from; a resumed run reads it again unless --data-dir is given. */
  dataDirectory: string;
  /** Best test accuracy of the run so far (the accuracy of the `best` checkpoint), or null. */
  bestTestAccuracy: number | null;
  snapshot: TrialSnapshot;
}

interface ArrayEntry {
  name: string;
  offset: number;
  length: number;
}

interface Header {
  formatVersion: number;
  packageVersion: string;
  settings: TrainingSettings;
  dataDirectory: string;
  bestTestAccuracy: number | null;
  position: TrialSnapshot["position"];
  optimizerStepCount: number;
  /** Derivation of every random stream, for a reader of the file: none carries hidden state. */
  randomStreams: string;
  arrays: ArrayEntry[];
}

const RANDOM_STREAMS =
  "keyed: initial weights by (seed + trial), shuffle by (seed + trial, epoch), dropout by (seed + trial, epoch, image)";

export function encodeCheckpoint(checkpoint: Checkpoint): Uint8Array {
  const { snapshot } = checkpoint;
  const named: [string, Float32Array][] = [
    ["weights", snapshot.weights],
    ...Object.entries(snapshot.optimizer.arrays).map(([name, array]): [string, Float32Array] => [
      `optimizer.${name}`,
      array,
    ]),
  ];
  let payloadLength = 0;
  const arrays: ArrayEntry[] = named.map(([name, array]) => {
    const entry = { name, offset: payloadLength, length: array.length };
    payloadLength += array.byteLength;
    return entry;
  });
  const header: Header = {
    formatVersion: checkpoint.formatVersion,
    packageVersion: checkpoint.packageVersion,
    settings: checkpoint.settings,
    dataDirectory: checkpoint.dataDirectory,
    bestTestAccuracy: checkpoint.bestTestAccuracy,
    position: snapshot.position,
    optimizerStepCount: snapshot.optimizer.stepCount,
    randomStreams: RANDOM_STREAMS,
    arrays,
  };
  const headerBytes = new TextEncoder().encode(JSON.stringify(header));
  const payloadStart = align4(12 + headerBytes.length);
  const bytes = new Uint8Array(payloadStart + payloadLength + DIGEST_BYTES);
  bytes.set(new TextEncoder().encode(MAGIC), 0);
  new DataView(bytes.buffer).setUint32(8, headerBytes.length, true);
  bytes.set(headerBytes, 12);
  for (const [index, [, array]] of named.entries()) {
    const target = new DataView(
      bytes.buffer,
      payloadStart + arrays[index].offset,
      array.byteLength,
    );
    for (let i = 0; i < array.length; i++) target.setFloat32(i * 4, array[i], true);
  }
  const digestStart = bytes.length - DIGEST_BYTES;
  bytes.set(sha256(bytes.subarray(0, digestStart)), digestStart);
  return bytes;
}

export function decodeCheckpoint(bytes: Uint8Array, path: string): Checkpoint {
  const damaged = (what: string) =>
    new CheckpointError(`${path}: ${what}; the checkpoint is damaged, use another or start again`);
  if (bytes.length < 12 + DIGEST_BYTES) throw damaged(`file of ${bytes.length} bytes is too short`);
  if (new TextDecoder().decode(bytes.subarray(0, 8)) !== MAGIC) {
    throw new CheckpointError(
      `${path}: not a checkpoint of this trainer (wrong magic bytes). Pass --resume the directory that --checkpoint-dir named in the earlier run`,
    );
  }
  const digestStart = bytes.length - DIGEST_BYTES;
  const expected = bytes.subarray(digestStart);
  if (!sha256(bytes.subarray(0, digestStart)).every((byte, i) => byte === expected[i])) {
    throw damaged("checksum mismatch (truncated or corrupted)");
  }

  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = view.getUint32(8, true);
  let header: Header;
  try {
    header = JSON.parse(new TextDecoder().decode(bytes.subarray(12, 12 + headerLength))) as Header;
  } catch (error) {
    throw damaged(`invalid header (${(error as Error).message})`);
  }
  if (header.formatVersion !== CHECKPOINT_FORMAT_VERSION) {
    throw new CheckpointError(
      `${path}: checkpoint format version ${header.formatVersion} is not supported (this trainer reads version ${CHECKPOINT_FORMAT_VERSION})`,
    );
  }

  const payloadStart = align4(12 + headerLength);
  const arrays: Record<string, Float32Array> = {};
  for (const entry of header.arrays) {
    const start = payloadStart + entry.offset;
    if (start + entry.length * 4 > digestStart)
      throw damaged(`array ${entry.name} runs past the end`);
    const array = new Float32Array(entry.length);
    for (let i = 0; i < entry.length; i++) array[i] = view.getFloat32(start + i * 4, true);
    arrays[entry.name] = array;
  }
  if (!arrays.weights) throw damaged("the weights are missing");
  const optimizerArrays: Record<string, Float32Array> = {};
  for (const [name, array] of Object.entries(arrays)) {
    if (name.startsWith("optimizer.")) optimizerArrays[name.slice("optimizer.".length)] = array;
  }
  return {
    formatVersion: header.formatVersion,
    packageVersion: header.packageVersion,
    settings: header.settings,
    dataDirectory: header.dataDirectory,
    bestTestAccuracy: header.bestTestAccuracy,
    snapshot: {
      position: header.position,
      weights: arrays.weights,
      optimizer: { stepCount: header.optimizerStepCount, arrays: optimizerArrays },
    },
  };
}

/** Writes DIR/NAME through a temporary file and a rename; creates DIR and its parents. */
export function writeCheckpoint(directory: string, name: string, checkpoint: Checkpoint): string {
  const path = join(directory, name);
  writeFileAtomically(path, encodeCheckpoint(checkpoint));
  return path;
}

/** Plain words for the error codes of reading a checkpoint that a user can cause. */
const READ_FAILURES: Readonly<Record<string, string>> = {
  ENOENT: "not found",
  EISDIR: "is a directory",
  ENOTDIR: "a parent in the path is a file",
};

export function readCheckpoint(path: string): Checkpoint {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const reason = READ_FAILURES[code ?? ""] ?? code ?? (error as Error).message;
    throw new CheckpointError(
      `${path}: cannot read the checkpoint (${reason}). Pass --resume the directory that --checkpoint-dir named in the earlier run`,
    );
  }
  return decodeCheckpoint(bytes, path);
}

function align4(value: number): number {
  return (value + 3) & ~3;
}

function sha256(bytes: Uint8Array): Uint8Array {
  return createHash("sha256").update(bytes).digest();
}

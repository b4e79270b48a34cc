// Reading and writing weights in the safetensors format: an 8-byte little-endian header length N,
// N bytes of JSON header, then the raw little-endian tensor data. The header maps each tensor name
// to { dtype, shape, data_offsets: [begin, end] }, with offsets relative to the start of the data
// section, and may hold "__metadata__", a map from string to string.
import { readFileSync } from "node:fs";

import { writeFileAtomically } from "./atomic-write.js";

/** A problem with a safetensors file or its contents. The message starts with the file name. */
export class SafetensorsError extends Error {
  override name = "SafetensorsError";
}

export interface Tensor {
  shape: number[];
  data: Float32Array;
}

/**
 * A tensor as read from a file. Only F32 tensors have their values decoded. For any other dtype,
 * `data` is empty, so that a file with an extra non-F32 tensor can still be loaded and the tensor
 * only reported as extra by `matchParameters`, which rejects it when a network needs it.
 */
export interface DecodedTensor extends Tensor {
  dtype: string;
}

export interface SafetensorsContents {
  tensors: Record<string, DecodedTensor>;
  metadata: Record<string, string>;
}

const METADATA_KEY = "__metadata__";
const HEADER_LENGTH_BYTES = 8;
const HEADER_ALIGNMENT = 8;
const F32_BYTES = 4;

/**
 * Bytes per element of the dtypes in the safetensors specification that take whole bytes. The
 * stored size of a tensor with another dtype is not checked against its shape.
 */
const DTYPE_BYTES: Readonly<Record<string, number>> = {
  BOOL: 1,
  U8: 1,
  I8: 1,
  F8_E4M3: 1,
  F8_E5M2: 1,
  U16: 2,
  I16: 2,
  F16: 2,
  BF16: 2,
  U32: 4,
  I32: 4,
  F32: 4,
  U64: 8,
  I64: 8,
  F64: 8,
};

const LITTLE_ENDIAN_PLATFORM = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function elementCount(shape: readonly number[]): number {
  return shape.reduce((product, extent) => product * extent, 1);
}

function formatShape(shape: readonly number[]): string {
  return `[${shape.join(", ")}]`;
}

/** Reverses the byte order of every 4-byte word in place (for big-endian platforms). */
function swapWords(bytes: Uint8Array): void {
  for (let i = 0; i + 3 < bytes.length; i += 4) {
    const b0 = bytes[i];
    const b1 = bytes[i + 1];
    bytes[i] = bytes[i + 3];
    bytes[i + 1] = bytes[i + 2];
    bytes[i + 2] = b1;
    bytes[i + 3] = b0;
  }
}

/**
 * Encodes tensors (in the given order, with contiguous offsets) and string metadata as a
 * safetensors file. The header is padded with spaces to a multiple of 8 bytes. The output depends
 * only on the arguments, so the same tensors and metadata always give the same bytes.
 * Throws a SafetensorsError when a name is empty or reserved, or when a tensor's shape does not
 * match its number of values.
 */
export function encodeSafetensors(
  tensors: Record<string, Tensor>,
  metadata: Record<string, string>,
): Uint8Array {
  const entries: [string, unknown][] = [];
  for (const [key, value] of Object.entries(metadata)) {
    if (typeof value !== "string") {
      throw new SafetensorsError(`metadata: the value of "${key}" is not a string`);
    }
  }
  entries.push([METADATA_KEY, metadata]);

  let offset = 0;
  for (const [name, tensor] of Object.entries(tensors)) {
    if (name === "" || name === METADATA_KEY) {
      throw new SafetensorsError(`tensor name "${name}" is reserved or empty: rename the tensor`);
    }
    if (!(tensor.data instanceof Float32Array)) {
      throw new SafetensorsError(`tensor ${name}: data must be a Float32Array`);
    }
    const shape = Array.from(tensor.shape);
    if (!shape.every((extent) => Number.isSafeInteger(extent) && extent >= 0)) {
      throw new SafetensorsError(
        `tensor ${name}: shape ${formatShape(shape)} has an extent that is not a non-negative integer`,
      );
    }
    if (elementCount(shape) !== tensor.data.length) {
      throw new SafetensorsError(
        `tensor ${name}: shape ${formatShape(shape)} needs ${elementCount(shape)} values, got ${tensor.data.length}`,
      );
    }
    const end = offset + tensor.data.length * F32_BYTES;
    entries.push([name, { dtype: "F32", shape, data_offsets: [offset, end] }]);
    offset = end;
  }

  // Object.fromEntries defines own properties, so even a tensor named "__proto__" is serialized.
  const headerText = JSON.stringify(Object.fromEntries(entries));
  const headerBytes = new TextEncoder().encode(headerText);
  const paddedLength = Math.ceil(headerBytes.length / HEADER_ALIGNMENT) * HEADER_ALIGNMENT;
  const dataStart = HEADER_LENGTH_BYTES + paddedLength;

  const bytes = new Uint8Array(dataStart + offset);
  new DataView(bytes.buffer).setBigUint64(0, BigInt(paddedLength), true);
  bytes.set(headerBytes, HEADER_LENGTH_BYTES);
  bytes.fill(0x20, HEADER_LENGTH_BYTES + headerBytes.length, dataStart);

  let position = dataStart;
  for (const tensor of Object.values(tensors)) {
    const { buffer, byteOffset, byteLength } = tensor.data;
    const target = bytes.subarray(position, position + byteLength);
    target.set(new Uint8Array(buffer, byteOffset, byteLength));
    if (!LITTLE_ENDIAN_PLATFORM) swapWords(target);
    position += byteLength;
  }
  return bytes;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function isNonNegativeInteger(value: unknown): value is number {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= 0;
}

/** Parses the JSON header; throws a SafetensorsError on a short file or an invalid header. */
function parseHeader(bytes: Uint8Array, fileName: string): { header: object; dataStart: number } {
  if (bytes.length < HEADER_LENGTH_BYTES) {
    throw new SafetensorsError(
      `${fileName}: the file has ${bytes.length} bytes, too short for the 8-byte header length. ` +
        `It is not a safetensors file or it was truncated`,
    );
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = view.getBigUint64(0, true);
  const available = bytes.length - HEADER_LENGTH_BYTES;
  if (headerLength > BigInt(available)) {
    throw new SafetensorsError(
      `${fileName}: the header length ${headerLength} runs past the end of the file ` +
        `(${available} bytes follow the length). It is not a safetensors file or it was truncated`,
    );
  }
  const dataStart = HEADER_LENGTH_BYTES + Number(headerLength);

  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(
      bytes.subarray(HEADER_LENGTH_BYTES, dataStart),
    );
  } catch {
    throw new SafetensorsError(`${fileName}: the header is not valid UTF-8`);
  }
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (error) {
    throw new SafetensorsError(
      `${fileName}: the header is not valid JSON (${(error as Error).message})`,
    );
  }
  if (!isPlainObject(header)) {
    throw new SafetensorsError(`${fileName}: the header is not a JSON object`);
  }
  return { header, dataStart };
}

function parseMetadata(value: unknown, fileName: string): Record<string, string> {
  if (!isPlainObject(value)) {
    throw new SafetensorsError(`${fileName}: ${METADATA_KEY} is not an object of strings`);
  }
  for (const [key, entry] of Object.entries(value)) {
    if (typeof entry !== "string") {
      throw new SafetensorsError(`${fileName}: ${METADATA_KEY} value "${key}" is not a string`);
    }
  }
  return Object.fromEntries(Object.entries(value as Record<string, string>));
}

interface TensorEntry {
  name: string;
  dtype: string;
  shape: number[];
  begin: number;
  end: number;
}

/** Validates one header entry's fields and its byte length against its dtype and shape. */
function parseTensorEntry(
  name: string,
  value: unknown,
  dataLength: number,
  fileName: string,
): TensorEntry {
  const where = `${fileName}: tensor ${name}`;
  if (!isPlainObject(value)) {
    throw new SafetensorsError(`${where}: the header entry is not an object`);
  }
  const { dtype, shape, data_offsets: offsets } = value;
  if (typeof dtype !== "string") {
    throw new SafetensorsError(`${where}: the "dtype" field is missing or not a string`);
  }
  if (!Array.isArray(shape) || !shape.every(isNonNegativeInteger)) {
    throw new SafetensorsError(
      `${where}: the "shape" field is missing or not an array of non-negative integers`,
    );
  }
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isNonNegativeInteger)) {
    throw new SafetensorsError(
      `${where}: the "data_offsets" field is missing or not two non-negative integers`,
    );
  }

  const [begin, end] = offsets as [number, number];
  if (begin > end) {
    throw new SafetensorsError(`${where}: data_offsets [${begin}, ${end}] end before they begin`);
  }
  if (end > dataLength) {
    throw new SafetensorsError(
      `${where}: data_offsets [${begin}, ${end}] run past the end of the data (${dataLength} bytes)`,
    );
  }
  const elementBytes = DTYPE_BYTES[dtype];
  if (elementBytes !== undefined) {
    const expected = elementCount(shape) * elementBytes;
    if (end - begin !== expected) {
      throw new SafetensorsError(
        `${where}: ${dtype} shape ${formatShape(shape)} needs ${expected} bytes, ` +
          `but data_offsets [${begin}, ${end}] span ${end - begin}`,
      );
    }
  }
  return { name, dtype, shape: shape as number[], begin, end };
}

/** Throws a SafetensorsError when two non-empty tensors share bytes. */
function checkOverlaps(entries: readonly TensorEntry[], fileName: string): void {
  const sorted = entries.filter((entry) => entry.end > entry.begin);
  sorted.sort((a, b) => a.begin - b.begin);
  for (let i = 1; i < sorted.length; i++) {
    const previous = sorted[i - 1];
    const current = sorted[i];
    if (current.begin < previous.end) {
      throw new SafetensorsError(
        `${fileName}: tensors ${previous.name} [${previous.begin}, ${previous.end}] and ` +
          `${current.name} [${current.begin}, ${current.end}] overlap`,
      );
    }
  }
}

/** Copies little-endian F32 bytes (at any alignment) into a new Float32Array, bit for bit. */
function decodeF32(bytes: Uint8Array): Float32Array {
  // A fresh, zero-offset buffer. Not bytes.slice(), which on a Node Buffer returns a view.
  const copy = new Uint8Array(bytes.length);
  copy.set(bytes);
  if (!LITTLE_ENDIAN_PLATFORM) swapWords(copy);
  return new Float32Array(copy.buffer, 0, copy.length / F32_BYTES);
}

/**
 * Decodes a safetensors file's bytes. Tensors may come in any order and `__metadata__` may be
 * absent (the result then has empty metadata). Bytes between tensors are allowed. Tensors of a
 * dtype other than F32 are kept with empty data (see DecodedTensor).
 * Throws a SafetensorsError naming `fileName` when the header length runs past the end of the file
 * or the header is not a JSON object. It also throws for an entry with a missing or invalid field,
 * a byte length that does not match the dtype and shape, and offsets out of range or overlapping.
 */
export function decodeSafetensors(bytes: Uint8Array, fileName: string): SafetensorsContents {
  const { header, dataStart } = parseHeader(bytes, fileName);
  const data = bytes.subarray(dataStart);

  let metadata: Record<string, string> = {};
  const entries: TensorEntry[] = [];
  for (const [name, value] of Object.entries(header)) {
    if (name === METADATA_KEY) metadata = parseMetadata(value, fileName);
    else entries.push(parseTensorEntry(name, value, data.length, fileName));
  }
  checkOverlaps(entries, fileName);

  const tensors = entries.map(({ name, dtype, shape, begin, end }): [string, DecodedTensor] => {
    const values = dtype === "F32" ? decodeF32(data.subarray(begin, end)) : new Float32Array(0);
    return [name, { dtype, shape, data: values }];
  });
  return { tensors: Object.fromEntries(tensors), metadata };
}

/**
 * Writes tensors and metadata to `path` as a safetensors file (see encodeSafetensors). The bytes
 * go to a temporary file in the same directory, which is then renamed, so a reader never sees a
 * half-written file. Creates the parent directory when it is missing.
 */
export function writeSafetensors(
  path: string,
  tensors: Record<string, Tensor>,
  metadata: Record<string, string>,
): void {
  writeFileAtomically(path, encodeSafetensors(tensors, metadata));
}

/** Reads and decodes a safetensors file; throws a SafetensorsError when it cannot be read. */
export function readSafetensors(path: string): SafetensorsContents {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === undefined) throw error;
    throw new SafetensorsError(`${path}: cannot read the file (${(error as Error).message})`);
  }
  return decodeSafetensors(bytes, path);
}

/**
 * Checks a decoded file against a network's expected names and shapes; returns names of extra
 * tensors (to warn about). Throws SafetensorsError naming a missing tensor, or a
 * wrong dtype or shape. A tensor without a `dtype` field counts as F32.
 */
export function matchParameters(
  file: string,
  tensors: Record<string, Tensor>,
  expected: readonly { name: string; shape: readonly number[] }[],
): { extra: string[] } {
  for (const { name, shape } of expected) {
    if (!Object.hasOwn(tensors, name)) {
      const present = Object.keys(tensors);
      const listing = present.length > 0 ? present.join(", ") : "no tensors";
      throw new SafetensorsError(`${file}: tensor ${name} is missing (the file has ${listing})`);
    }
    const tensor = tensors[name] as Partial<DecodedTensor> & Tensor;
    const dtype = tensor.dtype ?? "F32";
    if (dtype !== "F32") {
      throw new SafetensorsError(`${file}: tensor ${name} has dtype ${dtype}, expected F32`);
    }
    const actual = Array.from(tensor.shape);
    if (actual.length !== shape.length || actual.some((extent, i) => extent !== shape[i])) {
      throw new SafetensorsError(
        `${file}: tensor ${name} has shape ${formatShape(actual)}, expected ${formatShape(shape)}`,
      );
    }
    if (tensor.data.length !== elementCount(shape)) {
      throw new SafetensorsError(
        `${file}: tensor ${name} has ${tensor.data.length} values, expected ${elementCount(shape)}`,
      );
    }
  }
  const expectedNames = new Set(expected.map(({ name }) => name));
  return { extra: Object.keys(tensors).filter((name) => !expectedNames.has(name)) };
}

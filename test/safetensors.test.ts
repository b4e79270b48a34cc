// The safetensors reader and writer: round trips, byte layout, and every rejected file.
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";

import {
  decodeSafetensors,
  encodeSafetensors,
  matchParameters,
  readSafetensors,
  SafetensorsError,
  writeSafetensors,
  type Tensor,
} from "../src/io/safetensors.js";

const workDirectory = mkdtempSync(join(tmpdir(), "trainer-safetensors-"));
after(() => rmSync(workDirectory, { recursive: true, force: true }));

/** Float32 values from raw bit patterns, so NaN payloads and -0 can be compared exactly. */
function fromBits(bits: number[]): Float32Array {
  return new Float32Array(new Uint32Array(bits).buffer);
}

function bitsOf(data: Float32Array): number[] {
  return Array.from(new Uint32Array(data.buffer, data.byteOffset, data.length));
}

function sampleTensors(): Record<string, Tensor> {
  return {
    "conv1.weight": {
      shape: [2, 1, 2, 2],
      data: Float32Array.from([0.5, -1.25, 3e-39, 1e30, -0, 7, 8, -9]),
    },
    "conv1.bias": { shape: [2], data: fromBits([0x7fc00001, 0xff800000]) },
    scalar: { shape: [], data: Float32Array.from([Math.PI]) },
    empty: { shape: [0, 3], data: new Float32Array(0) },
  };
}

/** Builds a file from a header object, serialized without padding, and data bytes. */
function buildFile(header: unknown, data: Uint8Array = new Uint8Array(0)): Uint8Array {
  const headerBytes = new TextEncoder().encode(JSON.stringify(header));
  return buildRawFile(headerBytes, data);
}

function buildRawFile(headerBytes: Uint8Array, data: Uint8Array): Uint8Array {
  const bytes = new Uint8Array(8 + headerBytes.length + data.length);
  new DataView(bytes.buffer).setBigUint64(0, BigInt(headerBytes.length), true);
  bytes.set(headerBytes, 8);
  bytes.set(data, 8 + headerBytes.length);
  return bytes;
}

/** Little-endian F32 bytes of the values. */
function f32Bytes(values: number[]): Uint8Array {
  const bytes = new Uint8Array(values.length * 4);
  const view = new DataView(bytes.buffer);
  values.forEach((value, i) => view.setFloat32(i * 4, value, true));
  return bytes;
}

function headerLength(bytes: Uint8Array): number {
  return Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
}

function assertDecodeError(bytes: Uint8Array, message: RegExp): void {
  assert.throws(
    () => decodeSafetensors(bytes, "weights.safetensors"),
    (error: unknown) => {
      assert.ok(error instanceof SafetensorsError, `expected a SafetensorsError, got ${error}`);
      assert.match(error.message, /^weights\.safetensors: /);
      assert.match(error.message, message);
      return true;
    },
  );
}

describe("safetensors round trip", () => {
  test("names, shapes and bits survive", () => {
    const tensors = sampleTensors();
    const decoded = decodeSafetensors(encodeSafetensors(tensors, { net: "x" }), "memory");
    assert.deepEqual(Object.keys(decoded.tensors), Object.keys(tensors));
    for (const [name, tensor] of Object.entries(tensors)) {
      const read = decoded.tensors[name];
      assert.equal(read.dtype, "F32", name);
      assert.deepEqual(read.shape, tensor.shape, name);
      assert.ok(read.data instanceof Float32Array, name);
      assert.deepEqual(bitsOf(read.data), bitsOf(tensor.data), name);
    }
    assert.deepEqual(decoded.metadata, { net: "x" });
  });

  test("file write and read", () => {
    const path = join(workDirectory, "nested", "model.safetensors");
    writeSafetensors(path, sampleTensors(), { net: "linear", version: "1.2.3" });
    const read = readSafetensors(path);
    assert.deepEqual(read.metadata, { net: "linear", version: "1.2.3" });
    assert.deepEqual(
      bitsOf(read.tensors["conv1.weight"].data),
      bitsOf(sampleTensors()["conv1.weight"].data),
    );
    assert.deepEqual(bitsOf(read.tensors["conv1.bias"].data), [0x7fc00001, 0xff800000]);
  });

  test("same tensors give identical bytes", () => {
    const first = join(workDirectory, "first.safetensors");
    const second = join(workDirectory, "second.safetensors");
    writeSafetensors(first, sampleTensors(), { net: "linear", version: "1" });
    writeSafetensors(second, sampleTensors(), { net: "linear", version: "1" });
    assert.deepEqual(readFileSync(first), readFileSync(second));
    assert.deepEqual(
      encodeSafetensors(sampleTensors(), {}),
      encodeSafetensors(sampleTensors(), {}),
    );
  });

  test("subarray views are written by value", () => {
    const buffer = Float32Array.from([1, 2, 3, 4, 5, 6]);
    const tensors = { middle: { shape: [2, 2], data: buffer.subarray(1, 5) } };
    const decoded = decodeSafetensors(encodeSafetensors(tensors, {}), "memory");
    assert.deepEqual(Array.from(decoded.tensors.middle.data), [2, 3, 4, 5]);
  });
});

describe("safetensors layout", () => {
  test("header padded to 8 bytes with spaces", () => {
    for (let nameLength = 1; nameLength <= 8; nameLength++) {
      const name = "w".repeat(nameLength);
      const bytes = encodeSafetensors({ [name]: { shape: [1], data: Float32Array.of(1) } }, {});
      const length = headerLength(bytes);
      assert.equal(length % 8, 0, `header length ${length} for name ${name}`);
      const header = new TextDecoder().decode(bytes.subarray(8, 8 + length));
      assert.match(header, /^\{.*\} *$/);
      assert.equal(bytes.length, 8 + length + 4);
    }
  });

  test("offsets contiguous in given order", () => {
    const bytes = encodeSafetensors(sampleTensors(), { net: "linear" });
    const header = JSON.parse(
      new TextDecoder().decode(bytes.subarray(8, 8 + headerLength(bytes))),
    ) as Record<string, { data_offsets?: number[] }>;
    assert.deepEqual(header.__metadata__, { net: "linear" });
    assert.deepEqual(header["conv1.weight"].data_offsets, [0, 32]);
    assert.deepEqual(header["conv1.bias"].data_offsets, [32, 40]);
    assert.deepEqual(header.scalar.data_offsets, [40, 44]);
    assert.deepEqual(header.empty.data_offsets, [44, 44]);
  });

  test("data little-endian", () => {
    const bytes = encodeSafetensors({ one: { shape: [1], data: Float32Array.of(1) } }, {});
    assert.deepEqual(Array.from(bytes.subarray(bytes.length - 4)), [0x00, 0x00, 0x80, 0x3f]);
  });
});

describe("safetensors reading", () => {
  test("any tensor order", () => {
    const header = {
      b: { dtype: "F32", shape: [2], data_offsets: [8, 16] },
      a: { dtype: "F32", shape: [2], data_offsets: [0, 8] },
    };
    const decoded = decodeSafetensors(buildFile(header, f32Bytes([1, 2, 3, 4])), "f");
    assert.deepEqual(Array.from(decoded.tensors.a.data), [1, 2]);
    assert.deepEqual(Array.from(decoded.tensors.b.data), [3, 4]);
  });

  test("missing metadata ok", () => {
    const header = { a: { dtype: "F32", shape: [1], data_offsets: [0, 4] } };
    const decoded = decodeSafetensors(buildFile(header, f32Bytes([5])), "f");
    assert.deepEqual(decoded.metadata, {});
    assert.deepEqual(Array.from(decoded.tensors.a.data), [5]);
  });

  test("unaligned data start", () => {
    // The header length is not a multiple of 8 and the file starts at an odd byte offset, so the
    // F32 data start at an address that is not 4-byte aligned.
    const header = new TextEncoder().encode(
      '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}',
    );
    const file = buildRawFile(header, f32Bytes([1.5, -2.5]));
    const shifted = new Uint8Array(file.length + 1);
    shifted.set(file, 1);
    const decoded = decodeSafetensors(shifted.subarray(1), "f");
    assert.deepEqual(Array.from(decoded.tensors.a.data), [1.5, -2.5]);
  });

  test("non-F32 tensor kept without data", () => {
    const header = {
      half: { dtype: "F16", shape: [2], data_offsets: [0, 4] },
      a: { dtype: "F32", shape: [1], data_offsets: [4, 8] },
    };
    const decoded = decodeSafetensors(buildFile(header, new Uint8Array(8)), "f");
    assert.equal(decoded.tensors.half.dtype, "F16");
    assert.deepEqual(decoded.tensors.half.shape, [2]);
    assert.equal(decoded.tensors.half.data.length, 0);
  });

  test("gap between tensors allowed", () => {
    const header = {
      a: { dtype: "F32", shape: [1], data_offsets: [0, 4] },
      b: { dtype: "F32", shape: [1], data_offsets: [8, 12] },
    };
    const decoded = decodeSafetensors(buildFile(header, f32Bytes([1, 0, 2])), "f");
    assert.deepEqual(Array.from(decoded.tensors.b.data), [2]);
  });

  test("tensor named __proto__", () => {
    const text = '{"__proto__":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}';
    const decoded = decodeSafetensors(
      buildRawFile(new TextEncoder().encode(text), f32Bytes([3])),
      "f",
    );
    assert.ok(Object.hasOwn(decoded.tensors, "__proto__"));
    assert.deepEqual(Array.from(decoded.tensors["__proto__"].data), [3]);
  });
});

describe("safetensors invalid files", () => {
  const entry = (fields: object) => buildFile({ a: fields }, new Uint8Array(8));

  test("shorter than the length field", () => {
    assertDecodeError(new Uint8Array(5), /5 bytes, too short/);
  });

  test("header length past the end", () => {
    const bytes = buildFile({});
    new DataView(bytes.buffer).setBigUint64(0, 1000n, true);
    assertDecodeError(bytes, /header length 1000 runs past the end of the file \(2 bytes/);
  });

  test("huge header length", () => {
    const bytes = new Uint8Array(16);
    new DataView(bytes.buffer).setBigUint64(0, 2n ** 64n - 1n, true);
    assertDecodeError(bytes, /header length 18446744073709551615 runs past the end/);
  });

  test("invalid JSON", () => {
    assertDecodeError(
      buildRawFile(new TextEncoder().encode("{not json"), new Uint8Array(0)),
      /not valid JSON/,
    );
  });

  test("invalid UTF-8", () => {
    assertDecodeError(
      buildRawFile(Uint8Array.of(0x7b, 0xff, 0x7d), new Uint8Array(0)),
      /not valid UTF-8/,
    );
  });

  test("header not an object", () => {
    assertDecodeError(buildFile([1, 2]), /header is not a JSON object/);
    assertDecodeError(buildFile(null), /header is not a JSON object/);
  });

  test("entry not an object", () => {
    assertDecodeError(buildFile({ a: 5 }), /tensor a: the header entry is not an object/);
  });

  test("missing dtype", () => {
    assertDecodeError(entry({ shape: [2], data_offsets: [0, 8] }), /tensor a: the "dtype" field/);
  });

  test("missing shape", () => {
    assertDecodeError(entry({ dtype: "F32", data_offsets: [0, 8] }), /tensor a: the "shape" field/);
  });

  test("negative shape extent", () => {
    assertDecodeError(entry({ dtype: "F32", shape: [-2], data_offsets: [0, 8] }), /"shape" field/);
  });

  test("missing data_offsets", () => {
    assertDecodeError(entry({ dtype: "F32", shape: [2] }), /tensor a: the "data_offsets" field/);
  });

  test("three data_offsets", () => {
    assertDecodeError(
      entry({ dtype: "F32", shape: [2], data_offsets: [0, 4, 8] }),
      /"data_offsets" field/,
    );
  });

  test("shape and offsets disagree", () => {
    assertDecodeError(
      entry({ dtype: "F32", shape: [3], data_offsets: [0, 8] }),
      /tensor a: F32 shape \[3\] needs 12 bytes, but data_offsets \[0, 8\] span 8/,
    );
  });

  test("non-F32 size checked too", () => {
    assertDecodeError(
      entry({ dtype: "F64", shape: [2], data_offsets: [0, 8] }),
      /tensor a: F64 shape \[2\] needs 16 bytes/,
    );
  });

  test("offsets past the data", () => {
    assertDecodeError(
      entry({ dtype: "F32", shape: [4], data_offsets: [0, 16] }),
      /tensor a: data_offsets \[0, 16\] run past the end of the data \(8 bytes\)/,
    );
  });

  test("offsets reversed", () => {
    assertDecodeError(
      entry({ dtype: "F32", shape: [0], data_offsets: [8, 4] }),
      /end before they begin/,
    );
  });

  test("overlapping tensors", () => {
    const header = {
      a: { dtype: "F32", shape: [2], data_offsets: [0, 8] },
      b: { dtype: "F32", shape: [2], data_offsets: [4, 12] },
    };
    assertDecodeError(
      buildFile(header, new Uint8Array(12)),
      /tensors a \[0, 8\] and b \[4, 12\] overlap/,
    );
  });

  test("metadata value not a string", () => {
    assertDecodeError(
      buildFile({ __metadata__: { epoch: 3 } }),
      /__metadata__ value "epoch" is not a string/,
    );
  });

  test("missing file", () => {
    const path = join(workDirectory, "absent.safetensors");
    assert.throws(
      () => readSafetensors(path),
      (error: unknown) => {
        assert.ok(error instanceof SafetensorsError);
        assert.match(error.message, /absent\.safetensors: cannot read the file/);
        return true;
      },
    );
  });

  test("encode rejects wrong value count", () => {
    assert.throws(
      () => encodeSafetensors({ a: { shape: [2, 2], data: new Float32Array(3) } }, {}),
      /tensor a: shape \[2, 2\] needs 4 values, got 3/,
    );
  });

  test("encode rejects reserved name", () => {
    assert.throws(
      () => encodeSafetensors({ __metadata__: { shape: [1], data: new Float32Array(1) } }, {}),
      SafetensorsError,
    );
  });
});

describe("matchParameters", () => {
  const expected = [
    { name: "fc.weight", shape: [2, 3] },
    { name: "fc.bias", shape: [2] },
  ];
  const decode = (header: object, byteCount: number) =>
    decodeSafetensors(buildFile(header, new Uint8Array(byteCount)), "w.safetensors").tensors;
  const goodHeader = {
    "fc.weight": { dtype: "F32", shape: [2, 3], data_offsets: [0, 24] },
    "fc.bias": { dtype: "F32", shape: [2], data_offsets: [24, 32] },
  };

  test("exact match has no extras", () => {
    assert.deepEqual(matchParameters("w.safetensors", decode(goodHeader, 32), expected), {
      extra: [],
    });
  });

  test("extra tensors reported by name", () => {
    const header = {
      ...goodHeader,
      "fc.running_mean": { dtype: "F32", shape: [2], data_offsets: [32, 40] },
      step: { dtype: "I64", shape: [], data_offsets: [40, 48] },
    };
    const { extra } = matchParameters("w.safetensors", decode(header, 48), expected);
    assert.deepEqual(extra, ["fc.running_mean", "step"]);
  });

  test("missing tensor", () => {
    const header = { "fc.weight": goodHeader["fc.weight"] };
    assert.throws(
      () => matchParameters("w.safetensors", decode(header, 24), expected),
      (error: unknown) => {
        assert.ok(error instanceof SafetensorsError);
        assert.match(
          error.message,
          /^w\.safetensors: tensor fc\.bias is missing \(the file has fc\.weight\)/,
        );
        return true;
      },
    );
  });

  test("wrong dtype", () => {
    const header = {
      ...goodHeader,
      "fc.bias": { dtype: "F16", shape: [2], data_offsets: [24, 28] },
    };
    assert.throws(
      () => matchParameters("w.safetensors", decode(header, 28), expected),
      /w\.safetensors: tensor fc\.bias has dtype F16, expected F32/,
    );
  });

  test("wrong shape", () => {
    const header = {
      ...goodHeader,
      "fc.weight": { dtype: "F32", shape: [3, 2], data_offsets: [0, 24] },
    };
    assert.throws(
      () => matchParameters("w.safetensors", decode(header, 32), expected),
      /w\.safetensors: tensor fc\.weight has shape \[3, 2\], expected \[2, 3\]/,
    );
  });

  test("plain tensors count as F32", () => {
    const tensors = {
      "fc.weight": { shape: [2, 3], data: new Float32Array(6) },
      "fc.bias": { shape: [2], data: new Float32Array(2) },
    };
    assert.deepEqual(matchParameters("memory", tensors, expected), { extra: [] });
  });
});

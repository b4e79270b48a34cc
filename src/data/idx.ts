// Parsing and validation of IDX files, the format of the MNIST and Fashion-MNIST data sets.
// An IDX file starts with a big-endian 32-bit magic number whose third byte is the element type
// (0x08 for unsigned bytes) and whose fourth byte is the number of dimensions. One big-endian
// 32-bit size per dimension follows, then the elements in row-major order.

/** Invalid or missing data set files. The message names the file, the problem and the fix. */
export class DataError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "DataError";
  }
}

/** Magic number of an IDX file of unsigned bytes with 3 dimensions (count, rows, columns). */
export const IDX_IMAGES_MAGIC = 0x00000803;

/** Magic number of an IDX file of unsigned bytes with 1 dimension (count). */
export const IDX_LABELS_MAGIC = 0x00000801;

const IMAGES_HEADER_BYTES = 16;
const LABELS_HEADER_BYTES = 8;

/** Images parsed from an IDX file. `pixels` is a view over the input bytes, not a copy. */
export interface IdxImages {
  count: number;
  rows: number;
  columns: number;
  pixels: Uint8Array;
}

/**
 * Parses an IDX image file (magic 2051) and returns its sizes and a view of its pixels.
 * Throws a DataError naming `fileName` when the file is empty, has the wrong magic number,
 * or its length differs from 16 + count * rows * columns bytes.
 */
export function parseIdxImages(bytes: Uint8Array, fileName: string): IdxImages {
  checkHeader(bytes, fileName, IMAGES_HEADER_BYTES, IDX_IMAGES_MAGIC);

  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const count = view.getUint32(4);
  const rows = view.getUint32(8);
  const columns = view.getUint32(12);
  const pixelCount = count * rows * columns;
  const description = `${count} images of ${rows}x${columns} pixels`;
  checkPayloadLength(bytes, fileName, IMAGES_HEADER_BYTES, pixelCount, description);

  const pixels = bytes.subarray(IMAGES_HEADER_BYTES, IMAGES_HEADER_BYTES + pixelCount);
  return { count, rows, columns, pixels };
}

/**
 * Parses an IDX label file (magic 2049) and returns a view of its labels.
 * Throws a DataError naming `fileName` when the file is empty, has the wrong magic number,
 * or its length differs from 8 + count bytes. Label values are not range-checked here.
 */
export function parseIdxLabels(bytes: Uint8Array, fileName: string): Uint8Array {
  checkHeader(bytes, fileName, LABELS_HEADER_BYTES, IDX_LABELS_MAGIC);

  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const count = view.getUint32(4);
  checkPayloadLength(bytes, fileName, LABELS_HEADER_BYTES, count, `${count} labels`);

  return bytes.subarray(LABELS_HEADER_BYTES, LABELS_HEADER_BYTES + count);
}

function checkHeader(
  bytes: Uint8Array,
  fileName: string,
  headerBytes: number,
  expectedMagic: number,
): void {
  const expectedKind = expectedMagic === IDX_IMAGES_MAGIC ? "image" : "label";
  if (bytes.length === 0) {
    throw new DataError(`${fileName}: empty file (0 bytes). Re-download it`);
  }
  if (bytes.length < headerBytes) {
    throw new DataError(
      `${fileName}: ${bytes.length} bytes is shorter than the ${headerBytes}-byte header ` +
        `of an IDX ${expectedKind} file. Re-download it`,
    );
  }

  const magic = new DataView(bytes.buffer, bytes.byteOffset, 4).getUint32(0);
  if (magic !== expectedMagic) {
    throw new DataError(
      `${fileName}: invalid magic number ${magic} (${formatHex(magic)}), ` +
        `expected ${expectedMagic} (${formatHex(expectedMagic)}) for an IDX ${expectedKind} file` +
        `${describeOtherMagic(magic)}. Check the file name or re-download it`,
    );
  }
}

function checkPayloadLength(
  bytes: Uint8Array,
  fileName: string,
  headerBytes: number,
  expectedPayload: number,
  description: string,
): void {
  const payload = bytes.length - headerBytes;
  if (payload < expectedPayload) {
    throw new DataError(
      `${fileName}: truncated. The header declares ${description} (${expectedPayload} bytes) ` +
        `but only ${payload} bytes follow it. Re-download the file`,
    );
  }
  if (payload > expectedPayload) {
    throw new DataError(
      `${fileName}: ${payload - expectedPayload} unexpected bytes after the data. The header ` +
        `declares ${description} (${expectedPayload} bytes) but ${payload} bytes follow it. ` +
        `Re-download the file`,
    );
  }
}

function formatHex(value: number): string {
  return `0x${value.toString(16).padStart(8, "0")}`;
}

function describeOtherMagic(magic: number): string {
  if (magic === IDX_IMAGES_MAGIC) return " (this is an IDX image file)";
  if (magic === IDX_LABELS_MAGIC) return " (this is an IDX label file)";
  return "";
}

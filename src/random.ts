// Seeded random numbers. Every random choice of a run (initial weights, the shuffle, dropout
// masks) comes from a generator seeded by a hash of the run seed and the numbers' purpose. So the
// numbers never depend on the thread that draws them or on the order in which shards run.

/** Mixes a 32-bit value into a well-spread 32-bit hash (the MurmurHash3 finalizer). */
export function mix32(value: number): number {
  let h = value | 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Hashes a list of integers (seed, purpose, epoch, index, ...) into one 32-bit key. */
export function hashKey(...parts: number[]): number {
  let h = HASH_START;
  for (const part of parts) h = foldHash(h, part);
  return mix32(h);
}

const HASH_START = 0x9e3779b9;

/** Folds one integer into a running hash; values above 2^32 count too, so no seed is truncated. */
function foldHash(h: number, part: number): number {
  const low = part >>> 0;
  const high = Math.floor(part / 4294967296) >>> 0;
  h = mix32(h ^ low) + 0x6a09e667;
  return mix32(h ^ high) + 0xbb67ae85;
}

/** Purposes that separate the random streams drawn from one seed. */
export const RandomStream = {
  initialization: 1,
  shuffle: 2,
  dropout: 3,
} as const;

/**
 * A small fast generator (SFC32, Chris Doty-Humphrey's "small fast chaotic" generator) with its
 * whole state in four 32-bit words, so the state can be saved and restored exactly.
 */
export class Random {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(seed: number) {
    this.a = 0x9e3779b9;
    this.b = 0x243f6a88;
    this.c = 0xb7e15162;
    this.d = seed >>> 0;
    // Discard the first outputs, which still show the structure of the seed.
    for (let i = 0; i < 12; i++) this.nextUint32();
  }

  /** Returns a uniformly distributed integer in [0, 2^32). */
  nextUint32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }

  /** Returns a uniformly distributed double in [0, 1) with 53 random bits. */
  nextDouble(): number {
    const high = this.nextUint32() >>> 5;
    const low = this.nextUint32() >>> 6;
    return (high * 67108864 + low) / 9007199254740992;
  }

  /** Returns a uniformly distributed integer in [0, bound) without modulo bias. */
  nextBelow(bound: number): number {
    return Math.floor(this.nextDouble() * bound);
  }

  /** Returns a standard normal sample (Box-Muller transform, one of the pair). */
  nextNormal(): number {
    let u = this.nextDouble();
    while (u === 0) u = this.nextDouble();
    const v = this.nextDouble();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }

  /** Returns the generator state as four unsigned 32-bit words. */
  getState(): [number, number, number, number] {
    return [this.a >>> 0, this.b >>> 0, this.c >>> 0, this.d >>> 0];
  }

  /** Restores a state returned by getState. */
  setState(state: readonly number[]): void {
    if (state.length !== 4) throw new Error(`random state: expected 4 words, got ${state.length}`);
    [this.a, this.b, this.c, this.d] = state.map((word) => word | 0);
  }
}

/** Shuffles `order` in place (Fisher-Yates) with numbers drawn from `random`. */
export function shuffleInPlace(order: Int32Array, random: Random): void {
  for (let i = order.length - 1; i > 0; i--) {
    const j = random.nextBelow(i + 1);
    const swap = order[i];
    order[i] = order[j];
    order[j] = swap;
  }
}

/**
 * Fills mask[offset .. offset + count) with 1 (keep) or 0 (drop) for one image, each unit dropped
 * with probability `rate`. The mask depends only on (seed, epoch, imageIndex), so any worker
 * computing that image draws the same mask. Allocates nothing: it runs once per image in a step.
 */
export function fillDropoutMask(
  mask: Uint8Array,
  offset: number,
  count: number,
  rate: number,
  seed: number,
  epoch: number,
  imageIndex: number,
): void {
  // The SFC32 state lives in locals rather than in a Random object, to avoid an allocation.
  let a = 0x9e3779b9 | 0;
  let b = 0x243f6a88 | 0;
  let c = 0xb7e15162 | 0;
  // hashKey(seed, RandomStream.dropout, epoch, imageIndex), without its rest-parameter array.
  let key = foldHash(HASH_START, seed);
  key = foldHash(key, RandomStream.dropout);
  key = foldHash(key, epoch);
  let d = mix32(foldHash(key, imageIndex)) | 0;
  const threshold = rate * 4294967296;
  for (let i = -12; i < count; i++) {
    const t = (((a + b) | 0) + d) | 0;
    d = (d + 1) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    c = (c + t) | 0;
    if (i >= 0) mask[offset + i] = t >>> 0 >= threshold ? 1 : 0;
  }
}

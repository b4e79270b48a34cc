export * from "./activation.js";
export * from "./conv2d.js";
export * from "./conv2d-backward.js";
export * from "./dense.js";
export * from "./dropout.js";
export * from "./leaky-relu-maxpool.js";
export * from "./maxpool2d.js";
export * from "./softmax-cross-entropy.js";

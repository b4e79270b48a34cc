// Fashion-MNIST loading: IDX parsing, locating the data directory and reading the four files.

export {
  DataError,
  IDX_IMAGES_MAGIC,
  IDX_LABELS_MAGIC,
  parseIdxImages,
  parseIdxLabels,
  type IdxImages,
} from "./idx.js";
export {
  CLASS_NAMES,
  DATA_DIRECTORY_VARIABLE,
  DEBIAN_DATA_DIRECTORY,
  FASHION_MNIST_FILES,
  loadFashionMnist,
  locateDataDirectory,
  type FashionMnist,
  type ImageSet,
  type LocateOptions,
} from "./fashion-mnist.js";

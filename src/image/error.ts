/** An image that cannot be read or used. The message names the file and what was wrong with it. */
export class ImageError extends Error {
  override name = "ImageError";
}
